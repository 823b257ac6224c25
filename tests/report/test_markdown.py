"""The pull-request comment.

Aspects covered:
- the hidden marker is the first line; the summary table comes before any section, one row per
  cluster with created / updated / deleted / orphaned / moved / failed-unit counts;
- alerts above the fold, never inside a collapsed section: cluster errors, failed units with
  their error, deletions, orphans, suspended units;
- sections: one collapsible `<details>` per changed unit with `diff` blocks, failed units open,
  unchanged units counted, noise per rule ("N lines hidden by rule X"), noise-only objects and
  skipped changes mentioned, moves naming their origin, removal notes;
- fences and code spans are longer than any backtick run in their content;
- the size budget: diffs of the largest sections are dropped first with headers and counts kept
  and a note saying so, then sections shrink to one line, then a cut at a line boundary; the
  result never exceeds the budget and `<details>` stay balanced; a too small budget is refused;
- masking: canary Secret values and tokens appear nowhere in the comment;
- empty previews and previews without changes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import pytest

from core.changes import Action, Change, ClusterPlan, Preview, UnitPlan, UnitStatus
from core.errors import Failure
from core.model import ObjectRef, UnitRef
from core.plan import plan as planning
from core.report import markdown
from core.units import ClusterRender
from tests.plan.builders import (
    CLUSTER,
    cluster,
    configmap,
    deployment,
    flux_object,
    ks,
    ks_ref,
)
from tests.report.samples import APPS, CANARIES, sample_preview, secret_preview


def _preview(base: Mapping[str, ClusterRender], head: Mapping[str, ClusterRender]) -> Preview:
    return planning.plan_preview("0" * 40, "f" * 40, base, head)


def _above_the_fold(text: str) -> str:
    return text.split("<details", 1)[0]


def test_marker_is_the_first_line() -> None:
    text = markdown.render(sample_preview())

    assert text.splitlines()[0] == markdown.MARKER == "<!-- tidegate:preview -->"


def test_summary_table_comes_first_with_counts_per_cluster() -> None:
    staging = "clusters/staging"
    preview = _preview(
        {CLUSTER: cluster(ks("apps", configmap("gone"))), staging: cluster(path=staging)},
        {
            CLUSTER: cluster(ks("apps")),
            staging: cluster(ks("apps", configmap("new"), parent=None), path=staging),
        },
    )

    text = markdown.render(preview)

    header = (
        "| Cluster | Created | Updated | Deleted | Orphaned | Moved | Failed units "
        "| Source unavailable |"
    )
    assert header in _above_the_fold(text)
    assert "| `clusters/production` | 0 | 0 | ⚠️ **1** | 0 | 0 | 0 | 0 |" in text
    assert "| `clusters/staging` | 1 | 0 | 0 | 0 | 0 | 0 | 0 |" in text
    assert text.index(header) < text.index("#### ")


def test_deletions_are_listed_above_the_fold() -> None:
    text = markdown.render(sample_preview())

    fold = _above_the_fold(text)
    assert "⚠️ **1 object will be deleted:**" in fold
    assert "`Kustomization/flux-system/apps`: `ConfigMap/web/gone`" in fold


def test_removed_unit_deletions_name_the_removal() -> None:
    base = cluster(ks("flux-system", flux_object(APPS)), ks("apps", deployment()))
    head = cluster(ks("flux-system"))

    text = markdown.render(_preview({CLUSTER: base}, {CLUSTER: head}))

    fold = _above_the_fold(text)
    assert "⚠️ **2 objects will be deleted:**" in fold
    assert "`Kustomization/flux-system/apps` (unit removed): `Deployment/web/api`" in fold
    assert "Its Flux object is deleted" in text


def test_orphans_are_listed_above_the_fold() -> None:
    base = cluster(ks("apps", configmap("kept"), prune=False))
    head = cluster(ks("apps", prune=False))

    fold = _above_the_fold(markdown.render(_preview({CLUSTER: base}, {CLUSTER: head})))

    assert "⚠️ **1 object will be orphaned" in fold
    assert "`ConfigMap/web/kept`" in fold


def test_failures_and_cluster_errors_stand_out_above_the_fold() -> None:
    base = cluster(ks("apps", configmap("a")))
    head = cluster(
        ks("apps", error="kustomize build: `bad` | <path>", failure=Failure.BUILD),
        errors=("dependsOn cycle",),
    )

    text = markdown.render(_preview({CLUSTER: base}, {CLUSTER: head}))

    fold = _above_the_fold(text)
    assert "❌ **1 cluster error:**" in fold
    assert "``at head: dependsOn cycle``" not in fold
    assert "`at head: dependsOn cycle`" in fold
    assert "❌ **1 unit failed; their objects are withheld" in fold
    assert "``at head: kustomize build: `bad` | <path>``" in fold
    assert "`Kustomization/flux-system/apps` (build failure): " in fold
    assert "<details open>\n<summary>❌ <b>Kustomization/flux-system/apps</b> · failed" in text
    assert "| ❌ **1** |" in fold


def test_suspended_units_are_flagged() -> None:
    base = cluster(ks("apps", deployment(replicas=1), suspend=True))
    head = cluster(ks("apps", deployment(replicas=2), suspend=True))

    text = markdown.render(_preview({CLUSTER: base}, {CLUSTER: head}))

    assert "⏸️ **1 suspended unit: changes apply when resumed:**" in _above_the_fold(text)
    assert "⏸️ <b>Kustomization/flux-system/apps</b> · rendered · 1 updated · suspended" in text
    assert "Flux applies these changes only when it is resumed" in text


def test_sections_hold_diffs_fields_and_moves() -> None:
    text = markdown.render(sample_preview())

    assert (
        "<summary><b>Kustomization/flux-system/apps</b> · rendered · 1 created · 1 updated" in text
    )
    assert "- **update** `Deployment/web/api`: `spec.replicas`" in text
    assert "```diff\n--- before/Deployment/web/api\n+++ after/Deployment/web/api\n" in text
    assert "- **move** `Deployment/web/mover` from `Kustomization/flux-system/apps`" in text
    assert text.count("<details") == text.count("</details>")


def test_unchanged_units_are_counted_not_shown() -> None:
    render = cluster(ks("apps", deployment()), ks("web", configmap("x")))

    text = markdown.render(_preview({CLUSTER: render}, {CLUSTER: render}))

    assert "2 units unchanged." in text
    assert "<details" not in text
    assert "✅ Nothing changes in any cluster." in text


def test_noise_is_counted_per_rule() -> None:
    base = cluster(
        ks(
            "apps",
            deployment(labels={"helm.sh/chart": "a-1"}, template_annotations={"checksum/x": "1"}),
        )
    )
    head = cluster(
        ks(
            "apps",
            deployment(labels={"helm.sh/chart": "a-2"}, template_annotations={"checksum/x": "2"}),
        )
    )

    text = markdown.render(_preview({CLUSTER: base}, {CLUSTER: head}))

    assert (
        "- `Kustomization/flux-system/apps`: 2 lines hidden by rule checksum-annotations, "
        "2 lines hidden by rule helm-chart-labels; 1 object differ only in hidden noise"
    ) in text


def test_noise_and_skips_are_shown_in_changed_sections() -> None:
    skip = {"kustomize.toolkit.fluxcd.io/reconcile": "disabled"}
    base = cluster(ks("apps", deployment(replicas=1), configmap("off", annotations=skip)))
    head = cluster(
        ks(
            "apps",
            deployment(replicas=2, labels={"chart": "x"}),
            configmap("off", data={"k": "v2"}, annotations=skip),
        )
    )

    text = markdown.render(_preview({CLUSTER: base}, {CLUSTER: head}))

    assert "<sub>1 line hidden by rule helm-chart-labels; 1 changed object left out" in text


def test_fences_are_longer_than_backtick_runs_in_diffs() -> None:
    data = {"README.md": "Example:\n```yaml\nkey: value\n```\nand ````four````\n"}
    base = cluster(ks("apps"))
    head = cluster(ks("apps", configmap("docs", data=data)))

    text = markdown.render(_preview({CLUSTER: base}, {CLUSTER: head}))

    assert "`````diff\n--- before/ConfigMap/web/docs" in text
    assert "\n`````\n" in text


@pytest.mark.parametrize(
    ("error", "span"),
    [
        pytest.param("plain", "`at head: plain`", id="plain"),
        pytest.param("a `b` c", "``at head: a `b` c``", id="single-ticks"),
        pytest.param("x ``y``", "``` at head: x ``y`` ```", id="double-ticks"),
        pytest.param("edge`", "`` at head: edge` ``", id="tick-at-the-end"),
        pytest.param("multi\nline", "`at head: multi line`", id="newline"),
    ],
)
def test_code_spans_hold_any_error_text(error: str, span: str) -> None:
    base = cluster(ks("apps", configmap("a")))
    head = cluster(ks("apps", error=error))

    text = markdown.render(_preview({CLUSTER: base}, {CLUSTER: head}))

    assert f"- `{CLUSTER}` `Kustomization/flux-system/apps`: {span}\n" in text


def test_pipes_in_cluster_paths_do_not_split_table_cells() -> None:
    path = "clusters/a|b"
    preview = _preview({}, {path: cluster(ks("apps", configmap("x"), parent=None), path=path)})

    assert "| `clusters/a\\|b` | 1 |" in markdown.render(preview)


def test_no_canary_and_no_token_in_markdown() -> None:
    text = markdown.render(secret_preview())

    for canary in CANARIES:
        assert canary not in text
    assert "tidegate:masked" not in text
    assert "'*** (before)'" in text


def test_empty_preview_says_so() -> None:
    text = markdown.render(Preview("a", "b", ()))

    assert text.startswith(markdown.MARKER)
    assert "No cluster entry points were found" in text


# The size budget.


def _big_unit(name: str, objects: int, lines: int) -> UnitPlan:
    """A unit with `objects` creates, each with a diff of `lines` lines."""
    diff = "--- before/x\n+++ after/x\n" + "".join(f"+line {i} {'x' * 60}\n" for i in range(lines))
    changes = tuple(
        Change(Action.CREATE, ObjectRef("", "ConfigMap", "web", f"{name}-{i}"), "v1", diff=diff)
        for i in range(objects)
    )
    return UnitPlan(unit=ks_ref(name), status=UnitStatus.ADDED, prune=True, changes=changes)


def _big_preview(*units: UnitPlan) -> Preview:
    return Preview("a", "b", (ClusterPlan(CLUSTER, units),))


def test_comment_within_budget_is_left_whole() -> None:
    preview = _big_preview(_big_unit("small", 1, 5))

    text = markdown.render(preview)

    assert "✂️" not in text
    assert "+line 4" in text


def test_largest_sections_lose_their_diffs_first() -> None:
    preview = _big_preview(
        _big_unit("huge", 20, 100), _big_unit("medium", 5, 40), _big_unit("tiny", 1, 3)
    )

    text = markdown.render(preview, limit=30_000)

    assert len(text) <= 30_000
    assert "✂️ To stay under 30,000 characters, the diffs of 1 unit were left out" in text
    assert "_Diffs left out to fit the comment size limit._" in text
    # Headers and counts of the dropped section stay; smaller sections keep their diffs.
    assert "<b>Kustomization/flux-system/huge</b> · added · 20 created" in text
    assert "- **create** `ConfigMap/web/huge-19`" in text
    assert "`ConfigMap/web/tiny-0`" in text
    assert "+line 2" in text
    assert text.count("<details") == text.count("</details>")
    assert text.index("✂️") < text.index("<details")


def test_sections_shrink_to_one_line_when_diffs_are_not_enough() -> None:
    units = [_big_unit(f"unit-{i:03}", 8, 2) for i in range(60)]

    text = markdown.render(_big_preview(*units), limit=20_000)

    assert len(text) <= 20_000
    assert "shown as one line only" in text
    assert "(details left out: size limit)" in text
    assert text.count("<details") == text.count("</details>")


def test_last_resort_cut_keeps_the_budget() -> None:
    units = [_big_unit(f"unit-{i:04}", 1, 1) for i in range(400)]

    text = markdown.render(_big_preview(*units), limit=5_000)

    assert len(text) <= 5_000
    assert text.startswith(markdown.MARKER)
    assert text.rstrip().endswith("the JSON report has it all.")


def test_default_budget_fits_github() -> None:
    units = [_big_unit(f"unit-{i:02}", 10, 60) for i in range(30)]

    text = markdown.render(_big_preview(*units))

    assert markdown.DEFAULT_LIMIT == 65_000
    assert len(text) <= markdown.DEFAULT_LIMIT


def test_too_small_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot hold a summary"):
        markdown.render(sample_preview(), limit=100)


def test_unit_refs_in_summaries_are_html_escaped() -> None:
    odd = UnitRef(ks_ref("x").kind, "flux-system", "a<b")
    preview = _big_preview(UnitPlan(unit=odd, status=UnitStatus.REMOVED, prune=True))

    text = markdown.render(preview)

    assert "<b>Kustomization/flux-system/a&lt;b</b>" in text
    assert re.search(r"<b>[^<]*<b", text) is None


def test_unknown_fate_is_alerted_above_the_fold_with_its_note() -> None:
    change = Change(
        action=Action.UNKNOWN,
        ref=ObjectRef("apps", "Deployment", "web", "api"),
        api_version="apps/v1",
        note="new to web, but apps failed at base and may render it there",
    )
    unit = UnitPlan(unit=APPS, status=UnitStatus.RENDERED, prune=True, changes=(change,))
    preview = Preview("a" * 40, "b" * 40, (ClusterPlan("clusters/production", (unit,)),))

    body = markdown.render(preview)

    assert "1 object may be created, deleted or moved" in body
    assert "- **unknown** `Deployment/web/api`" in body
    assert "apps failed at base and may render it there" in body
