"""Plan against a cluster: the "before" side read from the cluster, the "after" side dry-run.

A preview normally plans a head render against a base render. Planned against a live cluster,
the base is what the cluster holds instead: for each Kustomization, the objects its
`status.inventory` lists, read from the cluster; and the head is what the apiserver would make of
each rendered object, by a server-side dry-run apply as `kustomize-controller` (so defaults and
admission are the cluster's own and do not read as changes). Both sides are then ordinary
`RenderedUnit`s, and `core.plan.plan_cluster` turns them into the same Change vocabulary
(create, update, delete, orphan, ...) a base render gives.

Rules:

- An inventory object no longer in the cluster is absent from the before side (it is then a
  `create` if still rendered). A Kustomization without an inventory has no before side (`added`).
- A rendered object whose dry run fails because its Namespace or CRD does not exist yet (the same
  unit creates it) is taken as rendered: it is a create either way. Any other dry-run failure
  fails the unit with the apiserver's message (fail closed): nothing of it is shown as deleted.
- Secrets are never sent: their after side is the masked render (with the apiserver's default
  `type: Opaque`), compared by token with the live Secret masked by the same `Masker`.
- Every body read from the cluster (before side and dry-run results) passes `LiveMask`: a value a
  rendered object took from a Secret is masked at the same place in the live object, and every
  string holding a value of a Secret the cluster's Kustomizations substitute from is masked
  wherever it is (in an object deleted at head too). A unit whose Kustomization or substituted
  Secrets cannot be read fails: nothing of it is shown unmasked.
- HelmReleases are not planned live: such a unit is withheld with a reason.
- With `managed` given (the PR app always gives it), live values are shown only for objects Flux
  already manages: the refs of the trusted inventories. A rendered object outside them that
  exists in the cluster (its dry-run result has a `resourceVersion`; a dry-run create has none)
  is planned from its render alone, with no diff and no field list: its change says only that it
  exists and is not managed by Flux, so applying would take it over. A pull request names what it
  likes; without this, naming any object the identity can read would diff its live content into
  the comment. Without `managed` (an operator's `tidegate preview --live`), everything is shown.

It reads and dry-runs only; it never writes to the cluster. It holds masked objects only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from core.changes import ClusterPlan
from core.cluster.port import FIELD_MANAGER, Applier, ClusterError, NotFound, Reader
from core.errors import Failure
from core.inventory import Inventory
from core.model import Manifest, ObjectRef, UnitKind, UnitRef
from core.plan.live_mask import LiveMask, substituted_values
from core.plan.plan import plan_cluster
from core.secrets import Masker, is_secret
from core.units import ClusterRender, RenderedUnit

__all__ = ["UNMANAGED", "LivePort", "live_after", "live_before", "plan_live"]

UNMANAGED = "exists in the cluster, not managed by Flux: applying takes it over"
"""The note of a change whose object exists live outside every trusted inventory."""

_KUSTOMIZATION_API = "kustomize.toolkit.fluxcd.io/v1"


class LivePort(Reader, Applier, Protocol):
    """What planning against a cluster needs: reads and dry-run applies."""


def plan_live(
    port: LivePort,
    head: ClusterRender,
    inventories: Mapping[UnitRef, Inventory],
    masker: Masker,
    managed: frozenset[ObjectRef] | None = None,
) -> ClusterPlan:
    """Plan `head` against the cluster; `inventories` holds each Kustomization found there.

    `managed`: the objects whose live values may be shown (None: all of them).
    """
    values, unreadable = _substituted(port, head.units, masker)
    mask = LiveMask(masker, values)
    unmanaged: set[tuple[UnitRef, ObjectRef]] = set()
    before: dict[UnitRef, RenderedUnit] = {}
    after: dict[UnitRef, RenderedUnit] = {}
    for ref, unit in head.units.items():
        if ref in unreadable:
            # Its live objects may hold values that cannot be masked: show none of them.
            before[ref] = after[ref] = _failed(unit, unreadable[ref], Failure.SOURCE)
            continue
        if ref in inventories:
            before[ref] = live_before(port, unit, inventories[ref], mask)
        after[ref] = live_after(port, unit, mask, managed, unmanaged)
    plan = plan_cluster(
        ClusterRender(head.path, before, head.errors), ClusterRender(head.path, after, head.errors)
    )
    return _unmanaged_hidden(plan, unmanaged) if unmanaged else plan


def live_before(
    port: LivePort, unit: RenderedUnit, inventory: Inventory, mask: LiveMask
) -> RenderedUnit:
    """The unit as the cluster holds it: its inventory's objects, read and masked."""
    if unit.unit.kind is not UnitKind.KUSTOMIZATION:
        return _withheld(unit)
    rendered = unit.objects or {}
    objects: dict[ObjectRef, Manifest] = {}
    for entry in inventory.entries:
        ref = entry.ref
        try:
            live = port.get(entry.api_version, ref.kind, ref.namespace, ref.name)
        except NotFound:
            continue
        except ClusterError as exc:
            return _failed(unit, str(exc), Failure.SOURCE)
        body = mask.body(live, rendered.get(ref))
        objects[ref] = Manifest(str(body.get("apiVersion", entry.api_version)), body, None, ref)
    return _with_objects(unit, objects)


def live_after(
    port: LivePort,
    unit: RenderedUnit,
    mask: LiveMask,
    managed: frozenset[ObjectRef] | None = None,
    unmanaged: set[tuple[UnitRef, ObjectRef]] | None = None,
) -> RenderedUnit:
    """The unit as the apiserver would store it: each rendered object dry-run applied.

    An object outside `managed` that exists live is kept as rendered (nothing of the cluster's)
    and added to `unmanaged`.
    """
    if unit.unit.kind is not UnitKind.KUSTOMIZATION:
        return _withheld(unit)
    if unit.objects is None:
        return unit
    objects: dict[ObjectRef, Manifest] = {}
    for ref, manifest in unit.objects.items():
        if is_secret(manifest.body):
            objects[ref] = _secret_after(manifest)
            continue
        try:
            dry = port.apply(manifest.body, field_manager=FIELD_MANAGER, force=True, dry_run=True)
        except NotFound:
            # Its Namespace or kind does not exist yet: only a create of what is rendered.
            objects[ref] = manifest
            continue
        except ClusterError as exc:
            return _failed(unit, f"{ref} dry-run failed ({exc.reason or 'Error'}): {exc.detail}")
        if managed is not None and ref not in managed and _exists(dry):
            # Not Flux's from this repository: the pull request named it, its live content is
            # not the author's to see. Only the render (the author's own text) is kept.
            objects[ref] = manifest
            if unmanaged is not None:
                unmanaged.add((unit.unit, ref))
            continue
        # The dry run merges the rendered object (tokens already) into the live one, whose other
        # fields may hold substituted values: those go through the same boundary.
        body = mask.body(dry)
        objects[ref] = Manifest(manifest.api_version, body, manifest.source, ref)
    return _with_objects(unit, objects)


def _exists(dry: Mapping[str, Any]) -> bool:
    """Whether a dry-run apply's result is an object the cluster already holds."""
    metadata = dry.get("metadata")
    return isinstance(metadata, Mapping) and bool(metadata.get("resourceVersion"))


def _unmanaged_hidden(plan: ClusterPlan, unmanaged: set[tuple[UnitRef, ObjectRef]]) -> ClusterPlan:
    """`plan` with each change of an existing unmanaged object cut to the `UNMANAGED` note."""
    units = []
    for unit in plan.units:
        changes = tuple(
            dataclasses.replace(
                change, fields=(), diff="", suppressed={}, note=UNMANAGED, before=None
            )
            if (unit.unit, change.ref) in unmanaged
            else change
            for change in unit.changes
        )
        units.append(dataclasses.replace(unit, changes=changes))
    return dataclasses.replace(plan, units=tuple(units))


def _substituted(
    port: LivePort, units: Iterable[UnitRef], masker: Masker
) -> tuple[list[bytes], dict[UnitRef, str]]:
    """The values the cluster's Kustomizations substitute from Secrets, and units unreadable.

    Every unit's values mask every unit's bodies: an object can move between Kustomizations
    and keep what one of them substituted into it.
    """
    values: list[bytes] = []
    unreadable: dict[UnitRef, str] = {}
    for unit in units:
        if unit.kind is not UnitKind.KUSTOMIZATION:
            continue
        try:
            for name in _secret_sources(port, unit):
                values.extend(_secret_values(port, unit.namespace, name))
        except ClusterError as exc:
            reason = exc.reason or "Error"
            unreadable[unit] = (
                f"{unit}: cannot read what it substitutes from, to mask it ({reason})"
            )
    masker.learn(values)
    return values, unreadable


def _secret_values(port: LivePort, namespace: str, name: str) -> list[bytes]:
    try:
        return substituted_values(port.get("v1", "Secret", namespace, name))
    except NotFound:
        return []  # nothing was substituted from it (an optional source, or since deleted)


def _secret_sources(port: LivePort, unit: UnitRef) -> list[str]:
    """The Secrets named by the live Kustomization's `spec.postBuild.substituteFrom`."""
    try:
        live = port.get(_KUSTOMIZATION_API, "Kustomization", unit.namespace, unit.name)
    except NotFound:
        return []
    spec = live.get("spec")
    post_build = spec.get("postBuild") if isinstance(spec, Mapping) else None
    sources = post_build.get("substituteFrom") if isinstance(post_build, Mapping) else None
    if not isinstance(sources, list):
        return []
    return [
        str(item["name"])
        for item in sources
        if isinstance(item, Mapping) and item.get("kind") == "Secret" and item.get("name")
    ]


def _secret_after(manifest: Manifest) -> Manifest:
    if "type" in manifest.body:
        return manifest
    body = {**manifest.body, "type": "Opaque"}
    return Manifest(manifest.api_version, body, manifest.source, manifest.ref)


def _with_objects(unit: RenderedUnit, objects: dict[ObjectRef, Manifest]) -> RenderedUnit:
    return _replace(unit, objects=objects, error=None, failure=None)


def _failed(unit: RenderedUnit, error: str, failure: Failure = Failure.INPUT) -> RenderedUnit:
    return _replace(unit, objects=None, error=error, failure=failure)


def _withheld(unit: RenderedUnit) -> RenderedUnit:
    return _failed(
        unit, f"{unit.unit}: a HelmRelease is not planned against the cluster", Failure.WITHHELD
    )


def _replace(unit: RenderedUnit, **changes: Any) -> RenderedUnit:
    return dataclasses.replace(unit, **changes)
