"""Plan a merge: turn the base and head renders of a cluster into the change set Flux will make.

`plan_cluster` compares what every unit (Flux Kustomization or HelmRelease) renders at the merge
base and at the head, and says per object whether Flux will create, update, delete, orphan or move
it; `plan_preview` does that for every cluster entry point. Planning is pure: no I/O, no rendering.

Units:

- rendered on both sides: `rendered` with its changes, or `unchanged`;
- only at head: `added`, every object a `create` (or a `move` when another unit rendered it);
- only at base: `removed`, its objects deleted or orphaned as described under "Removed units";
- failed on either side, or present on one side only when that cannot be proven (see "Failing
  closed"): `failed` with the reason, and none of its objects is shown. A broken render never
  reads as "delete everything".
- failed only because a source could not be reached (`RenderedUnit.unavailable_source` on every
  failing side): `unavailable` with the URL and reason, its objects withheld exactly like a
  failed unit's; whether that fails the preview is the caller's choice (`Preview.skip_unavailable`).

Objects of a unit rendered on both sides:

- `update` when the normalized objects differ (`core.plan.compare`), with a diff and field paths;
- `create` when new and no other unit rendered it at base; `move` when another unit did: one
  change on the receiving unit naming the unit it leaves, with a diff if its body changed, and
  nothing on the unit it leaves;
- `delete` when no unit renders it at head and its owner prunes: the owner's prune at base
  decides, because it is the spec the owner holds when it reconciles the merged revision.
  `orphan` instead when the owner does not prune, or the object carries
  `kustomize.toolkit.fluxcd.io/prune: disabled` (annotation or label, any case). HelmReleases
  always prune (helm uninstalls what leaves the chart) unless the object carries
  `helm.sh/resource-policy: keep`.
- Objects marked `kustomize.toolkit.fluxcd.io/reconcile: disabled` or
  `kustomize.toolkit.fluxcd.io/ssa: ignore` on either side are neither applied nor pruned by
  Flux: a change to one is left out and counted in `UnitPlan.skipped` (so `skipped` counts
  would-be changes Flux will not make, not every marked object).
- A `create` or `delete` that may be one side of a move is `unknown` instead when a unit failed
  on the other side (at base for a new object, at head for one no longer rendered): the failed
  unit's objects are withheld, so the object may come from it or go to it, and Flux would then
  move it rather than create or delete it. The change names the failed units.
- CRDs from a HelmRelease chart's `crds/` directory follow helm-controller's CRD policy
  (`install.crds` for an added HelmRelease, `upgrade.crds` otherwise; Create by default, as the
  code has it): `Skip` creates and changes none, `Create` creates missing ones but leaves a
  changed one as it is, `CreateReplace` does both. A change Flux will not make is counted in
  `skipped` and said in `UnitPlan.notices`. helm-controller never deletes them: one that leaves
  the chart is an `orphan`.
- An object whose only differences are noise (`core.plan.normalize`) is not an update; it is
  counted in `UnitPlan.noise_only`, and the lines hidden in `UnitPlan.noise_only_suppressed`,
  which `UnitPlan.suppressed` includes, so nothing is hidden without a count.

Removed units. A unit's objects go only when its own Flux object is deleted, so its fate is the
fate of that object at head:

- Its parent (the unit that renders its Flux object) still exists and prunes the object: the Flux
  object is deleted and its finalizer applies `deletionPolicy`: `Delete` and
  `WaitForTermination` delete the objects, `Orphan` leaves them, `MirrorPrune` follows its own
  prune, and a suspended unit's finalizer deletes nothing. Objects with prune disabled stay.
- Its parent does not prune the Flux object (prune false, prune disabled on the Flux object): the
  Flux object stays in the cluster and keeps reconciling its source path, so nothing is deleted.
  The unit is still reported `removed`, because the repository no longer declares it, and its
  objects `orphan`, with a note saying the unit keeps running. This is the truthful reading: they
  stay, and only a unit this preview no longer renders manages them.
- Its parent was removed too: it follows the parent, deleted if the parent's finalizer deletes the
  parent's objects, else kept.
- It has no parent: nothing in the repository applies its Flux object, so nothing deletes it (the
  cluster's root Kustomization simply fails to find a deleted path). Its objects are `orphan`.
  A unit that renders its own Flux object (a self-managed root) prunes itself if it prunes.

Failing closed. A unit present on one side only is `failed` when its presence cannot be proven:
its parent failed on either side (a failed parent at head means its children are unknown, not
removed), its Flux object is still rendered at head although it was not rendered as a unit, the
parent chain loops, or the cluster reported errors on the side it is missing from.

Scope. Flux's apply fails an object of a namespaced kind that has no namespace. Renderers catch
built-in kinds and kinds whose CRD the same unit renders; the planner knows every CRD the cluster
renders, so a Kustomization with an object of a CRD-defined namespaced kind without a namespace is
`failed` ("namespace not specified", naming the CRD) on the side where it has one. When no CRD in
the cluster defines a kind and an object of it has no namespace, its scope is unknown: a notice
says so, as the apply fails if the kind turns out to be namespaced.

Every change carries the masked objects it compares (`Change.before`, `Change.after`), so
policies see bodies without re-reading renders; unit plans carry their `dependsOn`, source and
defining file, the owner graph's facts.

Duplicates (one object rendered by two units on the same side) are cluster errors naming both
units. Units are sorted by `UnitRef`, changes by `ObjectRef`, so output is stable.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from core.changes import Action, Change, ClusterPlan, Preview, UnitPlan, UnitStatus
from core.errors import Failure
from core.model import (
    FLUX_HELM_GROUP,
    FLUX_KUSTOMIZE_GROUP,
    Manifest,
    ObjectRef,
    UnitKind,
    UnitRef,
)
from core.plan import compare as comparing
from core.scope import crd_scopes, is_namespaced
from core.units import ClusterRender, RenderedUnit

__all__ = ["plan_cluster", "plan_preview"]

_PRUNE = f"{FLUX_KUSTOMIZE_GROUP}/prune"
_RECONCILE = f"{FLUX_KUSTOMIZE_GROUP}/reconcile"
_SSA = f"{FLUX_KUSTOMIZE_GROUP}/ssa"
_HELM_RESOURCE_POLICY = "helm.sh/resource-policy"
_CRD_GROUP = "apiextensions.k8s.io"
_CRD = (_CRD_GROUP, "CustomResourceDefinition")


def plan_preview(
    base_sha: str,
    head_sha: str,
    base: Mapping[str, ClusterRender],
    head: Mapping[str, ClusterRender],
    planned: Mapping[str, ClusterPlan] | None = None,
) -> Preview:
    """Plan every cluster entry point found at base or head, by path.

    `planned` holds clusters already planned, by path (`core.plan.kept`): they are taken as they
    are.
    """
    paths = sorted(base.keys() | head.keys())
    known = planned or {}
    clusters = tuple(
        known[path] if path in known else _plan(path, base.get(path), head.get(path))
        for path in paths
    )
    return Preview(base=base_sha, head=head_sha, clusters=clusters)


def plan_cluster_at(
    path: str, base: ClusterRender | None, head: ClusterRender | None
) -> ClusterPlan:
    """Plan one cluster entry point under the path `plan_preview` would give it."""
    return _plan(path, base, head)


def plan_cluster(base: ClusterRender | None, head: ClusterRender | None) -> ClusterPlan:
    """Plan one cluster entry point; None means it does not exist on that side."""
    render = head or base
    if render is None:
        raise ValueError("plan_cluster needs a base or a head render")
    return _plan(render.path, base, head)


def _plan(path: str, base: ClusterRender | None, head: ClusterRender | None) -> ClusterPlan:
    planner = _Planner(base, head)
    units = tuple(planner.unit(ref) for ref in sorted(planner.base.keys() | planner.head.keys()))
    return ClusterPlan(
        path=path,
        units=units,
        errors=planner.errors(),
        duplicates=planner.head_duplicates(),
        definitions=planner.head_definitions(),
    )


class _Fate(enum.Enum):
    """What happens at head to the Flux object of a unit that is no longer rendered."""

    DELETED = "deleted"
    KEPT = "kept"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class _Verdict:
    fate: _Fate
    reason: str


@dataclass
class _Tally:
    """What planning one unit's objects adds up to."""

    changes: list[Change] = field(default_factory=list)
    skipped: int = 0
    noise_only: int = 0
    noise_only_suppressed: Counter[str] = field(default_factory=Counter)
    notices: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _CrdPolicy:
    """The CRD policy that applies to a HelmRelease's chart CRDs in this merge."""

    field: str
    """`install.crds` or `upgrade.crds`."""
    policy: str
    refs: frozenset[ObjectRef]
    """The chart's CRDs at head."""


def _marks(manifest: Manifest | None, key: str, sections: Iterable[str]) -> set[str]:
    """Return the lower-cased values of `key` in the given metadata sections of an object."""
    meta = manifest.body.get("metadata") if manifest else None
    if not isinstance(meta, Mapping):
        return set()
    found = set()
    for section in sections:
        values = meta.get(section)
        if isinstance(values, Mapping) and key in values:
            found.add(str(values[key]).lower())
    return found


_BOTH = ("annotations", "labels")


def _flux_skips(kind: UnitKind, *manifests: Manifest | None) -> bool:
    """Tell whether Flux neither applies nor prunes the object (kustomize-controller only)."""
    if kind is not UnitKind.KUSTOMIZATION:
        return False
    return any(
        "disabled" in _marks(m, _RECONCILE, _BOTH) or "ignore" in _marks(m, _SSA, _BOTH)
        for m in manifests
    )


def _survives_prune(kind: UnitKind, manifest: Manifest | None) -> bool:
    """Tell whether the object stays when its owner prunes or uninstalls it."""
    if kind is UnitKind.HELM_RELEASE:
        return "keep" in _marks(manifest, _HELM_RESOURCE_POLICY, ("annotations",))
    return "disabled" in _marks(manifest, _PRUNE, _BOTH)


def _finalizer_deletes(unit: RenderedUnit) -> tuple[bool, str]:
    """Tell whether deleting a unit's Flux object deletes its objects, and why."""
    if unit.suspend:
        return False, "it is suspended, so its finalizer deletes nothing"
    if unit.deletion_policy == "Orphan":
        return False, "its deletionPolicy is Orphan"
    if unit.deletion_policy in ("Delete", "WaitForTermination"):
        return True, f"its deletionPolicy is {unit.deletion_policy}"
    return unit.prune, f"it has prune: {str(unit.prune).lower()}"


def _flux_ref(unit: UnitRef) -> ObjectRef:
    group = FLUX_HELM_GROUP if unit.kind is UnitKind.HELM_RELEASE else FLUX_KUSTOMIZE_GROUP
    return ObjectRef(group, unit.kind.value, unit.namespace, unit.name)


def _owners(units: Mapping[UnitRef, RenderedUnit]) -> dict[ObjectRef, list[UnitRef]]:
    """Index which successfully rendered units render each object, units in sorted order."""
    owners: dict[ObjectRef, list[UnitRef]] = {}
    for ref in sorted(units):
        for obj in units[ref].objects or {}:
            owners.setdefault(obj, []).append(ref)
    return owners


def _duplicates(owners: Mapping[ObjectRef, list[UnitRef]], side: str) -> list[str]:
    # Sort only the few duplicates, not every object of the cluster.
    found = [(obj, units) for obj, units in owners.items() if len(units) > 1]
    return [
        f"{obj} is rendered by more than one unit at {side}: {', '.join(map(str, units))}"
        for obj, units in sorted(found)
    ]


class _Planner:
    """Plans the units of one cluster; memoizes what units learn from their parents."""

    def __init__(self, base: ClusterRender | None, head: ClusterRender | None) -> None:
        self.base: Mapping[UnitRef, RenderedUnit] = base.units if base else {}
        self.head: Mapping[UnitRef, RenderedUnit] = head.units if head else {}
        self.base_errors = base.errors if base else ()
        self.head_errors = head.errors if head else ()
        self.base_owners = _owners(self.base)
        self.base_scopes = _cluster_crd_scopes(self.base)
        # A cluster the preview took whole from the base is the same object at both sides:
        # its owners and scopes are the base's (read only from here on).
        same = base is not None and base is head
        self.head_owners = self.base_owners if same else _owners(self.head)
        self.head_scopes = self.base_scopes if same else _cluster_crd_scopes(self.head)
        self.base_failed = sorted(ref for ref, unit in self.base.items() if unit.objects is None)
        self.head_failed = sorted(ref for ref, unit in self.head.items() if unit.objects is None)
        self._failures: dict[UnitRef, str | None] = {}
        self._verdicts: dict[UnitRef, _Verdict] = {}
        # Units whose failure or verdict is being decided, to stop at a loop of parents.
        self._deciding_failure: set[UnitRef] = set()
        self._deciding_verdict: set[UnitRef] = set()

    def errors(self) -> tuple[str, ...]:
        """Cluster-level problems: render errors of either side, then duplicates."""
        return (
            *(f"at base: {error}" for error in self.base_errors),
            *(f"at head: {error}" for error in self.head_errors),
            *_duplicates(self.base_owners, "base"),
            *_duplicates(self.head_owners, "head"),
        )

    def head_duplicates(self) -> dict[ObjectRef, tuple[UnitRef, ...]]:
        """Objects that more than one unit renders at head, with those units."""
        return {obj: tuple(units) for obj, units in self.head_owners.items() if len(units) > 1}

    def head_definitions(self) -> dict[str, Manifest]:
        """CustomResourceDefinitions rendered at head, by name (the first unit's, if several)."""
        found: dict[str, Manifest] = {}
        for obj, units in self.head_owners.items():
            if (obj.group, obj.kind) == _CRD:
                objects = self.head[units[0]].objects or {}
                if obj in objects:
                    found[obj.name] = objects[obj]
        return dict(sorted(found.items()))

    def unit(self, ref: UnitRef) -> UnitPlan:
        """Plan one unit."""
        before, after = self.base.get(ref), self.head.get(ref)
        shown = after or before
        if shown is None:
            raise ValueError(f"{ref} is rendered on neither side")
        failure = self.failure(ref)
        tally, status, note = _Tally(), UnitStatus.FAILED, None
        unavailable = self._unavailable_source(before, after)
        if failure is None:
            status, note = self._plan_objects(tally, ref, before, after)
            tally.notices += _unknown_scopes(after, self.head_scopes)
        elif unavailable is not None:
            status = UnitStatus.UNAVAILABLE
        return UnitPlan(
            unit=ref,
            status=status,
            # The base spec decides what leaves the unit (see the module docstring).
            prune=(before or shown).prune,
            changes=tuple(sorted(tally.changes, key=lambda c: (c.ref, c.action.value))),
            error=failure,
            reason=self._reason(before, after) if failure is not None else None,
            suspended=shown.suspend,
            path=shown.path,
            parent=shown.parent,
            depends_on=shown.depends_on,
            source=shown.source,
            file=shown.file,
            deletion_policy=(before or shown).deletion_policy,
            skipped=tally.skipped,
            noise_only=tally.noise_only,
            noise_only_suppressed=dict(sorted(tally.noise_only_suppressed.items())),
            note=note,
            notices=tuple(tally.notices),
            unavailable_source=unavailable if status is UnitStatus.UNAVAILABLE else None,
        )

    def _reason(self, before: RenderedUnit | None, after: RenderedUnit | None) -> Failure | None:
        """The type of a unit's failure, in the order `_find_failure` finds it.

        A failed render gives its own (None if it did not say); objects Flux would refuse for
        their scope are bad input; anything else withholds a unit that itself rendered.
        """
        failed = [u for u in (after, before) if u is not None and u.objects is None]
        if failed:
            return next((u.failure for u in failed if u.failure is not None), None)
        if _scope_errors(after, self.head_scopes) or _scope_errors(before, self.base_scopes):
            return Failure.INPUT
        return Failure.WITHHELD

    @staticmethod
    def _unavailable_source(before: RenderedUnit | None, after: RenderedUnit | None) -> str | None:
        """The unreachable source's URL, when that alone kept the unit from rendering."""
        failed = [u for u in (before, after) if u is not None and u.objects is None]
        if failed and all(u.unavailable_source for u in failed):
            return failed[0].unavailable_source
        return None

    def _plan_objects(
        self, tally: _Tally, ref: UnitRef, before: RenderedUnit | None, after: RenderedUnit | None
    ) -> tuple[UnitStatus, str | None]:
        """Plan the objects of a unit that can be planned; return its status and note."""
        if before is not None and after is not None:
            if before.objects is after.objects:
                # The same render on both sides (the render cache shares it): nothing can differ.
                return UnitStatus.UNCHANGED, None
            crds = _CrdPolicy("upgrade.crds", after.upgrade_crds, after.chart_crds)
            self._walk(
                tally,
                ref,
                before.objects or {},
                after.objects or {},
                before.prune,
                crds,
                before.chart_crds,
            )
            changed = tally.changes or tally.notices
            return (UnitStatus.RENDERED if changed else UnitStatus.UNCHANGED), None
        if after is not None:
            crds = _CrdPolicy("install.crds", after.install_crds, after.chart_crds)
            self._walk(tally, ref, {}, after.objects or {}, deletes=False, crds=crds)
            return UnitStatus.ADDED, None
        if before is None:
            raise ValueError(f"{ref} is rendered on neither side")
        deletes, note = self._removal(before)
        self._walk(tally, ref, before.objects or {}, {}, deletes, kept=before.chart_crds)
        return UnitStatus.REMOVED, note

    # Why a unit cannot be planned.

    def failure(self, ref: UnitRef) -> str | None:
        """Return why a unit's objects must be withheld, or None when it can be planned."""
        if ref not in self._failures:
            if ref in self._deciding_failure:
                return f"unknown because the parents of {ref} form a cycle"
            self._deciding_failure.add(ref)
            try:
                self._failures[ref] = self._find_failure(ref)
            finally:
                self._deciding_failure.discard(ref)
        return self._failures[ref]

    def _find_failure(self, ref: UnitRef) -> str | None:
        before, after = self.base.get(ref), self.head.get(ref)
        errors = [
            f"at {side}: {unit.error or 'the render failed'}"
            for side, unit in (("base", before), ("head", after))
            if unit is not None and unit.objects is None
        ]
        for side, unit, scopes in (
            ("base", before, self.base_scopes),
            ("head", after, self.head_scopes),
        ):
            errors += [f"at {side}: {problem}" for problem in _scope_errors(unit, scopes)]
        if errors:
            return "; ".join(errors)
        if before is not None and after is not None:
            return None
        if after is not None:
            return self._added_failure(after)
        if before is None:
            return f"unknown because {ref} is rendered on neither side"
        if self.head_errors:
            return "unknown because the cluster had errors at head, so its removal is unproven"
        verdict = self.verdict(ref)
        return verdict.reason if verdict.fate is _Fate.UNKNOWN else None

    def _added_failure(self, unit: RenderedUnit) -> str | None:
        if self.base_errors:
            return "unknown because the cluster had errors at base, so its addition is unproven"
        parent = unit.parent
        if parent is None or parent == unit.unit:
            return None
        if parent not in self.head:
            return f"unknown because its parent {parent} is not rendered at head"
        if self.failure(parent) is not None:
            return f"unknown because its parent {parent} failed"
        return None

    # What happens to a removed unit's Flux object, and so to its objects.

    def verdict(self, ref: UnitRef) -> _Verdict:
        """Decide the fate at head of the Flux object of a unit rendered only at base."""
        if ref not in self._verdicts:
            if ref in self._deciding_verdict:
                return _Verdict(_Fate.UNKNOWN, f"unknown because the parents of {ref} form a cycle")
            self._deciding_verdict.add(ref)
            try:
                self._verdicts[ref] = self._find_verdict(self.base[ref])
            finally:
                self._deciding_verdict.discard(ref)
        return self._verdicts[ref]

    def _find_verdict(self, unit: RenderedUnit) -> _Verdict:
        parent = unit.parent
        if parent is None:
            return _Verdict(_Fate.KEPT, "nothing in the repository applies its Flux object")
        flux_object = _flux_ref(unit.unit)
        if still := self.head_owners.get(flux_object):
            renderers = ", ".join(map(str, still))
            return _Verdict(
                _Fate.UNKNOWN,
                f"unknown because its Flux object is still rendered at head by {renderers}"
                " but it was not rendered as a unit",
            )
        if parent == unit.unit:
            return self._pruned_by(unit, flux_object)
        if parent in self.head:
            if self.failure(parent) is not None:
                return _Verdict(_Fate.UNKNOWN, f"unknown because its parent {parent} failed")
            return self._pruned_by(self.base.get(parent), flux_object)
        if parent in self.base:
            return self._follows(parent, flux_object)
        return _Verdict(_Fate.UNKNOWN, f"unknown because its parent {parent} was not rendered")

    def _pruned_by(self, parent: RenderedUnit | None, flux_object: ObjectRef) -> _Verdict:
        """Decide whether a parent still rendered at head prunes a Flux object it dropped."""
        if parent is None or parent.objects is None:
            return _Verdict(_Fate.UNKNOWN, "unknown because its parent was not rendered at base")
        manifest = parent.objects.get(flux_object)
        kind = parent.unit.kind
        if _flux_skips(kind, manifest):
            return _Verdict(_Fate.KEPT, f"{parent.unit} does not reconcile its Flux object")
        if _survives_prune(kind, manifest):
            return _Verdict(_Fate.KEPT, "its Flux object has pruning disabled")
        if not parent.prune:
            return _Verdict(_Fate.KEPT, f"{parent.unit} does not prune (prune: false)")
        return _Verdict(_Fate.DELETED, f"{parent.unit} prunes its Flux object")

    def _follows(self, parent_ref: UnitRef, flux_object: ObjectRef) -> _Verdict:
        """Decide the fate of a Flux object whose parent is removed too."""
        parent = self.base[parent_ref]
        verdict = self.verdict(parent_ref)
        if verdict.fate is _Fate.UNKNOWN:
            return verdict  # the parent's reason is the root cause
        if parent.objects is None:
            return _Verdict(_Fate.UNKNOWN, f"unknown because its parent {parent_ref} failed")
        if verdict.fate is _Fate.KEPT:
            return _Verdict(_Fate.KEPT, f"its parent {parent_ref} stays in the cluster")
        deletes, why = _finalizer_deletes(parent)
        manifest = parent.objects.get(flux_object)
        kind = parent.unit.kind
        if deletes and not _survives_prune(kind, manifest) and not _flux_skips(kind, manifest):
            return _Verdict(_Fate.DELETED, f"it is deleted with its parent {parent_ref}")
        return _Verdict(_Fate.KEPT, f"its parent {parent_ref} is deleted but {why}")

    def _removal(self, unit: RenderedUnit) -> tuple[bool, str]:
        """Tell whether a removed unit's objects are deleted, with the note that explains it."""
        verdict = self.verdict(unit.unit)
        if verdict.fate is _Fate.KEPT:
            return False, (
                f"Its Flux object stays in the cluster ({verdict.reason}), so it keeps"
                " reconciling its source on its own and its objects are left in place."
            )
        deletes, why = _finalizer_deletes(unit)
        outcome = "its objects are deleted" if deletes else "its objects are left in place"
        return deletes, f"Its Flux object is deleted ({verdict.reason}) and {why}, so {outcome}."

    # Objects.

    def _walk(
        self,
        tally: _Tally,
        ref: UnitRef,
        before: Mapping[ObjectRef, Manifest],
        after: Mapping[ObjectRef, Manifest],
        deletes: bool,
        crds: _CrdPolicy | None = None,
        kept: frozenset[ObjectRef] = frozenset(),
    ) -> None:
        """Plan every object of a unit; `kept` are objects its owner never deletes."""
        for obj in sorted(before.keys() | after.keys()):
            old, new = before.get(obj), after.get(obj)
            if crds and obj in crds.refs and new is not None and _crd_held(tally, old, new, crds):
                continue
            if old is not None and new is not None:
                _stay(tally, ref.kind, obj, old, new)
            elif new is not None:
                self._arrive(tally, ref, obj, new)
            elif old is not None:
                self._leave(tally, ref.kind, obj, old, deletes, chart_crd=obj in kept)

    def _arrive(self, tally: _Tally, ref: UnitRef, obj: ObjectRef, new: Manifest) -> None:
        origin = next((u for u in self.base_owners.get(obj, ()) if u != ref), None)
        old = (self.base[origin].objects or {}).get(obj) if origin else None
        if _flux_skips(ref.kind, old, new):
            tally.skipped += 1
            return
        result = comparing.compare(old, new)
        action, note = Action.MOVE if origin else Action.CREATE, None
        if origin is None and (failed := [u for u in self.base_failed if u != ref]):
            action = Action.UNKNOWN
            note = (
                f"new to {ref}, but {_names(failed)} failed at base and may render it there: "
                "Flux creates it, or moves it if it comes from there"
            )
        tally.changes.append(
            Change(
                action=action,
                ref=obj,
                api_version=new.api_version,
                moved_from=origin,
                fields=result.fields,
                diff=result.diff,
                suppressed=result.suppressed,
                note=note,
                before=old,
                after=new,
            )
        )

    def _leave(
        self,
        tally: _Tally,
        kind: UnitKind,
        obj: ObjectRef,
        old: Manifest,
        deletes: bool,
        *,
        chart_crd: bool = False,
    ) -> None:
        if self.head_owners.get(obj):
            return  # another unit renders it at head: the receiving unit reports the move
        if _flux_skips(kind, old):
            tally.skipped += 1
            return
        if chart_crd:
            note = "helm-controller never deletes a CRD from a chart's crds/ directory"
            tally.changes.append(Change(Action.ORPHAN, obj, old.api_version, before=old, note=note))
            return
        if deletes and not _survives_prune(kind, old):
            result = comparing.compare(old, None)
            change = Change(
                Action.DELETE,
                obj,
                old.api_version,
                diff=result.diff,
                suppressed=result.suppressed,
                before=old,
            )
            if self.head_failed:
                change = replace(
                    change,
                    action=Action.UNKNOWN,
                    note=(
                        f"no longer rendered here, but {_names(self.head_failed)} failed at head "
                        "and may render it there: Flux deletes it, or moves it if it goes there"
                    ),
                )
        else:
            change = Change(Action.ORPHAN, obj, old.api_version, before=old)
        tally.changes.append(change)


def _crd_held(tally: _Tally, old: Manifest | None, new: Manifest, crds: _CrdPolicy) -> bool:
    """Tell whether helm-controller's CRD policy leaves a chart CRD alone; say so if it does."""
    ref = new.ref
    if old is None:
        if crds.policy != "Skip":
            return False
        tally.skipped += 1
        tally.notices.append(
            f"{ref} is new in the chart's crds/ but helm-controller will not create it: "
            f"{crds.field} is Skip"
        )
        return True
    if crds.policy == "CreateReplace" or not comparing.compare(old, new).changed:
        return False
    tally.skipped += 1
    why = " (it only creates missing CRDs)" if crds.policy == "Create" else ""
    tally.notices.append(
        f"{ref} changes in the chart's crds/ but helm-controller will not apply the change: "
        f"{crds.field} is {crds.policy}{why}"
    )
    return True


def _cluster_crd_scopes(units: Mapping[UnitRef, RenderedUnit]) -> dict[tuple[str, str], bool]:
    """The scope of every kind a CRD rendered anywhere in the cluster defines."""
    return crd_scopes(
        objects[ref].body
        for unit in units.values()
        if (objects := unit.objects) is not None
        for ref in objects
        if ref.kind == "CustomResourceDefinition" and ref.group == _CRD_GROUP
    )


def _unscoped(unit: RenderedUnit | None) -> list[ObjectRef]:
    """The objects of a Kustomization render that have no namespace."""
    if unit is None or unit.objects is None or unit.unit.kind is not UnitKind.KUSTOMIZATION:
        return []
    return sorted(ref for ref in unit.objects if not ref.namespace)


def _scope_errors(unit: RenderedUnit | None, scopes: Mapping[tuple[str, str], bool]) -> list[str]:
    """Objects of a namespaced kind without a namespace: Flux's apply fails on them."""
    return [
        f"{ref.kind}/{ref.name} namespace not specified: {ref.kind} ({ref.group}) is namespaced "
        "by a CustomResourceDefinition rendered in this cluster, so Flux's apply fails"
        for ref in _unscoped(unit)
        if is_namespaced((ref.group, ref.kind), scopes)
    ]


def _unknown_scopes(unit: RenderedUnit | None, scopes: Mapping[tuple[str, str], bool]) -> list[str]:
    """Say which kinds of namespace-less objects have a scope nothing here defines."""
    unknown: dict[tuple[str, str], list[str]] = {}
    for ref in _unscoped(unit):
        if is_namespaced((ref.group, ref.kind), scopes) is None:
            unknown.setdefault((ref.group, ref.kind), []).append(ref.name)
    return [
        f"the scope of {kind} ({group}) is unknown: no CustomResourceDefinition rendered in this "
        f"cluster defines it, and {kind}/{names[0]} has no namespace; if the kind is namespaced, "
        'Flux\'s apply fails with "namespace not specified"'
        for (group, kind), names in sorted(unknown.items())
    ]


def _names(units: Iterable[UnitRef]) -> str:
    return ", ".join(map(str, units))


def _stay(tally: _Tally, kind: UnitKind, obj: ObjectRef, old: Manifest, new: Manifest) -> None:
    result = comparing.compare(old, new)
    if not result.changed:
        if result.suppressed:
            tally.noise_only += 1
            tally.noise_only_suppressed.update(result.suppressed)
        return
    if _flux_skips(kind, old, new):
        tally.skipped += 1
        return
    tally.changes.append(
        Change(
            action=Action.UPDATE,
            ref=obj,
            api_version=new.api_version,
            fields=result.fields,
            diff=result.diff,
            suppressed=result.suppressed,
            before=old,
            after=new,
        )
    )
