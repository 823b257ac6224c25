"""Units whose source could not be reached: planned, counted and reported apart from failures."""

from __future__ import annotations

import dataclasses

from core.changes import Preview, UnitStatus
from core.plan import plan as planning
from core.report import jsonout, markdown
from core.units import RenderedUnit
from tests.plan.builders import CLUSTER, ROOT, cluster, configmap, flux_object, hr, hr_ref, ks

URL = "https://charts.example.com/index.yaml"
REASON = f"HelmRelease/flux-system/web: source unavailable: {URL}: timed out connecting"


def _unavailable(name: str) -> RenderedUnit:
    return dataclasses.replace(hr(name, error=REASON), unavailable_source=URL)


def _preview(*, skip: bool, head_web: RenderedUnit | None = None) -> Preview:
    web = hr_ref("web")
    base = cluster(ks("flux-system", flux_object(web)), hr("web", configmap("web")))
    head = cluster(
        ks("flux-system", flux_object(web), configmap("settings")),
        head_web or _unavailable("web"),
    )
    plan = planning.plan_preview("a" * 40, "b" * 40, {CLUSTER: base}, {CLUSTER: head})
    return dataclasses.replace(plan, skip_unavailable=skip)


def test_an_unreachable_source_is_its_own_status_not_a_render_failure() -> None:
    preview = _preview(skip=False)
    [web] = [u for u in preview.clusters[0].units if u.unit == hr_ref("web")]
    assert web.status is UnitStatus.UNAVAILABLE
    assert web.unavailable_source == URL
    assert web.error == f"at head: {REASON}"
    assert web.changes == ()
    assert preview.summary["unavailable"] == 1
    assert preview.summary["failed"] == 0
    assert preview.failed


def test_a_render_error_on_the_other_side_keeps_the_unit_failed() -> None:
    base = cluster(
        hr("web", error="HelmRelease/flux-system/web: helm template failed", parent=ROOT)
    )
    head = cluster(_unavailable("web"))
    [unit] = planning.plan_cluster(base, head).units
    assert unit.status is UnitStatus.FAILED
    assert unit.unavailable_source is None


def test_skipping_unavailable_sources_passes_the_gate_on_the_rest() -> None:
    preview = _preview(skip=True)
    assert not preview.failed
    assert preview.changed  # the Kustomization-level change is still shown


def test_json_reports_the_status_url_and_mode() -> None:
    for skip in (False, True):
        data = jsonout.to_json(_preview(skip=skip))
        [web] = [u for u in data["clusters"][0]["units"] if u["name"] == "web"]
        assert web["status"] == "unavailable"
        assert web["unavailableSource"] == URL
        assert "timed out connecting" in web["error"]
        assert data["unavailableSources"] == ("skip" if skip else "fail")
        assert data["failed"] is not skip
        assert data["summary"]["unavailable"] == 1
        others = [u for u in data["clusters"][0]["units"] if u["name"] != "web"]
        assert all(u["unavailableSource"] is None for u in others)


def test_markdown_counts_and_lists_unavailable_units_by_mode() -> None:
    failing = markdown.render(_preview(skip=False))
    assert "| `clusters/production` | 1 | 0 | 0 | 0 | 0 | 0 | ❌ **1** |" in failing
    assert "❌ **1 unit could not be previewed: a source could not be reached" in failing
    assert "timed out connecting" in failing

    skipped = markdown.render(_preview(skip=True))
    assert "| `clusters/production` | 1 | 0 | 0 | 0 | 0 | 0 | ⚠️ **1** |" in skipped
    assert "⚠️ **1 unit NOT previewed: a source could not be reached." in skipped
    assert "does not cover these units" in skipped
    assert URL in skipped
