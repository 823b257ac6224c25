"""The JSON report: the public contract.

Aspects covered:
- the exact contract names at every level (top, cluster, unit, change, summary), with the added
  fields, and their types;
- values: statuses and actions as strings, `movedFrom` and `parent` as `Kind/namespace/name`,
  null error, cluster-scoped objects with an empty namespace, noise counts and notes;
- `dumps` is valid, stable JSON that round-trips to `to_json`;
- masking: canary Secret values planted through `Masker` (updated, created, deleted, in a failed
  unit's error, in a cluster error) appear nowhere in the output, and neither does any token.
"""

from __future__ import annotations

import json
from typing import Any

from core.changes import Action, Change, ClusterPlan, Preview, UnitPlan, UnitStatus
from core.errors import Failure
from core.model import ObjectRef
from core.plan import plan as planning
from core.report import jsonout
from tests.plan.builders import CLUSTER, cluster, deployment, flux_object, ks
from tests.report.samples import APPS, CANARIES, sample_preview, secret_preview

CONTRACT_TOP = {"base", "head", "clusters", "summary"}
CONTRACT_CLUSTER = {"path", "errors", "units"}
CONTRACT_UNIT = {"kind", "namespace", "name", "status", "prune", "error", "changes"}
CONTRACT_CHANGE = {
    "action",
    "apiVersion",
    "kind",
    "namespace",
    "name",
    "movedFrom",
    "fields",
    "diff",
}
CONTRACT_SUMMARY = {"create", "update", "delete", "orphan", "move", "failed"}


def _unit(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(u for u in data["clusters"][0]["units"] if u["name"] == name)


def test_contract_names_are_present_at_every_level() -> None:
    data = jsonout.to_json(sample_preview())

    assert data.keys() >= CONTRACT_TOP
    assert data["summary"].keys() >= CONTRACT_SUMMARY
    for cluster_data in data["clusters"]:
        assert cluster_data.keys() >= CONTRACT_CLUSTER
        for unit in cluster_data["units"]:
            assert unit.keys() >= CONTRACT_UNIT
            for change in unit["changes"]:
                assert change.keys() >= CONTRACT_CHANGE


def test_contract_values_have_the_documented_types() -> None:
    data = jsonout.to_json(sample_preview())

    assert (data["base"], data["head"]) == ("a" * 40, "b" * 40)
    assert data["clusters"][0]["path"] == CLUSTER
    assert data["clusters"][0]["errors"] == []
    apps = _unit(data, "apps")
    assert apps["kind"] == "Kustomization"
    assert apps["namespace"] == "flux-system"
    assert apps["status"] == "rendered"
    assert apps["prune"] is True
    assert apps["error"] is None
    assert [(c["action"], c["kind"], c["name"]) for c in apps["changes"]] == [
        ("delete", "ConfigMap", "gone"),
        ("create", "ConfigMap", "new"),
        ("update", "Deployment", "api"),
    ]
    update = apps["changes"][2]
    assert update["apiVersion"] == "apps/v1"
    assert update["namespace"] == "web"
    assert update["fields"] == ["spec.replicas"]
    assert update["diff"].startswith("--- before/Deployment/web/api\n+++ after/Deployment/web/api")
    assert update["movedFrom"] is None


def test_moved_from_is_a_kind_namespace_name_string() -> None:
    web = _unit(jsonout.to_json(sample_preview()), "web")

    [move] = web["changes"]
    assert move["action"] == "move"
    assert move["movedFrom"] == "Kustomization/flux-system/apps"


def test_summary_counts_actions_failures_and_errors() -> None:
    summary = jsonout.to_json(sample_preview())["summary"]

    assert summary == {
        "create": 1,
        "update": 1,
        "delete": 1,
        "orphan": 0,
        "move": 1,
        "unknown": 0,
        "failed": 0,
        "unavailable": 0,
        "errors": 0,
    }


def test_added_fields_describe_units_beyond_the_contract() -> None:
    data = jsonout.to_json(sample_preview())

    apps = _unit(data, "apps")
    assert data["schemaVersion"] == jsonout.SCHEMA_VERSION
    assert (data["failed"], data["changed"]) == (False, True)
    assert apps["suppressed"] == {"helm-chart-labels": 1}
    assert apps["changes"][2]["suppressed"] == {"helm-chart-labels": 1}
    assert apps["parent"] == "Kustomization/flux-system/flux-system"
    assert (apps["suspended"], apps["skipped"], apps["noiseOnlyObjects"]) == (False, 0, 0)
    assert apps["changes"][2]["group"] == "apps"


def test_removed_unit_carries_its_note() -> None:
    base = cluster(ks("flux-system", flux_object(APPS)), ks("apps", deployment()))
    head = cluster(ks("flux-system"))
    preview = planning.plan_preview("a", "b", {CLUSTER: base}, {CLUSTER: head})

    apps = _unit(jsonout.to_json(preview), "apps")

    assert apps["status"] == "removed"
    assert "deleted" in apps["note"]


def test_plain_unit_plans_and_cluster_scoped_objects_serialize() -> None:
    namespace = ObjectRef("", "Namespace", "", "web")
    unit = UnitPlan(
        unit=APPS,
        status=UnitStatus.ADDED,
        prune=False,
        changes=(Change(Action.CREATE, namespace, "v1"),),
    )
    preview = Preview("a", "b", (ClusterPlan("clusters/x", (unit,), errors=("boom",)),))

    data = jsonout.to_json(preview)

    [change] = data["clusters"][0]["units"][0]["changes"]
    assert change["namespace"] == ""
    assert data["clusters"][0]["errors"] == ["boom"]
    assert data["summary"]["errors"] == 1
    assert data["clusters"][0]["units"][0]["note"] is None


def test_dumps_is_stable_json_that_round_trips() -> None:
    preview = sample_preview()

    text = jsonout.dumps(preview)

    assert text == jsonout.dumps(preview)
    assert text.endswith("\n")
    assert json.loads(text) == jsonout.to_json(preview)
    assert "\n" not in jsonout.dumps(preview, indent=None).rstrip("\n")


# Every kind of character a report may carry: controls (escaped), DEL and U+2028 (kept as they
# are), quotes and backslashes, accents, CJK and characters outside the BMP.
AWKWARD = 'a\x00\x07\x1f\x7f\u2028"q"\\b\ncafé 配置 \U0001f600 \t\r\x0b\x0c'


def _awkward_preview(text: str) -> Preview:
    namespace = ObjectRef("", "Namespace", "", text)
    change = Change(Action.UPDATE, namespace, "v1", fields=(text,), diff=text)
    unit = UnitPlan(unit=APPS, status=UnitStatus.RENDERED, prune=True, changes=(change,))
    return Preview("a", "b", (ClusterPlan(text, (unit,), errors=(text,)),))


def test_the_report_is_byte_for_byte_what_json_dumps_writes() -> None:
    for preview in (sample_preview(), _awkward_preview(AWKWARD)):
        expected = json.dumps(jsonout.to_json(preview), indent=2, ensure_ascii=False) + "\n"

        assert jsonout.dumps(preview) == expected


def test_text_the_fast_encoder_refuses_is_written_all_the_same() -> None:
    # A path that is not UTF-8 reaches the report as a lone surrogate (surrogateescape).
    preview = _awkward_preview("apps/\udcff.yaml")

    text = jsonout.dumps(preview)

    text.encode()  # UTF-8 that stdout and files take
    assert '"apps/\\udcff.yaml"' in text
    assert json.loads(text) == jsonout.to_json(preview)


def test_no_canary_and_no_token_in_json() -> None:
    text = jsonout.dumps(secret_preview())

    for canary in CANARIES:
        assert canary not in text
    assert "tidegate:masked" not in text
    assert "*** (before)" in text
    assert "*** (after)" in text


def test_failed_units_carry_their_typed_reason() -> None:
    base = cluster(ks("flux-system", flux_object(APPS)), ks("apps", deployment()))
    head = cluster(
        ks("flux-system", flux_object(APPS)),
        ks("apps", error="kustomize build failed", failure=Failure.BUILD),
    )
    preview = planning.plan_preview("a", "b", {CLUSTER: base}, {CLUSTER: head})

    data = jsonout.to_json(preview)

    assert _unit(data, "apps")["reason"] == "build"
    assert _unit(data, "flux-system")["reason"] is None
