"""Keep each discovered cluster per commit, so a preview of a known base reads it, not discovers it.

Discovering a cluster (`core.repo.discovery`) parses every unit's spec, resolves its variables and
finds its render in the cache, unit by unit, breadth first. At one commit, under the same render
options and tools, that walk gives the same units every time: its outcome is a function of the
commit's files (its ignore files and `.tidegate.yaml` among them) and of what `key` names. So a
cluster every unit of which rendered is kept under that key, as its units' facts, the cache
keys of their renders and the source URLs they render; the next preview of the commit (a CI base,
the service's next pull request on the same base) takes the cluster instead of discovering it.

A kept cluster's renders are read only when something reads them (`RenderCache.deferred`): on a
large fleet most clusters of a preview's base are taken whole by its head and never looked into,
so reading one costs one file and one mark per unit that its render is still there (which keeps
eviction off it), not a render index per unit.

What may be kept is what `core.render.carry` may carry whole (`clusterable`): every unit rendered
from this repository's files or from a HelmRepository chart over HTTP (named by URL, chart and
version, like any cached chart), no unit failed, and nothing came from outside the commit (no
`--source` directory, no remote base, no OCI artifact, no ExternalArtifact). Anything else, and
any kept cluster whose render is no longer in the cache or whose data is damaged, is discovered
again: the memo never answers what discovery would not.

On disk the memo lives next to the revision memos (`revisions/`, evicted like them); in memory the
cache keeps a few hundred loaded clusters for a long-lived service. This module runs no tool and
reads nothing but the cache.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Iterable, Mapping
from pathlib import PurePath
from typing import Any

from core.model import FLUX_SOURCE_GROUP, UnitRef
from core.render import stored
from core.render.cache import CachedRender, RenderCache, canonical_key
from core.render.carry import plain
from core.units import ClusterRender, RenderedUnit, SourceRef

__all__ = ["clusterable", "fingerprint", "key", "load", "save", "source_urls", "to_carry"]

_FORMAT = "2"
_OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def key(revision: str, path: str, options: Iterable[object]) -> str | None:
    """The key of a cluster entry point discovered at a commit, or None.

    None unless `revision` is a full object id: a branch or short id may name other content
    tomorrow.

    `options` must name everything else that can change discovery: the tools by content, the
    render options, the fetch policy, the budgets.
    """
    if not _OBJECT_ID.fullmatch(revision):
        return None
    return canonical_key("discovered-cluster", _FORMAT, revision, path, *options)


def fingerprint(value: object) -> object:
    """Plain, deterministic data for a value of the render options (for `key`).

    Sets are sorted (their order changes from one process to the next), dataclasses become
    their fields by name, paths and enums their text; anything else is its `repr`.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            item.name: fingerprint(getattr(value, item.name)) for item in dataclasses.fields(value)
        }
    if isinstance(value, Mapping):
        return sorted(([fingerprint(k), fingerprint(v)] for k, v in value.items()), key=repr)
    if isinstance(value, (set, frozenset)):
        return sorted(repr(fingerprint(item)) for item in value)
    if isinstance(value, (list, tuple)):
        return [fingerprint(item) for item in value]
    if isinstance(value, enum.Enum):
        return fingerprint(value.value)
    if isinstance(value, PurePath):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


def clusterable(cluster: ClusterRender, sources: Mapping[SourceRef, object]) -> bool:
    """Tell whether every unit of a cluster rendered from content the commit names."""
    if cluster.errors or not cluster.units:
        return False
    units = list(cluster.units.values())
    for unit in units:
        if unit.objects is None or not unit.render_key or unit.unavailable_source is not None:
            return False
    return all(plain(unit, units, sources) for unit in units)


def save(cache: RenderCache, key: str, cluster: ClusterRender) -> ClusterRender:
    """Store a cluster (which must be `clusterable`) under `key`, on disk and in memory.

    Returns the cluster as kept: the same units, with its key and source URLs.
    """
    urls = source_urls(cluster)
    data = {
        "format": _FORMAT,
        "path": cluster.path,
        "sourceUrls": list(urls),
        "units": [_unit_data(unit) for unit in cluster.units.values()],
    }
    cache.write_cluster(key, data)
    kept = dataclasses.replace(cluster, kept_key=key, source_urls=urls)
    cache.remember_cluster(key, kept)
    return kept


def load(cache: RenderCache, key: str, path: str) -> ClusterRender | None:
    """The cluster kept under `key`, or None when there is none or any part of it is gone."""
    known, data = cache.read_cluster(key)
    if isinstance(known, ClusterRender) and known.path == path and _present(cache, known):
        cache.kept_hits += 1
        return known
    if not isinstance(data, dict) or data.get("format") != _FORMAT or data.get("path") != path:
        return None
    try:
        urls = tuple(stored.text(url) for url in data["sourceUrls"])
        units = _parsed(cache, data["units"])
    except (KeyError, TypeError, ValueError):
        return None  # damaged: discovery decides
    if units is None:
        return None
    cluster = ClusterRender(path, units, kept_key=key, source_urls=urls)
    cache.kept_hits += 1
    cache.remember_cluster(key, cluster)
    return cluster


def to_carry(cluster: ClusterRender) -> list[tuple[str, CachedRender]]:
    """The renders of a kept cluster a preview's head may take from its base, by carry key.

    Each is the unit's own objects (read when first used, shared with the base so the planner
    skips the unit by identity) with the inputs and chart CRDs the cluster kept.
    """
    return [
        (unit.carry_key, CachedRender(unit.objects, unit.inputs, unit.chart_crds, unit.render_key))
        for unit in cluster.units.values()
        if unit.carry_key and unit.objects is not None
    ]


def source_urls(cluster: ClusterRender) -> tuple[str, ...]:
    """Every Flux source URL the cluster's units render, in unit order (kept ones: as kept)."""
    if cluster.source_urls is not None:
        return cluster.source_urls
    urls: list[str] = []
    for unit in cluster.units.values():
        objects = unit.objects or {}
        # By identity first: a cached render loads its other bodies only when one is read.
        sources = [objects[ref] for ref in objects if ref.group == FLUX_SOURCE_GROUP]
        urls.extend(_urls(manifest.body for manifest in sources))
    return tuple(urls)


def _urls(objects: Iterable[Mapping[str, object]]) -> Iterable[str]:
    for body in objects:
        api = str(body.get("apiVersion") or "")
        spec = body.get("spec")
        if api.startswith(FLUX_SOURCE_GROUP + "/") and isinstance(spec, Mapping):
            url = spec.get("url")
            if isinstance(url, str):
                yield url


def _present(cache: RenderCache, cluster: ClusterRender) -> bool:
    """Whether every render of a cluster held in memory is still in the cache (none is read)."""
    return all(cache.present(unit.render_key) for unit in cluster.units.values())


def _unit_data(unit: RenderedUnit) -> dict[str, Any]:
    return {
        "unit": list(unit.unit),
        "render": unit.render_key,
        "carry": unit.carry_key,
        "prune": unit.prune,
        "parent": list(unit.parent) if unit.parent is not None else None,
        "suspend": unit.suspend,
        "deletionPolicy": unit.deletion_policy,
        "path": unit.path,
        "inputs": sorted(unit.inputs),
        "installCrds": unit.install_crds,
        "upgradeCrds": unit.upgrade_crds,
        "chartCrds": sorted(list(ref) for ref in unit.chart_crds),
        "dependsOn": [list(ref) for ref in unit.depends_on],
        "source": _source_data(unit.source),
        "file": unit.file,
    }


def _source_data(source: SourceRef | None) -> list[str] | None:
    return None if source is None else [source.kind, source.namespace, source.name]


def _parsed(cache: RenderCache, units: list[dict[str, Any]]) -> dict[UnitRef, RenderedUnit] | None:
    found: dict[UnitRef, RenderedUnit] = {}
    for data in units:
        render_key = stored.text(data["render"])
        if not cache.present(render_key):
            return None  # evicted since: discover again
        source = data["source"]
        unit = RenderedUnit(
            unit=stored.unit_ref(data["unit"]),
            prune=stored.flag(data["prune"]),
            objects=cache.deferred(render_key),
            parent=stored.unit_ref(data["parent"]) if data["parent"] is not None else None,
            suspend=stored.flag(data["suspend"]),
            deletion_policy=stored.text(data["deletionPolicy"]),
            path=stored.optional_text(data["path"]),
            inputs=frozenset(stored.text(item) for item in data["inputs"]),
            install_crds=stored.text(data["installCrds"]),
            upgrade_crds=stored.text(data["upgradeCrds"]),
            chart_crds=frozenset(stored.object_ref(ref) for ref in data["chartCrds"]),
            depends_on=tuple(stored.unit_ref(ref) for ref in data["dependsOn"]),
            source=SourceRef(*map(stored.text, source)) if source is not None else None,
            file=stored.optional_text(data["file"]),
            render_key=render_key,
            carry_key=stored.text(data["carry"]),
        )
        found[unit.unit] = unit
    return found
