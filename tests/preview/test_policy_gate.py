"""`tidegate preview` with the policy gate, end to end on real repositories.

Rules here are the engine's test rules, put in place of the built-in catalog at its one seam
(`policies.gate.builtin_rules`), so these tests pin the command's behaviour (exit codes,
configuration and CODEOWNERS read at base, report files) independently of the catalog.
"""

from __future__ import annotations

import datetime
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from policies import gate
from tests.policies.toys import FlagDeletes, NeedsApproval, Unwaivable
from tests.preview.conftest import Preview as RunPreview
from tests.preview.gitrepo import commit, configmap, flux_cluster, kustomization, new_repo

PROD = "clusters/production"


@pytest.fixture(autouse=True)
def _toy_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    rules = {"TT001": FlagDeletes(), "TT002": NeedsApproval()}
    monkeypatch.setattr(gate, "builtin_rules", lambda: rules)


def _repo(tmp_path: Path, **extra: str) -> tuple[Path, str]:
    return new_repo(
        tmp_path / "repo",
        {
            **flux_cluster(),
            f"{PROD}/apps.yaml": kustomization("apps", "./apps"),
            "apps/old.yaml": configmap("old", "apps", a="1"),
            "apps/keep.yaml": configmap("keep", "apps", k="1"),
            "CODEOWNERS": "* @platform\n/apps/new.yaml @alice\n",
            **extra,
        },
    )


def test_a_warning_passes_the_gate_and_every_report_has_it(
    tmp_path: Path, preview: RunPreview
) -> None:
    repo, base = _repo(tmp_path)
    head = commit(repo, {"apps/old.yaml": None}, "drop old")
    sarif_file, junit_file = tmp_path / "out.sarif", tmp_path / "out.xml"

    outcome = preview(repo, base, head, "--sarif", str(sarif_file), "--junit", str(junit_file))

    assert outcome.code == 1, outcome.stderr
    [found] = outcome.data["findings"]
    assert (found["rule"], found["severity"], found["kind"], found["name"]) == (
        "TT001",
        "warning",
        "ConfigMap",
        "old",
    )
    assert (found["cluster"], found["file"], found["waived"]) == (PROD, "apps/old.yaml", False)
    assert found["line"] == 1  # located in the base revision's file, which the merge deletes
    assert outcome.data["gate"]["passed"] is True
    results = json.loads(sarif_file.read_text())["runs"][0]["results"]
    assert [r["ruleId"] for r in results] == ["TT001"]
    junit = ET.fromstring(junit_file.read_text())  # noqa: S314 - our own output
    assert junit.get("failures") == "0"


def test_an_approval_required_finding_fails_the_gate_until_a_code_owner_approves(
    tmp_path: Path, preview: RunPreview
) -> None:
    repo, base = _repo(tmp_path)
    head = commit(repo, {"apps/new.yaml": configmap("new", "apps", b="2")}, "add new")

    blocked = preview(repo, base, head)
    assert blocked.code == 3
    [found] = blocked.data["findings"]
    assert (found["rule"], found["approvalRequired"], found["waived"]) == ("TT002", True, False)
    assert preview(repo, base, head, "--approved-by", "platform").code == 3
    approved = preview(repo, base, head, "--approved-by", "alice")
    assert approved.code == 1
    assert approved.data["findings"][0]["waiver"]["kind"] == "approval"
    markdown = preview(repo, base, head, fmt="markdown")
    assert markdown.code == 3
    assert "needs an approving review of the head commit from @alice" in markdown.report


def test_configuration_comes_from_base_and_the_head_cannot_weaken_it(
    tmp_path: Path, preview: RunPreview
) -> None:
    strict = "policies:\n  rules:\n    TT001: {severity: error}\n"
    repo, base = _repo(tmp_path, **{".tidegate.yaml": strict})
    weaker = "policies:\n  rules:\n    TT001: {severity: notice}\n"
    head = commit(repo, {"apps/old.yaml": None, ".tidegate.yaml": weaker}, "drop and weaken")

    outcome = preview(repo, base, head)

    assert outcome.code == 3
    assert outcome.data["findings"][0]["severity"] == "error"


def test_a_head_configuration_may_make_rules_stricter(tmp_path: Path, preview: RunPreview) -> None:
    repo, base = _repo(tmp_path)
    stricter = "policies:\n  rules:\n    TT001: {severity: error}\n"
    head = commit(repo, {"apps/old.yaml": None, ".tidegate.yaml": stricter}, "drop, stricter")

    assert preview(repo, base, head).code == 3


def test_without_policies_there_is_no_gate(tmp_path: Path, preview: RunPreview) -> None:
    repo, base = _repo(tmp_path)
    head = commit(repo, {"apps/new.yaml": configmap("new", "apps", b="2")}, "add new")

    outcome = preview(repo, base, head, "--no-policies")

    assert outcome.code == 1
    assert (outcome.data["findings"], outcome.data["gate"]) == ([], None)


def test_a_bad_base_configuration_is_an_error_naming_the_field(
    tmp_path: Path, preview: RunPreview
) -> None:
    repo, base = _repo(
        tmp_path, **{".tidegate.yaml": "policies: {rules: {TT001: {severity: x}}}\n"}
    )
    head = commit(repo, {"apps/old.yaml": None}, "drop old")

    outcome = preview(repo, base, head)

    assert outcome.code == 2
    assert "file .tidegate.yaml, field policies.rules.TT001.severity" in outcome.stderr


NO_BAD = """
apiVersion: tidegate.dev/v1alpha1
kind: Policy
metadata: {name: no-bad-keys}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], resources: [configmaps], operations: [CREATE, UPDATE]}
  validations:
  - expression: "!has(object.data) || !('bad' in object.data)"
    messageExpression: "'ConfigMap ' + object.metadata.name + ' has a bad key'"
"""


def test_a_user_rule_from_base_gates_and_an_annotation_waives_it(
    tmp_path: Path, preview: RunPreview
) -> None:
    repo, base = _repo(tmp_path, **{".tidegate/policies/no-bad.yaml": NO_BAD})
    bad = configmap("new", "apps", bad="1")
    head = commit(repo, {"apps/new.yaml": bad}, "add a bad key")

    outcome = preview(repo, base, head)

    assert outcome.code == 3
    found = [f for f in outcome.data["findings"] if f["rule"] == "no-bad-keys"]
    assert [(f["message"], f["severity"], f["file"]) for f in found] == [
        ("ConfigMap new has a bad key", "error", "apps/new.yaml")
    ]
    waived_doc = bad.replace(
        "metadata: {name: new, namespace: apps}",
        "metadata: {name: new, namespace: apps, "
        'annotations: {tidegate.dev/waive-no-bad-keys: "legacy"}}',
    )
    waived_head = commit(repo, {"apps/new.yaml": waived_doc}, "waive it")
    approved = preview(repo, base, waived_head, "--approved-by", "alice")
    assert approved.code == 1, approved.data["findings"]
    [waived] = [f for f in approved.data["findings"] if f["rule"] == "no-bad-keys"]
    assert waived["waiver"]["reason"] == "legacy"


def test_a_user_rule_added_by_the_pull_request_does_not_judge_it(
    tmp_path: Path, preview: RunPreview, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gate, "builtin_rules", dict)
    repo, base = _repo(tmp_path)
    head = commit(
        repo,
        {
            ".tidegate/policies/no-bad.yaml": NO_BAD,
            "apps/keep.yaml": configmap("keep", "apps", bad="1"),
        },
        "add a rule and a bad key",
    )

    outcome = preview(repo, base, head)

    assert outcome.code == 1
    rules = {f["rule"]: f for f in outcome.data["findings"]}
    assert "no-bad-keys" not in rules
    assert rules["policy-pending"]["file"] == ".tidegate/policies/no-bad.yaml"


@pytest.fixture
def unwaivable_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """Add an error rule on deletions that only the waiver file may waive."""
    rules = {"TT001": FlagDeletes(), "TT002": NeedsApproval(), "TT004": Unwaivable()}
    monkeypatch.setattr(gate, "builtin_rules", lambda: rules)


def _waiver_file(expires: datetime.date) -> str:
    return (
        "waivers:\n"
        "- rules: [TT004]\n"
        "  reason: the data moved to the new cluster\n"
        '  owner: "@platform"\n'
        f"  expires: {expires.isoformat()}\n"
        "  match: {kind: ConfigMap, name: old}\n"
    )


@pytest.mark.usefixtures("unwaivable_rule")
@pytest.mark.parametrize(("days", "passes"), [(30, True), (-1, False)])
def test_a_waiver_file_at_base_unblocks_the_gate_until_it_expires(
    tmp_path: Path, preview: RunPreview, days: int, passes: bool
) -> None:
    expires = datetime.date.today() + datetime.timedelta(days=days)
    repo, base = _repo(tmp_path, **{".tidegate/waivers.yaml": _waiver_file(expires)})
    head = commit(repo, {"apps/old.yaml": None}, "drop old")

    outcome = preview(repo, base, head)

    found = {f["rule"]: f for f in outcome.data["findings"]}
    assert found["TT004"]["waived"] is passes
    if passes:
        assert outcome.code == 1, outcome.data["findings"]
        assert found["TT004"]["waiver"]["kind"] == "file"
    else:
        assert outcome.code == 3
        assert f"expired on {expires.isoformat()}" in found["waiver-expired"]["message"]


@pytest.mark.usefixtures("unwaivable_rule")
def test_a_waiver_file_added_by_the_pull_request_does_not_waive_it(
    tmp_path: Path, preview: RunPreview
) -> None:
    repo, base = _repo(tmp_path)
    expires = datetime.date.today() + datetime.timedelta(days=30)
    head = commit(
        repo,
        {"apps/old.yaml": None, ".tidegate/waivers.yaml": _waiver_file(expires)},
        "drop old and waive it myself",
    )

    outcome = preview(repo, base, head)

    assert outcome.code == 3
    found = {f["rule"]: f for f in outcome.data["findings"]}
    assert found["TT004"]["waived"] is False
    assert "waiver-pending" in found
