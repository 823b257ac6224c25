"""GP013 schema-invalid: a rendered object does not match its kind's schema.

A wrong type, a missing required field or a field the schema does not declare makes the
Kustomization's server-side apply fail ("field not declared in schema", "Required value"), and
with it every other object of the unit. Built-in kinds are checked against the packaged strict
schemas of the target release, custom resources against the `openAPIV3Schema` of their
CustomResourceDefinition rendered at head (`policies.rules.schemas`). Kinds with neither (a CRD
installed outside the repository) are not checked, and nor is a CRD version the definition does
not list: the finding says so instead of guessing. Objects the pull request creates, changes or
moves are checked.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from core.findings import Finding, Severity
from policies.base import RuleMeta, finding
from policies.input import ChangeInput, PolicyInput
from policies.rules.api_versions import parse_minor
from policies.rules.objects import get
from policies.rules.schemas import (
    Problem,
    builtin_validator,
    crd_validator,
    problems,
    schema_release,
)

__all__ = ["RULE"]

META = RuleMeta(
    id="GP013",
    title="schema-invalid",
    severity=Severity.ERROR,
    summary="Rendered objects must match their kind's schema.",
    docs=(
        "Fix the field the finding names (`kubectl explain <kind>.<field>` shows the schema);"
        " an unknown field is usually a typo or a field at the wrong level."
    ),
)
_LISTED = 3


def _crd_index(definitions: Mapping[str, Any]) -> dict[tuple[str, str], Mapping[str, Any]]:
    index: dict[tuple[str, str], Mapping[str, Any]] = {}
    for crd in definitions.values():
        group, kind = get(crd, "spec.group"), get(crd, "spec.names.kind")
        if isinstance(group, str) and isinstance(kind, str):
            index.setdefault((group, kind), crd)
    return index


@dataclass(frozen=True)
class _SchemaInvalid:
    meta: RuleMeta = META

    def evaluate(self, policy_input: PolicyInput) -> Iterator[Finding]:
        crds = {
            cluster: _crd_index(graph.definitions) for cluster, graph in policy_input.owners.items()
        }
        for change in policy_input.changes:
            body = change.object
            if body is None:
                continue
            found = self._check(change, body, crds.get(change.cluster, {}), policy_input)
            if found:
                shown = "; ".join(f"{p.path}: {p.message}" for p in found[:_LISTED])
                more = f" (and {len(found) - _LISTED} more)" if len(found) > _LISTED else ""
                yield finding(
                    self.meta,
                    f"{change.ref} does not match its schema: {shown}{more}",
                    change=change,
                )

    @staticmethod
    def _check(
        change: ChangeInput,
        body: Mapping[str, Any],
        crds: Mapping[tuple[str, str], Mapping[str, Any]],
        policy_input: PolicyInput,
    ) -> list[Problem]:
        ref = change.ref
        crd = crds.get((ref.group, ref.kind))
        if crd is not None:
            version = change.api_version.rpartition("/")[2]
            validator = crd_validator(crd, version)
            if validator is None:
                served = [
                    v.get("name") for v in get(crd, "spec.versions", []) if isinstance(v, Mapping)
                ]
                if version not in served:
                    return [
                        Problem(
                            "apiVersion",
                            f"version {version} is not one of the CRD's versions"
                            f" ({', '.join(map(str, served))})",
                        )
                    ]
                return []
            return problems(validator, body)
        if ref.kind == "Secret" and "sops" in body:
            # Flux decrypts SOPS Secrets and drops their metadata before it applies them.
            body = {key: value for key, value in body.items() if key != "sops"}
        try:
            target = parse_minor(change.kube_version)
        except ValueError:
            target = parse_minor(policy_input.kube_version)
        release = schema_release(target)
        if release is None:
            return []
        validator = builtin_validator(release, change.api_version, ref.kind)
        return problems(validator, body) if validator is not None else []


RULE = _SchemaInvalid()
