"""Waivers and approvals: annotations, the waiver file, code-owner approvals on the head commit."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from core.errors import InputError
from core.findings import Finding, WaiverKind
from policies.base import Rule
from policies.gate import GateOutcome, run_gate
from policies.input import PolicyInput
from policies.waivers import CODEOWNERS_OF, Approval, Waivers, parse_waiver_file
from tests.policies.cases import case
from tests.policies.files import DictFiles
from tests.policies.toys import Broken, FlagDeletes, NeedsApproval, Unwaivable

TODAY = datetime.date(2026, 11, 30)

SIDES = """
case: waivers
cluster: clusters/production
base:
- unit: Kustomization/flux-system/apps
  objects:
  - apiVersion: v1
    kind: ConfigMap
    metadata:
      name: gone
      namespace: web
      annotations: {{tidegate.dev/waive-TT001: "{gone_reason}"}}
  - apiVersion: v1
    kind: ConfigMap
    metadata:
      name: kept
      namespace: web
      annotations: {{{kept_base}}}
    data: {{a: "1"}}
head:
- unit: Kustomization/flux-system/apps
  objects:
  - apiVersion: v1
    kind: ConfigMap
    metadata:
      name: kept
      namespace: web
      annotations: {{tidegate.dev/waive-TT002: "reviewed in the incident review"}}
    data: {{a: "2"}}
  - apiVersion: v1
    kind: ConfigMap
    metadata:
      name: new
      namespace: web
      annotations: {{tidegate.dev/waive-TT002: "I approve my own change"}}
"""

CODEOWNERS = """
* @platform
/case.yaml @alice @org/sre
/.tidegate/ @security
"""


def _gate(
    tmp_path: Path,
    rules: list[Rule],
    *,
    gone_reason: str = "replaced by the shared config",
    kept_base: str = "",
    base_files: dict[str, str] | None = None,
    head_files: dict[str, str] | None = None,
    approvals: tuple[Approval, ...] = (),
    codeowners_at: str = "CODEOWNERS",
    host: str = "github",
) -> GateOutcome:
    loaded = case(tmp_path, SIDES.format(gone_reason=gone_reason, kept_base=kept_base))

    def waivers(
        policy_input: PolicyInput, base: DictFiles, head: DictFiles, by_id: dict[str, Rule]
    ) -> Waivers:
        return Waivers(
            policy_input,
            base,
            head,
            by_id,
            approvals=approvals,
            today=TODAY,
            codeowners_files=CODEOWNERS_OF[host],
        )

    return run_gate(
        loaded.preview,
        DictFiles({codeowners_at: CODEOWNERS, **(base_files or {})}),
        DictFiles(head_files),
        rules=rules,
        waivers=waivers,  # type: ignore[arg-type]
    )


def _by_object(outcome: GateOutcome) -> dict[tuple[str, str], Finding]:
    return {(f.rule, f.ref.name if f.ref else ""): f for f in outcome.result.findings}


def test_annotation_on_the_base_object_waives_a_deletion(tmp_path: Path) -> None:
    found = _by_object(_gate(tmp_path, [FlagDeletes()]))[("TT001", "gone")]
    assert found.waiver is not None
    assert found.waiver.kind is WaiverKind.ANNOTATION
    assert found.waiver.reason == "replaced by the shared config"
    assert "(base)" in found.waiver.where


def test_annotation_without_a_reason_waives_nothing_and_says_so(tmp_path: Path) -> None:
    outcome = _gate(tmp_path, [FlagDeletes()], gone_reason="  ")
    found = _by_object(outcome)
    assert not found[("TT001", "gone")].waived
    assert "has no reason" in found[("waiver-invalid", "gone")].message


def test_approval_required_rule_ignores_a_waiver_added_in_the_same_pull_request(
    tmp_path: Path,
) -> None:
    outcome = _gate(tmp_path, [NeedsApproval()])
    found = _by_object(outcome)
    assert not found[("TT002", "new")].waived
    assert not found[("TT002", "kept")].waived
    assert "@alice, @org/sre" in found[("TT002", "new")].how_to_waive
    assert not outcome.result.passed


def test_approval_required_rule_accepts_a_waiver_already_at_base(tmp_path: Path) -> None:
    outcome = _gate(
        tmp_path,
        [NeedsApproval()],
        kept_base='tidegate.dev/waive-TT002: "reviewed in the incident review"',
    )
    found = _by_object(outcome)
    assert found[("TT002", "kept")].waived
    assert not found[("TT002", "new")].waived


@pytest.mark.parametrize(
    ("reviewer", "commit", "waived"),
    [
        ("alice", "head", True),
        ("@org/sre", "head", True),
        ("ALICE", "head", True),
        ("alice", "an-older-commit", False),
        ("platform", "head", False),  # owns other paths, not this one
        ("bob", "head", False),
    ],
)
def test_code_owner_approval_on_the_head_commit(
    tmp_path: Path, reviewer: str, commit: str, waived: bool
) -> None:
    outcome = _gate(tmp_path, [NeedsApproval()], approvals=(Approval(reviewer, commit),))
    found = _by_object(outcome)[("TT002", "new")]
    assert found.waived is waived
    if waived:
        assert found.waiver is not None
        assert found.waiver.kind is WaiverKind.APPROVAL
    assert outcome.result.passed is waived


def test_gitlab_repositories_read_codeowners_where_gitlab_does(tmp_path: Path) -> None:
    def waived(host: str, name: str, **base: str) -> bool:
        (tmp_path / f"{host}-{name}").mkdir()
        outcome = _gate(
            tmp_path / f"{host}-{name}",
            [NeedsApproval()],
            approvals=(Approval("alice", "head"),),
            codeowners_at=".gitlab/CODEOWNERS",
            host=host,
            base_files=base,
        )
        return _by_object(outcome)[("TT002", "new")].waived

    assert waived("gitlab", "only")
    # GitHub never reads .gitlab/: there the same file names no owner.
    assert not waived("github", "only")
    # GitLab's order puts the root file before .gitlab/ (GitHub's puts .github/ before both).
    assert not waived("gitlab", "root", CODEOWNERS="* @platform\n")


def test_rules_can_refuse_annotation_waivers(tmp_path: Path) -> None:
    found = _by_object(_gate(tmp_path, [Unwaivable()]))
    assert not found[("TT004", "gone")].waived


WAIVERS = """
waivers:
- rules: [TT004]
  reason: the data moved to the new cluster
  owner: "@platform"
  expires: 2026-12-31
  match: {cluster: "clusters/*", kind: ConfigMap, name: "go*"}
"""


def test_waiver_file_at_base_waives_what_it_matches(tmp_path: Path) -> None:
    outcome = _gate(tmp_path, [Unwaivable()], base_files={".tidegate/waivers.yaml": WAIVERS})
    found = _by_object(outcome)[("TT004", "gone")]
    assert found.waiver is not None
    assert found.waiver.kind is WaiverKind.FILE
    assert (found.waiver.by, found.waiver.expires) == ("@platform", "2026-12-31")
    assert found.waiver.where == ".tidegate/waivers.yaml:3"
    assert outcome.result.passed


def test_waiver_file_selectors_must_all_match(tmp_path: Path) -> None:
    narrow = WAIVERS.replace('name: "go*"', 'name: "other"')
    outcome = _gate(tmp_path, [Unwaivable()], base_files={".tidegate/waivers.yaml": narrow})
    assert not _by_object(outcome)[("TT004", "gone")].waived


def test_expired_waivers_waive_nothing_and_are_findings(tmp_path: Path) -> None:
    expired = WAIVERS.replace("2026-12-31", "2026-11-29")
    outcome = _gate(tmp_path, [Unwaivable()], base_files={".tidegate/waivers.yaml": expired})
    found = _by_object(outcome)
    assert not found[("TT004", "gone")].waived
    expiry = found[("waiver-expired", "")]
    assert "expired on 2026-11-29" in expiry.message
    assert (expiry.file, expiry.line) == (".tidegate/waivers.yaml", 3)


def test_waivers_added_in_the_pull_request_wait_for_an_owner_of_the_waiver_file(
    tmp_path: Path,
) -> None:
    pending = _gate(tmp_path, [Unwaivable()], head_files={".tidegate/waivers.yaml": WAIVERS})
    found = _by_object(pending)
    assert not found[("TT004", "gone")].waived
    assert "takes effect after the merge" in found[("waiver-pending", "")].message
    approved = _gate(
        tmp_path,
        [Unwaivable()],
        head_files={".tidegate/waivers.yaml": WAIVERS},
        approvals=(Approval("security", "head"),),
    )
    assert _by_object(approved)[("TT004", "gone")].waived


def test_a_crashed_rule_is_never_waived(tmp_path: Path) -> None:
    waive_all = WAIVERS.replace("[TT004]", "[rule-error]").replace("match: ", "x: ")
    waive_all = waive_all.replace(
        '  x: {cluster: "clusters/*", kind: ConfigMap, name: "go*"}\n', ""
    )
    outcome = _gate(tmp_path, [Broken()], base_files={".tidegate/waivers.yaml": waive_all})
    assert not outcome.result.passed


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("waivers: [{rules: [], reason: r, owner: o, expires: 2026-01-01}]", "waivers[0].rules"),
        ("waivers: [{rules: [A], owner: o, expires: 2026-01-01}]", "waivers[0].reason"),
        ("waivers: [{rules: [A], reason: r, expires: 2026-01-01}]", "waivers[0].owner"),
        ("waivers: [{rules: [A], reason: r, owner: o}]", "waivers[0].expires"),
        ("waivers: [{rules: [A], reason: r, owner: o, expires: soon}]", "waivers[0].expires"),
        (
            "waivers: [{rules: [A], reason: r, owner: o, expires: 2026-01-01, match: {x: y}}]",
            "waivers[0].match",
        ),
        ("waivers: {}", "waivers"),
    ],
)
def test_waiver_file_mistakes_name_the_entry_and_field(text: str, field: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_waiver_file(text)
    assert caught.value.field == field
    assert caught.value.file == ".tidegate/waivers.yaml"
