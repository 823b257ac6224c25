"""The built-in catalog: every rule module is found, with a unique, well-formed id."""

from __future__ import annotations

import pkgutil

from policies import rules
from policies.base import RULE_ID, Rule
from policies.registry import builtin_rules


def test_every_rule_module_is_registered_under_a_unique_id() -> None:
    catalog = builtin_rules()
    modules = [
        info.name
        for info in pkgutil.iter_modules(rules.__path__)
        if hasattr(__import__(f"policies.rules.{info.name}", fromlist=["RULE"]), "RULE")
    ]
    assert len(catalog) == len(modules)
    assert list(catalog) == sorted(catalog)
    for rule_id, rule in catalog.items():
        assert isinstance(rule, Rule)
        assert RULE_ID.match(rule_id)
        assert rule.meta.id == rule_id
        assert rule.meta.summary
        assert rule.meta.title
