"""The dependsOn step: are the Kustomizations this one depends on Ready at their current revision?

A dependency is ready as Flux's `checkDependencies` decides: it exists, its Ready condition is
True, `status.observedGeneration` equals its `metadata.generation`, and when it reads the same
source its `lastAppliedRevision` is the revision about to be applied. Flux's messages
("dependency 'ns/name' is not ready") and its `--requeue-dependency` retry are kept.

Flux has no cycle detection: a cycle makes every member wait forever. Here a cycle through this
Kustomization (`a -> b -> a`, found by following dependsOn through the API server, bounded) is a
terminal `DependencyNotReady` failure, so the object is Stalled and names the cycle instead of
waiting silently. `readyExpr` (CEL) is not supported yet: an object that sets it is refused with a
clear message (`reconciler.kustomization.spec`) rather than checked differently from Flux.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.model import UnitRef
from core.units import SourceRef
from reconciler.kustomization.deps import ObjectReader
from reconciler.kustomization.model import Reason, StepFailed

__all__ = ["KUSTOMIZATION_API", "check_dependencies", "find_cycle"]

KUSTOMIZATION_API = "kustomize.toolkit.fluxcd.io/v1"
MAX_GRAPH = 1000
"""Kustomizations followed when looking for a cycle: a bound, not a Flux limit."""


def find_cycle(
    start: UnitRef, depends_on: tuple[UnitRef, ...], reader: ObjectReader
) -> list[UnitRef] | None:
    """The shortest dependsOn path from `start` back to itself, as a list from `start`, or None."""
    paths: dict[UnitRef, list[UnitRef]] = {start: [start]}
    frontier = [(ref, [start]) for ref in depends_on]
    while frontier and len(paths) <= MAX_GRAPH:
        next_frontier: list[tuple[UnitRef, list[UnitRef]]] = []
        for ref, trail in frontier:
            if ref == start:
                return [*trail, start]
            if ref in paths:
                continue
            paths[ref] = [*trail, ref]
            found = reader.get(KUSTOMIZATION_API, "Kustomization", ref.namespace, ref.name)
            for dep in _depends_on(found, ref):
                next_frontier.append((dep, paths[ref]))
        frontier = next_frontier
    return None


def cycle_message(cycle: list[UnitRef]) -> str:
    """`dependency cycle: ns/a -> ns/b -> ns/a`."""
    return "dependency cycle: " + " -> ".join(f"{ref.namespace}/{ref.name}" for ref in cycle)


def check_dependencies(
    start: UnitRef,
    depends_on: tuple[UnitRef, ...],
    source: SourceRef,
    revision: str,
    reader: ObjectReader,
    *,
    requeue: float,
) -> None:
    """Raise `StepFailed` unless every dependency is ready for `revision` (see module doc)."""
    cycle = find_cycle(start, depends_on, reader)
    if cycle is not None:
        raise StepFailed(Reason.DEPENDENCY_NOT_READY, cycle_message(cycle), terminal=True)
    for ref in depends_on:
        problem = _not_ready(ref, source, revision, reader)
        if problem:
            raise StepFailed(Reason.DEPENDENCY_NOT_READY, problem, requeue_after=requeue)


def _not_ready(ref: UnitRef, source: SourceRef, revision: str, reader: ObjectReader) -> str:
    where = f"dependency '{ref.namespace}/{ref.name}'"
    dep = reader.get(KUSTOMIZATION_API, "Kustomization", ref.namespace, ref.name)
    if dep is None:
        return f"{where} not found"
    spec: Mapping[str, Any] = dep.get("spec") or {}
    status: Mapping[str, Any] = dep.get("status") or {}
    generation = (dep.get("metadata") or {}).get("generation")
    conditions = status.get("conditions") or []
    ready = any(
        isinstance(c, Mapping) and c.get("type") == "Ready" and c.get("status") == "True"
        for c in conditions
    )
    if not conditions or status.get("observedGeneration") != generation or not ready:
        return f"{where} is not ready"
    if _same_source(spec, ref, source) and status.get("lastAppliedRevision") != revision:
        return f"{where} revision is not up to date"
    return ""


def _same_source(spec: Mapping[str, Any], ref: UnitRef, source: SourceRef) -> bool:
    theirs: Mapping[str, Any] = spec.get("sourceRef") or {}
    return (
        str(theirs.get("kind") or "") == source.kind
        and str(theirs.get("name") or "") == source.name
        and str(theirs.get("namespace") or ref.namespace) == source.namespace
    )


def _depends_on(obj: Mapping[str, Any] | None, ref: UnitRef) -> list[UnitRef]:
    if obj is None:
        return []
    items = (obj.get("spec") or {}).get("dependsOn") or []
    deps = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, Mapping) and isinstance(item.get("name"), str):
            deps.append(
                UnitRef(ref.kind, str(item.get("namespace") or ref.namespace), item["name"])
            )
    return deps
