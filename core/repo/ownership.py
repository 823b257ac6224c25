"""The ownership index: which units read each repository file.

Every render records the repository files it read: the kustomize build's inputs (bases,
components, patches, generator files), a chart's files, and the files that define the ConfigMaps
and Secrets a unit substitutes from or takes values from. Inverted, that says which units a change
to a file can affect, and which it cannot: the pull-request app uses it to name the units a PR
touches, and the render cache is keyed on the same sets, so an edit re-renders exactly those units.
Pure data: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from core.model import UnitRef
from core.units import ClusterRender

__all__ = ["Owner", "OwnershipIndex", "affected", "build"]


class Owner(NamedTuple):
    """A unit in one cluster entry point."""

    cluster: str
    unit: UnitRef

    def __str__(self) -> str:
        return f"{self.cluster}: {self.unit}"


OwnershipIndex = Mapping[str, frozenset[Owner]]
"""Repository path -> the units whose render read it."""


def build(renders: Mapping[str, ClusterRender]) -> OwnershipIndex:
    """Invert the input sets of every rendered unit of every cluster."""
    owners: dict[str, set[Owner]] = {}
    for cluster, render in renders.items():
        for unit in render.units.values():
            for path in unit.inputs:
                owners.setdefault(path, set()).add(Owner(cluster, unit.unit))
    return {path: frozenset(found) for path, found in owners.items()}


def affected(index: OwnershipIndex, paths: Iterable[str]) -> frozenset[Owner]:
    """Return the units a change to any of `paths` can affect."""
    return frozenset(owner for path in paths for owner in index.get(path, ()))
