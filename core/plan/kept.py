"""Keep the plan of a cluster a preview's head takes whole from its base.

When the head takes the base's kept cluster whole (`core.render.carry`), both sides are the same
object, and the cluster's plan (every unit unchanged, its duplicates and errors, its CRDs) is a
function of that cluster alone: of what its key names (`core.render.clusters`: the commit, the
path, the tools and every render option) and of the planner's code. So the plan is kept in the
cache under that key and a digest of the planner's modules, and the next preview that takes the
same cluster whole reads one file instead of every unit's render. On a fleet, planning then
follows the clusters the change reaches, not the number of clusters.

Kept are only plans that say nothing but "unchanged": no change, no failure, no note, no notice.
Anything else is planned again, as is a plan whose data is damaged or does not read back to
what it was. The CRDs a plan names (`definitions`) are read from the cluster's renders only when
something reads them.

This module reads and writes only the cache; it renders nothing and plans nothing itself.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from core.changes import ClusterPlan, UnitPlan, UnitStatus
from core.model import Manifest, UnitRef
from core.render import stored
from core.render.cache import RenderCache, canonical_key
from core.units import ClusterRender, SourceRef

__all__ = ["load", "save"]

_FORMAT = "1"
_KIND = "plan"
# The modules whose code decides a plan: a kept plan is keyed by their source, so a new planner
# never reads an old one's plans. Every `core` module the planner imports is named here
# (tests/preview/test_kept_plans.py imports the planner in a fresh interpreter and checks).
_PLANNER = (
    "core.changes",
    "core.errors",
    "core.host.paths",
    "core.model",
    "core.plan.compare",
    "core.plan.kept",
    "core.plan.normalize",
    "core.plan.plan",
    "core.scope",
    "core.secrets",
    "core.units",
)
# Every field of a unit's plan, and what a kept plan holds in it. A field added to `UnitPlan`
# and not named here keeps no plan at all (`save` checks).
_EMPTY = {"changes": (), "error": None, "reason": None, "note": None, "notices": ()}
_KEPT = (
    "unit",
    "status",
    "prune",
    "suspended",
    "path",
    "parent",
    "skipped",
    "noise_only",
    "noise_only_suppressed",
    "unavailable_source",
    "depends_on",
    "source",
    "file",
    "deletion_policy",
)


def load(cache: RenderCache, path: str, cluster: ClusterRender) -> ClusterPlan | None:
    """The plan kept for `cluster` taken whole, as the cluster at `path`; None if there is none."""
    key = _key(cluster)
    if key is None:
        return None
    known, data = cache.read_cluster(key, _KIND)
    if isinstance(known, _Kept):
        if known.cluster is cluster:
            # The same object where it can be: what is made from a plan (the policy gate's
            # owner graph) is then made once for every preview that takes it.
            plan = known.plan
            return plan if plan.path == path else dataclasses.replace(plan, path=path)
        data = known.data  # the same content loaded again: its CRDs are read from this one
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        return None
    try:
        plan = _parsed(path, cluster, data)
    except (KeyError, TypeError, ValueError):
        return None  # damaged: plan again
    cache.remember_cluster(key, _Kept(cluster, plan, data))
    return plan


def save(cache: RenderCache, cluster: ClusterRender, plan: ClusterPlan) -> None:
    """Keep the plan of `cluster` taken whole, if it is one that may be kept (see above)."""
    key = _key(cluster)
    if key is None or not _keepable(plan):
        return
    try:
        data = _data(plan, cluster)
        same = _parsed(plan.path, cluster, data) == plan
    except (KeyError, TypeError, ValueError):
        same = False  # a CRD no unit renders, or data that does not read back: plan again
    if same:
        cache.write_cluster(key, data, _KIND)
        cache.remember_cluster(key, _Kept(cluster, plan, data))


@dataclasses.dataclass(frozen=True)
class _Kept:
    """A kept plan held in memory, with the cluster its definitions are read from."""

    cluster: ClusterRender
    plan: ClusterPlan
    data: Mapping[str, Any]


def _key(cluster: ClusterRender) -> str | None:
    if not cluster.kept_key:
        return None
    return canonical_key("kept-plan", _FORMAT, cluster.kept_key, _planner_digest())


@cache
def _planner_digest() -> str:
    digest = hashlib.sha256()
    for name in _PLANNER:
        module = sys.modules.get(name)
        source = getattr(module, "__file__", None)
        if source is None:
            # Not loaded or no file: nothing names this planner, so nothing is kept or read.
            digest.update(b"unknown")
            digest.update(name.encode())
            continue
        digest.update(Path(source).read_bytes())
    return digest.hexdigest()


def _keepable(plan: ClusterPlan) -> bool:
    fields = {item.name for item in dataclasses.fields(UnitPlan)}
    if fields != {*_KEPT, *_EMPTY}:
        return False
    return all(
        unit.status is UnitStatus.UNCHANGED
        and all(getattr(unit, name) == empty for name, empty in _EMPTY.items())
        for unit in plan.units
    )


def _definitions(plan: ClusterPlan, cluster: ClusterRender) -> list[list[Any]]:
    """Each CRD by name, with the unit it is read from: the first, as the planner reads it."""
    found = []
    for name, manifest in plan.definitions.items():
        owner = min(
            ref
            for ref, unit in cluster.units.items()
            if unit.objects is not None and manifest.ref in unit.objects
        )
        found.append([name, _unit_data(owner), list(manifest.ref)])
    return found


def _data(plan: ClusterPlan, cluster: ClusterRender) -> dict[str, Any]:
    return {
        "format": _FORMAT,
        "units": [_unit_plan_data(unit) for unit in plan.units],
        "errors": list(plan.errors),
        "duplicates": [
            [list(ref), [_unit_data(unit) for unit in units]]
            for ref, units in plan.duplicates.items()
        ],
        "definitions": _definitions(plan, cluster),
    }


def _unit_plan_data(unit: UnitPlan) -> dict[str, Any]:
    return {
        "unit": _unit_data(unit.unit),
        "status": unit.status.value,
        "prune": unit.prune,
        "suspended": unit.suspended,
        "path": unit.path,
        "parent": _unit_data(unit.parent) if unit.parent is not None else None,
        "skipped": unit.skipped,
        "noise_only": unit.noise_only,
        "noise_only_suppressed": dict(unit.noise_only_suppressed),
        "unavailable_source": unit.unavailable_source,
        "depends_on": [_unit_data(ref) for ref in unit.depends_on],
        "source": (
            [unit.source.kind, unit.source.namespace, unit.source.name]
            if unit.source is not None
            else None
        ),
        "file": unit.file,
        "deletion_policy": unit.deletion_policy,
    }


def _unit_data(ref: UnitRef) -> list[str]:
    return [ref.kind.value, ref.namespace, ref.name]


def _parsed(path: str, cluster: ClusterRender, data: Mapping[str, Any]) -> ClusterPlan:
    units = tuple(_unit_plan(item) for item in data["units"])
    duplicates = {
        stored.object_ref(ref): tuple(stored.unit_ref(unit) for unit in owners)
        for ref, owners in data["duplicates"]
    }
    definitions = _Definitions(cluster, data["definitions"])
    return ClusterPlan(
        path=path,
        units=units,
        errors=tuple(stored.text(error) for error in data["errors"]),
        duplicates=duplicates,
        definitions=definitions,
    )


def _unit_plan(data: Mapping[str, Any]) -> UnitPlan:
    source = data["source"]
    return UnitPlan(
        unit=stored.unit_ref(data["unit"]),
        status=UnitStatus(data["status"]),
        prune=stored.flag(data["prune"]),
        suspended=stored.flag(data["suspended"]),
        path=stored.optional_text(data["path"]),
        parent=stored.unit_ref(data["parent"]) if data["parent"] is not None else None,
        skipped=stored.number(data["skipped"]),
        noise_only=stored.number(data["noise_only"]),
        noise_only_suppressed={
            stored.text(rule): stored.number(count)
            for rule, count in data["noise_only_suppressed"].items()
        },
        unavailable_source=stored.optional_text(data["unavailable_source"]),
        depends_on=tuple(stored.unit_ref(ref) for ref in data["depends_on"]),
        source=SourceRef(*map(stored.text, source)) if source is not None else None,
        file=stored.optional_text(data["file"]),
        deletion_policy=stored.text(data["deletion_policy"]),
    )


class _Definitions(Mapping[str, Manifest]):
    """A kept plan's CRDs by name, read from the cluster's renders on first use."""

    def __init__(self, cluster: ClusterRender, entries: list[Any]) -> None:
        self._cluster = cluster
        self._where = {
            stored.text(name): (stored.unit_ref(unit), stored.object_ref(ref))
            for name, unit, ref in entries
        }
        if any(unit not in cluster.units for unit, _ in self._where.values()):
            raise ValueError("a kept plan names a unit its cluster does not have")

    def __getitem__(self, name: str) -> Manifest:
        unit, ref = self._where[name]
        objects = self._cluster.units[unit].objects
        if objects is None or ref not in objects:
            raise KeyError(name)
        return objects[ref]

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)
