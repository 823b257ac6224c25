"""Predicted vs applied: the comparator's rules and its Markdown report."""

from __future__ import annotations

from core.changes import Action, Change, UnitPlan, UnitStatus
from core.model import ObjectRef, UnitKind, UnitRef
from core.predicted import Applied, Difference, compare
from core.report.predicted import MARKER, comparison_markdown

UNIT = UnitRef(UnitKind.KUSTOMIZATION, "flux-system", "apps")


def ref(name: str, kind: str = "ConfigMap") -> ObjectRef:
    return ObjectRef("", kind, "web", name)


def plan(*changes: tuple[Action, ObjectRef]) -> UnitPlan:
    return UnitPlan(
        unit=UNIT,
        status=UnitStatus.RENDERED,
        prune=True,
        changes=tuple(Change(action, r, "v1") for action, r in changes),
    )


def test_each_predicted_action_matches_its_applied_outcome() -> None:
    predicted = plan(
        (Action.CREATE, ref("new")),
        (Action.UPDATE, ref("changed")),
        (Action.DELETE, ref("gone")),
        (Action.ORPHAN, ref("left")),
        (Action.MOVE, ref("moved")),
        (Action.UNKNOWN, ref("unsure")),
    )
    applied = {
        ref("new"): Applied.CREATED,
        ref("changed"): Applied.CONFIGURED,
        ref("gone"): Applied.DELETED,
        ref("moved"): Applied.CONFIGURED,
        ref("unsure"): Applied.CREATED,
        ref("same"): Applied.UNCHANGED,
        ref("disabled"): Applied.SKIPPED,
    }
    comparison = compare(predicted, applied)
    assert comparison.matched
    assert comparison.headline == "applied as previewed"
    assert (comparison.predicted, comparison.changed) == (5, 5)


def test_drift_reverted_is_a_change_the_preview_did_not_show() -> None:
    comparison = compare(plan(), {ref("drifted"): Applied.CONFIGURED})
    (difference,) = comparison.differences
    assert difference == Difference(ref("drifted"), None, Applied.CONFIGURED)
    assert "drift reverted" in difference.explanation
    assert comparison.headline == "applied with 1 difference"


def test_a_predicted_change_the_apply_did_not_make_is_a_difference() -> None:
    comparison = compare(
        plan(
            (Action.UPDATE, ref("already")),
            (Action.CREATE, ref("existed")),
            (Action.UPDATE, ref("missing")),
            (Action.DELETE, ref("kept")),
            (Action.ORPHAN, ref("pruned")),
        ),
        {
            ref("already"): Applied.UNCHANGED,
            ref("existed"): Applied.CONFIGURED,
            ref("missing"): Applied.CREATED,
            ref("pruned"): Applied.DELETED,
        },
    )
    by_name = {d.ref.name: d for d in comparison.differences}
    assert sorted(by_name) == ["already", "existed", "kept", "missing", "pruned"]
    assert "already had it" in by_name["already"].explanation
    assert "already existed" in by_name["existed"].explanation
    assert "missing from the cluster" in by_name["missing"].explanation
    assert by_name["kept"].applied is None
    assert by_name["pruned"].explanation == "previewed as orphan but deleted"
    assert comparison.headline == "applied with 5 differences"


def test_an_orphan_left_alone_and_unreported_matches() -> None:
    assert compare(plan((Action.ORPHAN, ref("left"))), {}).matched


def test_the_report_names_objects_in_safe_code_spans_and_caps_its_rows() -> None:
    hostile = ObjectRef("", "Deployment", "web", "x`|y")
    comparison = compare(
        plan(),
        {
            hostile: Applied.CONFIGURED,
            **{ref(f"c{i}", "Service"): Applied.CREATED for i in range(3)},
        },
    )
    body = comparison_markdown(comparison, UNIT, "main@sha1:abc", cluster="prod", limit=3)
    assert body.startswith(MARKER + "\n")
    assert "applied with 4 differences" in body
    assert "``Deployment web/x`\\|y``" in body
    assert body.count("\n| `") == 3
    assert "…and 1 more difference." in body
    matched = comparison_markdown(compare(plan(), {}), UNIT, "main@sha1:abc")
    assert "applied as previewed" in matched
    assert "| Object |" not in matched
