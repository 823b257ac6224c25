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
  `type: Opaque`), compared by token with the live Secret masked by the same `Masker`. A value a
  rendered object took from a Secret (a mask token in the render) is masked at the same place in
  the live object, so the before side shows no cleartext either.
- HelmReleases are not planned live: such a unit is withheld with a reason.

It reads and dry-runs only; it never writes to the cluster. It holds masked objects only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol

from core.changes import ClusterPlan
from core.cluster.port import FIELD_MANAGER, Applier, ClusterError, NotFound, Reader
from core.errors import Failure
from core.inventory import Inventory
from core.model import Manifest, ObjectRef, UnitKind, UnitRef
from core.plan.plan import plan_cluster
from core.secrets import Masker, is_secret, is_token
from core.units import ClusterRender, RenderedUnit

__all__ = ["LivePort", "live_after", "live_before", "plan_live"]


class LivePort(Reader, Applier, Protocol):
    """What planning against a cluster needs: reads and dry-run applies."""


def plan_live(
    port: LivePort,
    head: ClusterRender,
    inventories: Mapping[UnitRef, Inventory],
    masker: Masker,
) -> ClusterPlan:
    """Plan `head` against the cluster; `inventories` holds each Kustomization found there."""
    before: dict[UnitRef, RenderedUnit] = {}
    after: dict[UnitRef, RenderedUnit] = {}
    for ref, unit in head.units.items():
        if ref in inventories:
            before[ref] = live_before(port, unit, inventories[ref], masker)
        after[ref] = live_after(port, unit, masker)
    return plan_cluster(
        ClusterRender(head.path, before, head.errors), ClusterRender(head.path, after, head.errors)
    )


def live_before(
    port: LivePort, unit: RenderedUnit, inventory: Inventory, masker: Masker
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
        body = _mask_live(live, rendered.get(ref), masker)
        objects[ref] = Manifest(str(body.get("apiVersion", entry.api_version)), body, None, ref)
    return _with_objects(unit, objects)


def live_after(port: LivePort, unit: RenderedUnit, masker: Masker) -> RenderedUnit:
    """The unit as the apiserver would store it: each rendered object dry-run applied."""
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
        body = masker.mask_object(dry)
        objects[ref] = Manifest(manifest.api_version, body, manifest.source, ref)
    return _with_objects(unit, objects)


def _secret_after(manifest: Manifest) -> Manifest:
    if "type" in manifest.body:
        return manifest
    body = {**manifest.body, "type": "Opaque"}
    return Manifest(manifest.api_version, body, manifest.source, manifest.ref)


def _mask_live(live: dict[str, Any], rendered: Manifest | None, masker: Masker) -> dict[str, Any]:
    """The live object with every Secret value a token: whole Secrets, and Secret-made values."""
    if is_secret(live):
        return masker.mask_object(live)
    if rendered is None:
        return live
    masked = _mask_like(live, rendered.body, masker)
    return masked if isinstance(masked, dict) else live


def _mask_like(live: Any, rendered: Any, masker: Masker) -> Any:
    """`live` with a token wherever `rendered` holds one (a value made from a Secret)."""
    if is_token(rendered):
        return masker.token(str(live).encode()) if live is not None else live
    if isinstance(live, dict) and isinstance(rendered, Mapping):
        return {
            k: _mask_like(v, rendered[k], masker) if k in rendered else v for k, v in live.items()
        }
    if isinstance(live, list) and isinstance(rendered, list) and len(live) == len(rendered):
        return [_mask_like(a, b, masker) for a, b in zip(live, rendered, strict=True)]
    return live


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
