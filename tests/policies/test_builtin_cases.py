"""Every built-in rule has fixture cases under tests/policies/cases/<id>/, and they all pass.

The cases use the user-facing format (`policies.fixtures`), so the format users test their own
rules with is the one the catalog is proven with.
"""

from __future__ import annotations

from pathlib import Path

from policies.fixtures import evaluate_case, load_case, run_case
from policies.registry import builtin_rules

CASES = Path(__file__).parent / "cases"


def test_every_builtin_rule_has_cases() -> None:
    missing = [rule_id for rule_id in builtin_rules() if not any((CASES / rule_id).glob("*.yaml"))]
    assert missing == []


def test_every_builtin_case_passes() -> None:
    rules = list(builtin_rules().values())
    failures = []
    for path in sorted(CASES.rglob("*.yaml")):
        result = run_case(
            load_case(path, display=str(path.relative_to(CASES))), lambda c: evaluate_case(c, rules)
        )
        if not result.passed:
            failures.append(
                f"{result.case.file}: missing {[str(m) for m in result.missing]}, "
                f"unexpected {[(f.rule, str(f.ref), f.message) for f in result.unexpected]}"
            )
    assert failures == []
