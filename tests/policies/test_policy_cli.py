"""`tidegate policy test DIR`: users run their own cases against built-in and CEL rules."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from cli import main as cli_main

CASES = Path(__file__).parent / "cases"

RULE = """
apiVersion: tidegate.dev/v1alpha1
kind: Policy
metadata: {name: no-scratch-configmaps}
spec:
  severity: warning
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: ["*"], resources: [configmaps], operations: [CREATE]}
  validations:
  - expression: "!object.metadata.name.startsWith('scratch')"
    messageExpression: "'no scratch ConfigMaps: ' + object.metadata.name"
"""

CASE = """
case: a scratch ConfigMap is flagged by the user rule
rules: [no-scratch-configmaps]
head:
- unit: Kustomization/flux-system/apps
  objects:
  - {{apiVersion: v1, kind: ConfigMap, metadata: {{name: {name}, namespace: web}}}}
expect:
- {{rule: no-scratch-configmaps, object: ConfigMap/web/scratch-1, severity: warning}}
"""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def test_builtin_cases_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(CASES / "GP011", tmp_path / "cases")

    code = cli_main.main(["policy", "test", str(tmp_path / "cases"), "--policies", str(tmp_path)])

    out = capsys.readouterr().out
    assert code == 0, out
    assert out.splitlines()[-1] == "2 passed, 0 failed"


def test_user_rules_are_tested_and_a_failing_case_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path / "rules" / "scratch.yaml", RULE)
    _write(tmp_path / "cases" / "good.yaml", CASE.format(name="scratch-1"))
    _write(tmp_path / "cases" / "bad.yaml", CASE.format(name="scratch-2"))

    code = cli_main.main(
        ["policy", "test", str(tmp_path / "cases"), "--policies", str(tmp_path / "rules")]
    )

    out = capsys.readouterr().out
    assert code == 1
    assert "PASS good.yaml: a scratch ConfigMap is flagged by the user rule" in out
    assert "FAIL bad.yaml" in out
    assert "  missing: no-scratch-configmaps on ConfigMap/web/scratch-1" in out
    assert "  unexpected: no-scratch-configmaps on ConfigMap/web/scratch-2" in out
    assert out.splitlines()[-1] == "1 passed, 1 failed"


def test_a_broken_case_is_an_error_naming_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path / "cases" / "broken.yaml", "case: x\nhead: [{unit: Pod/a/b}]\n")

    code = cli_main.main(["policy", "test", str(tmp_path / "cases"), "--no-builtin"])

    assert code == 2
    assert "file broken.yaml, field head[0].unit" in capsys.readouterr().err


def test_a_rule_that_does_not_load_is_an_error_naming_the_expression(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path / "rules" / "scratch.yaml", RULE.replace("startsWith", "beginsWith"))
    _write(tmp_path / "cases" / "good.yaml", CASE.format(name="scratch-1"))

    code = cli_main.main(
        ["policy", "test", str(tmp_path / "cases"), "--policies", str(tmp_path / "rules")]
    )

    err = capsys.readouterr().err
    assert code == 2
    assert f"file {tmp_path / 'rules' / 'scratch.yaml'}" in err
    assert "Policy/no-scratch-configmaps" in err
    assert "spec.validations[0].expression" in err
