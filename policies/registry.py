"""The built-in rule catalog: every module of `policies.rules` that defines `RULE`.

One module per rule; a module without `RULE` is a helper (shared parsing, workload shapes) and is
ignored. Ids must be unique and well-formed: a clash is a programming error, caught by the tests
the moment a rule is added, never at a user's run. Discovery only: no evaluation here.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from functools import cache

from policies import rules as rules_package
from policies.base import RULE_ID, Rule

__all__ = ["builtin_rules"]


@cache
def builtin_rules() -> Mapping[str, Rule]:
    """Return the built-in rules by id, in id order."""
    found: dict[str, Rule] = {}
    for info in pkgutil.iter_modules(rules_package.__path__):
        module = importlib.import_module(f"{rules_package.__name__}.{info.name}")
        rule = getattr(module, "RULE", None)
        if rule is None:
            continue
        if not isinstance(rule, Rule):
            raise TypeError(f"{module.__name__}.RULE does not satisfy the Rule protocol")
        rule_id = rule.meta.id
        if not RULE_ID.match(rule_id):
            raise ValueError(f"{module.__name__}: rule id {rule_id!r} is not like GP001")
        if rule_id in found:
            raise ValueError(f"{module.__name__}: rule id {rule_id} is already used")
        found[rule_id] = rule
    return dict(sorted(found.items()))
