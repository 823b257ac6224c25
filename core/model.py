"""Identities and rendered objects shared by every layer.

An `ObjectRef` names one Kubernetes object the way Flux's inventory does; a `UnitRef` names the Flux
object that renders a set of them (a Kustomization or a HelmRelease). A `Manifest` is one rendered
object whose Secret values have already been masked (see `core.secrets`), so nothing built from it
can carry a Secret value. This module holds data only: no I/O, no rendering, no formatting.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = [
    "FLUX_HELM_GROUP",
    "FLUX_KUSTOMIZE_GROUP",
    "FLUX_SOURCE_GROUP",
    "Manifest",
    "ObjectRef",
    "RawObject",
    "UnitKind",
    "UnitRef",
    "group_of",
]

RawObject = dict[str, Any]
"""A Kubernetes object as parsed from YAML or JSON."""

FLUX_KUSTOMIZE_GROUP = "kustomize.toolkit.fluxcd.io"
FLUX_HELM_GROUP = "helm.toolkit.fluxcd.io"
FLUX_SOURCE_GROUP = "source.toolkit.fluxcd.io"

_RBAC_GROUP = "rbac.authorization.k8s.io"


def group_of(api_version: str) -> str:
    """Return the API group of an apiVersion (`apps/v1` -> `apps`, `v1` -> ``)."""
    group, _, version = api_version.rpartition("/")
    return group if version else ""


class ObjectRef(NamedTuple):
    """The identity of one Kubernetes object, independent of its API version.

    A named tuple rather than a dataclass: identities are hashed, compared and sorted millions of
    times on a large repository, and tuples do that in C. Field order is the sort order.
    """

    group: str
    """API group; empty for the core group."""
    kind: str
    namespace: str
    """Empty for cluster-scoped objects."""
    name: str

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjectRef:
        """Return the identity of a parsed object (callers validate the fields first)."""
        meta = obj.get("metadata") or {}
        return cls(
            group=group_of(str(obj.get("apiVersion", ""))),
            kind=str(obj.get("kind", "")),
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name", "")),
        )

    @property
    def inventory_id(self) -> str:
        """Flux's inventory id: `<namespace>_<name>_<group>_<kind>`, RBAC `:` written as `__`."""
        name = self.name.replace(":", "__") if self.group == _RBAC_GROUP else self.name
        return f"{self.namespace}_{name}_{self.group}_{self.kind}"

    def __str__(self) -> str:
        if self.namespace:
            return f"{self.kind}/{self.namespace}/{self.name}"
        return f"{self.kind}/{self.name}"


_UNSET_REF = ObjectRef("", "", "", "")


class UnitKind(enum.StrEnum):
    """The Flux kinds that render objects into a cluster."""

    KUSTOMIZATION = "Kustomization"
    HELM_RELEASE = "HelmRelease"


class UnitRef(NamedTuple):
    """The identity of a unit of rendering: one Flux Kustomization or HelmRelease."""

    kind: UnitKind
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


@dataclass(slots=True, eq=False)
class Manifest:
    """One rendered object, with Secret values already masked.

    Treat it as immutable. It is not a frozen dataclass because renders of a large repository
    create and reload hundreds of thousands of these, and frozen initialisation is several times
    slower; equality and hashing are by identity, which is what the planner and caches rely on.
    """

    api_version: str
    body: RawObject
    """The whole object; Secret `data`/`stringData` values hold masked tokens, never cleartext."""
    source: str | None = None
    """Repository file the object came from, when known, for messages."""
    ref: ObjectRef = field(default=_UNSET_REF)
    """The object's identity; computed from the body unless the caller already knows it."""

    def __post_init__(self) -> None:
        if self.ref is _UNSET_REF:
            self.ref = ObjectRef.of(self.body)
