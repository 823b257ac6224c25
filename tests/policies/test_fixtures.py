"""The policy test fixture format: loading, exact matching, and precise errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from core.errors import InputError
from policies.fixtures import evaluate_case, load_case, run_case, run_directory
from tests.policies.cases import case
from tests.policies.toys import FlagDeletes

DELETE = """
case: deleting a ConfigMap is flagged
{rules}
base:
- unit: Kustomization/flux-system/apps
  objects:
  - {{apiVersion: v1, kind: ConfigMap, metadata: {{name: old, namespace: web}}}}
  - {{apiVersion: v1, kind: ConfigMap, metadata: {{name: other, namespace: web}}}}
head:
- unit: Kustomization/flux-system/apps
expect:
{expect}
"""

BOTH = """\
- {rule: TT001, object: ConfigMap/web/old, severity: warning, waived: false, message: deleted}
- {rule: TT001, object: ConfigMap/web/other}
"""


def _run(tmp_path: Path, expect: str, rules: str = "") -> tuple[list[str], list[str]]:
    loaded = case(tmp_path, DELETE.format(expect=textwrap.indent(expect, ""), rules=rules))
    result = run_case(loaded, lambda c: evaluate_case(c, [FlagDeletes()]))
    return [str(m) for m in result.missing], [str(f.ref) for f in result.unexpected]


def test_exact_expectations_pass(tmp_path: Path) -> None:
    assert _run(tmp_path, BOTH) == ([], [])


def test_a_missing_and_an_unexpected_finding_are_both_reported(tmp_path: Path) -> None:
    expect = (
        "- {rule: TT001, object: ConfigMap/web/old}\n- {rule: TT001, object: ConfigMap/web/x}\n"
    )
    assert _run(tmp_path, expect) == (["TT001 on ConfigMap/web/x"], ["ConfigMap/web/other"])


def test_severity_and_message_must_match_when_given(tmp_path: Path) -> None:
    expect = "- {rule: TT001, object: ConfigMap/web/old, severity: error}\n"
    missing, unexpected = _run(tmp_path, expect)
    assert missing == ["TT001 on ConfigMap/web/old"]
    assert sorted(unexpected) == ["ConfigMap/web/old", "ConfigMap/web/other"]


def test_rules_limits_which_findings_are_compared(tmp_path: Path) -> None:
    assert _run(tmp_path, "  []", rules="rules: [GP001]") == ([], [])


def test_run_directory_runs_every_case_in_path_order(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "two.yaml").write_text(DELETE.format(expect=BOTH, rules=""))
    (tmp_path / "a.yml").write_text(DELETE.format(expect="  []", rules=""))
    results = run_directory(tmp_path, lambda c: evaluate_case(c, [FlagDeletes()]))
    assert [(r.case.file, r.passed) for r in results] == [("a.yml", False), ("b/two.yaml", True)]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("base: []", "case"),
        ("case: x\nbase: [{unit: Deployment/a/b}]", "base[0].unit"),
        (
            "case: x\nhead: [{unit: Kustomization/a/b, objects: [{kind: X}]}]",
            "head[0].objects[0].apiVersion",
        ),
        ("case: x\nexpect: [{object: X/y}]", "expect[0].rule"),
        ("case: x\nbase: [{unit: Kustomization/a/b, prune: maybe}]", "base[0].prune"),
        ("case: x\nextra: 1", "case file.extra"),
        ("case: x\nconfig: {rules: {GP001: {severity: fatal}}}", "policies.rules.GP001.severity"),
    ],
)
def test_mistakes_name_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as caught:
        load_case(path)
    assert caught.value.file == "bad.yaml"
    assert caught.value.field == field


def test_an_empty_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no \*\.yaml"):
        run_directory(tmp_path, lambda c: evaluate_case(c, []))
