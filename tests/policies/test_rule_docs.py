"""docs/policies.md documents every built-in rule, with its id, title and the four sections."""

from __future__ import annotations

import re
from pathlib import Path

from policies.registry import builtin_rules

DOCS = Path(__file__).resolve().parents[2] / "docs" / "policies.md"


def test_every_rule_is_documented_with_what_why_fix_and_waive() -> None:
    text = DOCS.read_text()
    sections = {
        rule_id: body
        for rule_id, _title, body in re.findall(
            r"^## (GP\d{3}) (\S+)\n(.*?)(?=^## |\Z)", text, re.M | re.S
        )
    }
    headings = {m.group(1): m.group(2) for m in re.finditer(r"^## (GP\d{3}) (\S+)$", text, re.M)}
    rules = builtin_rules()
    assert headings == {rule_id: rule.meta.title for rule_id, rule in rules.items()}
    for rule_id in rules:
        body = sections[rule_id]
        for label in ("**What**", "**Why**", "**Fix**", "**Waive**"):
            assert label in body, f"{rule_id} lacks {label}"
        assert f"| {rule_id} | {rules[rule_id].meta.title} |" in text
