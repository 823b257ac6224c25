"""GP008 unresolved-substitution: a `${var}` expression reaches the cluster unexpanded.

Flux expands `${var}` only in units with `spec.postBuild`, and only when at least one variable
resolved (`substituteStrategy: WithVariables`); a manifest written for substitution in a unit
that does not substitute is applied with the literal `${cluster_name}` in it, which the API
server accepts for most string fields. This rule reports every `${name...}` expression left in a
rendered object of a Kustomization. Objects that want the literal text (dashboards, scripts)
say so with `kustomize.toolkit.fluxcd.io/substitute: disabled`, which also stops Flux from
touching them. HelmRelease output is not substituted by Flux and is not checked. `$${var}`, Flux's
escape for a literal, renders as `${var}` too and is reported; mark such objects as above.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from core.findings import Finding, Severity
from core.model import FLUX_KUSTOMIZE_GROUP, UnitKind
from policies.base import RuleMeta, finding
from policies.input import PolicyInput
from policies.rules.objects import marks

__all__ = ["RULE", "unresolved"]

META = RuleMeta(
    id="GP008",
    title="unresolved-substitution",
    severity=Severity.ERROR,
    summary="A ${var} expression is left in a rendered object.",
    docs=(
        "Define the variable in `spec.postBuild.substitute` or `substituteFrom` of the"
        " Kustomization, give it a default (`${var:=value}`), or mark the object"
        " `kustomize.toolkit.fluxcd.io/substitute: disabled` if the text is meant literally."
    ),
)

_EXPRESSION = re.compile(r"\$\{#?[_a-zA-Z][_a-zA-Z0-9]*[^}]*\}")
_DISABLED = f"{FLUX_KUSTOMIZE_GROUP}/substitute"


def unresolved(body: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Yield (field path, expression) for every `${...}` expression in an object's strings."""
    work: list[tuple[str, Any]] = [("", body)]
    while work:
        path, node = work.pop()
        if isinstance(node, Mapping):
            for key, value in reversed(list(node.items())):
                child = f"{path}.{key}" if path else str(key)
                match = _EXPRESSION.search(str(key))
                if match:
                    yield child, match.group(0)
                work.append((child, value))
        elif isinstance(node, list):
            for index in reversed(range(len(node))):
                work.append((f"{path}[{index}]", node[index]))
        elif isinstance(node, str):
            match = _EXPRESSION.search(node)
            if match:
                yield path, match.group(0)


@dataclass(frozen=True)
class _UnresolvedSubstitution:
    meta: RuleMeta = META

    def evaluate(self, policy_input: PolicyInput) -> Iterator[Finding]:
        for change in policy_input.changes:
            body = change.object
            if body is None or change.unit.kind is not UnitKind.KUSTOMIZATION:
                continue
            # One C-speed scan of the object's text skips the walk for almost every object.
            if b"${" not in _text(body) or "disabled" in marks(body, _DISABLED):
                continue
            found = list(unresolved(body))
            if found:
                path, expression = found[0]
                more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
                yield finding(
                    self.meta,
                    f"{change.ref} field {path} still holds {expression}{more} after"
                    f" substitution by {change.unit}",
                    change=change,
                )


def _text(body: Mapping[str, Any]) -> bytes:
    try:
        return orjson.dumps(body, default=str, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        return b"${"  # cannot be serialised cheaply: walk it


RULE = _UnresolvedSubstitution()
