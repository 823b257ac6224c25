"""Apply one Kustomization's objects as kustomize-controller does: staged server-side apply.

The only module that sends cleartext objects to the cluster (import-linter keeps it that way).
The rules, after fluxcd/pkg ssa's `ApplyAllStaged`:

- Stages. First the cluster definitions (CustomResourceDefinitions, Namespaces, ClusterRoles),
  then a wait until they are ready (a CRD Established, a Namespace Active); then every kind whose
  name ends in `Class`, and a wait; then everything else. Within a stage, objects go in Flux's
  kind order (`core.inventory.sort_key`). An error stops the run and carries the change set of
  what was done so far.
- Writes, kind by kind. Flux writes a stage's objects one at a time; here every object of a kind
  is written before any of the next kind (so Flux's kind order holds: a ServiceAccount before
  the Deployment that runs as it), and the objects of one kind are written concurrently (as many
  at once as the dry runs), since their order means nothing to the apiserver. The change set
  lists them in Flux's order whatever order the writes ended in. When a write fails, no further
  write of that kind starts and none of a later kind; the error names every object that failed.
- Dry run first. Every object of a stage is read and dry-run applied (concurrently, as
  `--concurrent-ssa`) before any is written; one failed dry run writes nothing of that stage.
  What the Kustomization already owns is read with one list per kind and namespace (by its
  ownership labels). Any other object is dry-run first: when the dry run says it does not exist
  (no resourceVersion) it is created without a read, else it is read on its own and judged by
  the same rules.
- Drift. An object is written only when the dry run differs from the live object (labels,
  annotations, and everything outside `metadata` and `status`) or its metadata needs cleaning;
  otherwise it is `unchanged` and nothing is sent, so its resourceVersion stays.
- Field manager `kustomize-controller`, ownership forced. Before writing, the fields owned by
  `kubectl` (apply and update), `before-first-apply` and legacy `kustomize-controller` updates are
  handed to `kustomize-controller`, so the apply removes what `kubectl edit` added; with
  `kustomize.toolkit.fluxcd.io/ssa: Merge` that cleanup is skipped. kubectl's
  last-applied-configuration and Flux v1's checksum annotations are removed.
- Ignore rules (`spec.ignore`, `reconciler.drift_ignore`). On an object that exists, the fields
  the rules select are left out of the drift comparison, so an object whose only differences are
  ignored fields (an HPA's `/spec/replicas`) is `unchanged` and not written. When something else
  drifted and the object is written, each ignored field whose dry-run value differs from the live
  one is reshaped as fluxcd/pkg ssa does: released (left out of the payload) when another
  manager's apply owns it, else the live value is sent, so the write keeps it. An ignored field
  the live object lacks keeps the desired value. A new object is created whole.
- Skips. `kustomize.toolkit.fluxcd.io/reconcile: disabled` or `.../ssa: Ignore` on the desired or
  the live object: `skipped`. `.../ssa: IfNotPresent` and the object exists: `skipped`. Skipped
  objects stay in the inventory.
- Force. With `spec.force` or `kustomize.toolkit.fluxcd.io/force: enabled` on the object, an
  object whose dry run fails only because an immutable field changed is deleted and created
  again. Unlike Flux (which recreates on any 409 or 422), nothing else is recreated, and the
  delete happens only after the whole stage's dry run passed.
- Ownership labels `kustomize.toolkit.fluxcd.io/name` and `.../namespace` on every object.

Errors name the object, the step and the apiserver's reason (`Deployment/apps/web dry-run
failed (Invalid): ...`) and carry the field paths it named. Every message is scrubbed of the
Secret values among the objects; no body is ever logged, returned or put in an exception.
"""

from __future__ import annotations

import base64
import copy
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.cleartext import Clear, replace_paths
from core.cluster.port import (
    FIELD_MANAGER,
    ClusterError,
    ClusterPort,
    Forbidden,
    ImmutableField,
    NotFound,
    UnknownKind,
)
from core.errors import Failure, TidegateError
from core.host.files import FileSource
from core.inventory import sort_key
from core.model import ObjectRef, group_of
from core.render import clear
from core.render.kustomize import Rendered
from core.render.memo import BuildMemo
from core.secrets import KnownValues, values_in
from core.units import KustomizationSpec
from reconciler import drift_ignore
from reconciler.changeset import Action, ChangeSet, ChangeSetEntry

__all__ = [
    "OWNER_NAME",
    "OWNER_NAMESPACE",
    "ApplyError",
    "Options",
    "Owner",
    "apply_objects",
    "build",
]

OWNER_NAME = "kustomize.toolkit.fluxcd.io/name"
OWNER_NAMESPACE = "kustomize.toolkit.fluxcd.io/namespace"
_RECONCILE = "kustomize.toolkit.fluxcd.io/reconcile"
_SSA = "kustomize.toolkit.fluxcd.io/ssa"
_FORCE = "kustomize.toolkit.fluxcd.io/force"

# Drift cleanup (kustomize-controller's defaults): metadata left by kubectl and by Flux v1.
_STALE_ANNOTATIONS = (
    "kubectl.kubernetes.io/last-applied-configuration",
    "kustomize.toolkit.fluxcd.io/checksum",
    "fluxcd.io/sync-checksum",
)
_STALE_LABELS = ("fluxcd.io/sync-gc-mark",)
# (manager name prefix, operation): whose fields are handed to kustomize-controller.
_FOREIGN_MANAGERS = (
    ("kubectl", "Apply"),
    ("kubectl", "Update"),
    ("before-first-apply", "Update"),
    ("kustomize-controller", "Update"),
)

# A list replaces one read per object only where it saves requests.
_PREFETCH_MIN = 2

_CLUSTER_DEFINITIONS = frozenset(
    {
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ("", "Namespace"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
    }
)


@dataclass(frozen=True)
class Owner:
    """The Kustomization the objects belong to."""

    name: str
    namespace: str

    @property
    def labels(self) -> dict[str, str]:
        """Flux's ownership labels."""
        return {OWNER_NAME: self.name, OWNER_NAMESPACE: self.namespace}


@dataclass(frozen=True)
class Options:
    """How to apply."""

    force: bool = False
    """`spec.force`: recreate objects whose immutable fields changed."""
    wait_timeout: float = 60.0
    """How long to wait for each stage's definitions to become ready (Flux: 60s)."""
    poll: float = 0.5
    concurrency: int = 4
    """Objects read and dry-run at once (Flux's `--concurrent-ssa`)."""
    field_manager: str = FIELD_MANAGER
    ignore: tuple[drift_ignore.IgnoreRule, ...] = ()
    """`spec.ignore`: fields left out of drift detection and correction."""


class ApplyError(TidegateError):
    """The apply stopped at one object; `change_set` holds what was done before it."""

    failure = Failure.INPUT

    def __init__(
        self,
        message: str,
        *,
        ref: ObjectRef | None,
        change_set: ChangeSet,
        fields: Sequence[str] = (),
        forbidden: bool = False,
    ) -> None:
        super().__init__(message)
        self.ref = ref
        self.change_set = change_set
        self.fields = tuple(fields)
        self.forbidden = forbidden

    @property
    def condition_reason(self) -> str:
        """The Ready condition's reason: `AccessDenied` when RBAC refused, else Flux's own."""
        return "AccessDenied" if self.forbidden else "ReconciliationFailed"


def build(
    spec: KustomizationSpec,
    source: FileSource,
    *,
    kustomize_bin: Path,
    variables: Mapping[str, str] | None,
    secret_values: Mapping[str, str] | None = None,
    work_root: Path | None = None,
    memo: BuildMemo | None = None,
    source_digest: str | None = None,
) -> Rendered:
    """Build `spec` in cleartext for `apply_objects` (see `core.render.clear`)."""
    return clear.build_kustomization(
        spec,
        source,
        kustomize_bin=kustomize_bin,
        variables=variables,
        secret_values=secret_values,
        work_root=work_root,
        memo=memo,
        source_digest=source_digest,
    )


def apply_objects(
    port: ClusterPort,
    objects: Iterable[Clear],
    *,
    owner: Owner | None,
    options: Options = Options(),
) -> ChangeSet:
    """Apply `objects` in Flux's stages; return the change set.

    Raises:
        ApplyError: an object could not be read, dry-run, written or waited for; the message
            names it and holds no Secret value, and `change_set` what was done before.
    """
    desired = list(objects)
    run = _Run(port, _known_values(desired), options, owner)
    prepared = [_Desired.of(item, owner) for item in desired]
    first = [d for d in prepared if (d.ref.group, d.ref.kind) in _CLUSTER_DEFINITIONS]
    classes = [d for d in prepared if d not in first and d.ref.kind.endswith("Class")]
    rest = [d for d in prepared if d not in first and d not in classes]
    for stage, wait in ((first, True), (classes, True), (rest, False)):
        if stage:
            run.stage(stage, wait=wait)
    run.change_set.complete = True
    return run.change_set


@dataclass(eq=False)
class _Desired:
    """One object to apply: the payload Flux sends, and its identity."""

    body: dict[str, Any]
    ref: ObjectRef
    version: str

    @classmethod
    def of(cls, item: Clear, owner: Owner | None) -> _Desired:
        body = _normalized(item.body, owner)
        ref = ObjectRef.of(body)
        return cls(body, ref, str(body.get("apiVersion", "")).rsplit("/", 1)[-1])

    @property
    def api_version(self) -> str:
        return str(self.body["apiVersion"])

    def marked(self, key: str, value: str) -> bool:
        return _marked(self.body, key, value)


@dataclass
class _Step:
    """The dry-run verdict on one object: what to write, if anything."""

    item: _Desired
    action: Action
    cleanup: list[dict[str, Any]] = field(default_factory=list)
    recreate: bool = False
    body: dict[str, Any] | None = None
    """The payload when the ignore rules reshaped it; None sends the desired body."""


class _Run:
    """One apply: the port, what to scrub from messages, and the change set so far."""

    def __init__(
        self, port: ClusterPort, known: KnownValues, options: Options, owner: Owner | None
    ) -> None:
        self.port = port
        self.known = known
        self.options = options
        self.owner = owner
        self.change_set = ChangeSet()
        self.listed: dict[tuple[str, str, str, str], dict[str, Any]] = {}

    def stage(self, items: list[_Desired], *, wait: bool) -> None:
        items = sorted(items, key=lambda d: sort_key(d.ref))
        self._prefetch(items)
        with ThreadPoolExecutor(max_workers=max(1, self.options.concurrency)) as pool:
            # map returns in order and re-raises the first failure in that order.
            steps = list(pool.map(self._dry_run, items))
            for run in _kind_runs(steps):
                self._write_run(pool, run)
        if wait:
            for step in steps:
                if step.action is not Action.SKIPPED:
                    self._wait_ready(step.item)

    # Phase 1: read, skip rules, dry run, drift.

    def _prefetch(self, items: Sequence[_Desired]) -> None:
        """Read the objects this Kustomization already owns with one list per kind and namespace.

        A steady reconcile then costs one dry run per object instead of a read and a dry run.
        Objects the list does not return (new, or not yet labelled) are read one by one, and a
        list the identity may not make (RBAC) falls back to reads.
        """
        self.listed = {}
        if self.owner is None:
            return
        selector = ",".join(f"{k}={v}" for k, v in self.owner.labels.items())
        groups = Counter((d.api_version, d.ref.kind, _namespace(d.body)) for d in items)
        for (api_version, kind, namespace), count in groups.items():
            if count < _PREFETCH_MIN:
                continue
            try:
                found = self.port.list(api_version, kind, namespace or None, selector)
            except ClusterError:
                continue
            for obj in found:
                key = (api_version, kind, _namespace(obj), str(obj["metadata"]["name"]))
                self.listed[key] = obj

    def _dry_run(self, item: _Desired) -> _Step:
        if _excluded(item.body):
            return _Step(item, Action.SKIPPED)
        existing = self._owned(item)
        probe: dict[str, Any] | None = None
        if existing is None:
            # Not among the owned objects: most often a new one. Its dry run answers whether it
            # exists (no resourceVersion: it does not), so a new object costs no read; one that
            # exists, or whose dry run failed, is read and judged as before.
            probe = self._probe(item)
            if probe is not None and not (probe.get("metadata") or {}).get("resourceVersion"):
                return _Step(item, Action.CREATED)
            existing = self._get(item)
        if existing is not None and _excluded(existing):
            return _Step(item, Action.SKIPPED)
        if existing is not None and item.marked(_SSA, "ifnotpresent"):
            return _Step(item, Action.SKIPPED)
        try:
            dry = (
                probe
                if probe is not None
                else self.port.apply(
                    item.body, field_manager=self.options.field_manager, force=True, dry_run=True
                )
            )
        except ImmutableField as exc:
            if existing is not None and (self.options.force or item.marked(_FORCE, "enabled")):
                return _Step(item, Action.CREATED, recreate=True)
            raise self._error(item, "dry-run failed", exc) from None
        except ClusterError as exc:
            raise self._error(item, "dry-run failed", exc) from None
        cleanup = [] if existing is None else _cleanup(item, existing, self.options.field_manager)
        created = not (dry.get("metadata") or {}).get("resourceVersion")
        if created:
            return _Step(item, Action.CREATED)
        ignored = (
            () if existing is None else drift_ignore.pointers_for(self.options.ignore, item.body)
        )
        if cleanup or existing is None or _drifted(existing, dry, ignored):
            body = None
            if existing is not None and ignored:
                body = _reshaped(item.body, existing, dry, ignored, self.options.field_manager)
            return _Step(item, Action.CONFIGURED, cleanup, body=body)
        return _Step(item, Action.UNCHANGED)

    def _owned(self, item: _Desired) -> dict[str, Any] | None:
        """The object as the owner's list returned it, if it did."""
        namespace = _namespace(item.body)
        return self.listed.get((item.api_version, item.ref.kind, namespace, item.ref.name))

    def _probe(self, item: _Desired) -> dict[str, Any] | None:
        """The dry run of an object not known to exist; None when it failed (judged later)."""
        try:
            return self.port.apply(
                item.body, field_manager=self.options.field_manager, force=True, dry_run=True
            )
        except ClusterError:
            return None

    def _get(self, item: _Desired) -> dict[str, Any] | None:
        namespace = _namespace(item.body)
        try:
            return self.port.get(item.api_version, item.ref.kind, namespace, item.ref.name)
        except UnknownKind as exc:
            raise self._error(item, "dry-run failed", exc) from None
        except NotFound:
            return None
        except ClusterError as exc:
            raise self._error(item, "get failed", exc) from None

    # Phase 2: write what drifted, kind by kind.

    def _write_run(self, pool: ThreadPoolExecutor, run: Sequence[_Step]) -> None:
        """Write one kind's objects concurrently; record them in order, or fail naming each.

        Every object of the kinds before is written before any of this one, so Flux's kind order
        holds between kinds. After a failure no further write of the run starts; the ones that
        were done are in the change set, and the error names every object that failed.
        """
        stop = threading.Event()

        def write(step: _Step) -> ApplyError | bool:
            """The write's error, else whether it was done (False: not started)."""
            if stop.is_set():
                return False
            try:
                self._write(step)
            except ApplyError as exc:
                stop.set()
                return exc
            return True

        outcomes = list(pool.map(write, run))
        for step, outcome in zip(run, outcomes, strict=True):
            if outcome is True:
                self.change_set.add(ChangeSetEntry(step.item.ref, step.item.version, step.action))
        failures = [o for o in outcomes if isinstance(o, ApplyError)]
        if failures:
            raise _joined(failures)

    def _write(self, step: _Step) -> None:
        if step.action in (Action.SKIPPED, Action.UNCHANGED):
            return
        item = step.item
        meta = item.body.get("metadata") or {}
        namespace = str(meta.get("namespace") or "")
        try:
            if step.recreate:
                self.port.delete(
                    item.api_version,
                    item.ref.kind,
                    namespace,
                    item.ref.name,
                    propagation="Background",
                )
                self._wait_gone(item, namespace)
            if step.cleanup:
                self.port.json_patch(
                    item.api_version, item.ref.kind, namespace, item.ref.name, step.cleanup
                )
            body = item.body if step.body is None else step.body
            self.port.apply(body, field_manager=self.options.field_manager, force=True)
        except ClusterError as exc:
            raise self._error(item, "apply failed", exc) from None

    # Waiting

    def _wait_gone(self, item: _Desired, namespace: str) -> None:
        def gone() -> bool:
            try:
                self.port.get(item.api_version, item.ref.kind, namespace, item.ref.name)
            except NotFound:
                return True
            return False

        if not self._poll(gone):
            raise self._timeout(item, "deletion (immutable field changed, recreating)")

    def _wait_ready(self, item: _Desired) -> None:
        meta = item.body.get("metadata") or {}
        namespace = str(meta.get("namespace") or "")

        def ready() -> bool:
            try:
                live = self.port.get(item.api_version, item.ref.kind, namespace, item.ref.name)
            except NotFound:
                return False
            except ClusterError as exc:
                raise self._error(item, "wait failed", exc) from None
            return _ready(live) and self._served(live)

        if not self._poll(ready):
            raise self._timeout(item, "readiness")

    def _served(self, live: Mapping[str, Any]) -> bool:
        """For a CRD: whether discovery serves its kind yet (it lags behind Established)."""
        if live.get("kind") != "CustomResourceDefinition":
            return True
        spec = live.get("spec") or {}
        kind = str((spec.get("names") or {}).get("kind", ""))
        versions = [v for v in spec.get("versions") or [] if v.get("served")]
        return all(self.port.serves(f"{spec.get('group')}/{v.get('name')}", kind) for v in versions)

    def _poll(self, check: Callable[[], bool]) -> bool:
        deadline = time.monotonic() + self.options.wait_timeout
        while True:
            if check():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(self.options.poll)

    # Errors

    def _error(self, item: _Desired, step: str, exc: ClusterError) -> ApplyError:
        reason = exc.reason or type(exc).__name__
        message = self.known.scrub(f"{item.ref} {step} ({reason}): {exc.detail}")
        return ApplyError(
            message,
            ref=item.ref,
            change_set=self.change_set,
            fields=getattr(exc, "fields", ()),
            forbidden=isinstance(exc, Forbidden),
        )

    def _timeout(self, item: _Desired, what: str) -> ApplyError:
        limit = f"{self.options.wait_timeout:g}s"
        return ApplyError(
            f"{item.ref} timeout waiting for {what} after {limit}",
            ref=item.ref,
            change_set=self.change_set,
        )


def _kind_runs(steps: Sequence[_Step]) -> list[list[_Step]]:
    """The steps cut where the kind changes (they come sorted in Flux's kind order)."""
    runs: list[list[_Step]] = []
    for step in steps:
        key = (step.item.ref.group, step.item.ref.kind)
        if runs and (runs[-1][0].item.ref.group, runs[-1][0].item.ref.kind) == key:
            runs[-1].append(step)
        else:
            runs.append([step])
    return runs


def _joined(failures: Sequence[ApplyError]) -> ApplyError:
    """One error for the failed writes of a run: the first object's, with every message."""
    first = failures[0]
    if len(failures) == 1:
        return first
    return ApplyError(
        "\n".join(str(f) for f in failures),
        ref=first.ref,
        change_set=first.change_set,
        fields=first.fields,
        forbidden=first.forbidden,
    )


def _namespace(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "")


def _normalized(body: Mapping[str, Any], owner: Owner | None) -> dict[str, Any]:
    """The payload Flux sends: status and creationTimestamp dropped, stringData folded, labelled."""
    result = copy.deepcopy(dict(body))
    kind = result.get("kind")
    if kind != "CustomResourceDefinition":
        result.pop("status", None)
    meta = dict(result.get("metadata") or {})
    meta.pop("creationTimestamp", None)
    if owner is not None:
        meta["labels"] = {**(meta.get("labels") or {}), **owner.labels}
    result["metadata"] = meta
    if kind == "Secret" and group_of(str(result.get("apiVersion", ""))) == "":
        _fold_string_data(result)
    return result


def _fold_string_data(secret: dict[str, Any]) -> None:
    """Move `stringData` into `data`, as the apiserver does, so the dry run compares like."""
    string_data = secret.pop("stringData", None)
    if not isinstance(string_data, Mapping) or not string_data:
        return
    data = dict(secret.get("data") or {})
    for key, value in string_data.items():
        data[str(key)] = base64.b64encode(str(value).encode()).decode()
    secret["data"] = data


def _marks(obj: Mapping[str, Any], key: str) -> list[str]:
    meta = obj.get("metadata") or {}
    found = []
    for section in ("labels", "annotations"):
        values = meta.get(section) or {}
        if isinstance(values, Mapping) and key in values:
            found.append(str(values[key]).lower())
    return found


def _marked(obj: Mapping[str, Any], key: str, value: str) -> bool:
    """Whether a label or annotation `key` says `value` (case-insensitive, as Flux matches)."""
    return value in _marks(obj, key)


def _excluded(obj: Mapping[str, Any]) -> bool:
    return _marked(obj, _RECONCILE, "disabled") or _marked(obj, _SSA, "ignore")


def _comparable(obj: Mapping[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    meta = obj.get("metadata") or {}
    rest = {k: v for k, v in obj.items() if k not in ("metadata", "status")}
    return (meta.get("labels") or {}, meta.get("annotations") or {}, rest)


def _drifted(
    live: Mapping[str, Any], dry: Mapping[str, Any], ignored: Sequence[drift_ignore.Pointer] = ()
) -> bool:
    """Whether the dry run would change the live object (outside server-owned metadata).

    The `ignored` fields are left out of both sides.
    """
    if ignored:
        live, dry = drift_ignore.without(live, ignored), drift_ignore.without(dry, ignored)
    return _comparable(live) != _comparable(dry)


def _reshaped(
    body: Mapping[str, Any],
    live: Mapping[str, Any],
    dry: Mapping[str, Any],
    ignored: Sequence[drift_ignore.Pointer],
    manager: str,
) -> dict[str, Any]:
    """The payload that leaves each drifted ignored field as it is in the cluster.

    A field another manager's apply owns is left out, so this apply releases it to that manager;
    any other is sent with its live value, because leaving out a field no one else owns would
    make the API server remove it (an HPA writes replicas through an update, not an apply).
    """
    result = copy.deepcopy(dict(body))
    entries = (live.get("metadata") or {}).get("managedFields") or []
    for pointer in ignored:
        in_live, live_value = drift_ignore.value_at(live, pointer)
        if not in_live or drift_ignore.value_at(dry, pointer) == (True, live_value):
            continue
        if _applied_by_other(entries, pointer, manager):
            result = drift_ignore.without(result, [pointer])
        else:
            drift_ignore.set_value(result, pointer, live_value)
    return result


def _applied_by_other(entries: Sequence[Any], pointer: drift_ignore.Pointer, manager: str) -> bool:
    """Whether a manager other than `manager` owns the field at `pointer` through an apply.

    Map keys are followed as `f:<key>`; a pointer into a list cannot be matched to its
    `k:`/`i:` entry from the pointer alone and counts as not owned (the live value is adopted).
    """
    for entry in entries:
        if not isinstance(entry, Mapping) or entry.get("operation") != "Apply":
            continue
        if entry.get("manager") == manager or entry.get("subresource"):
            continue
        node: Any = entry.get("fieldsV1") or {}
        for token in pointer:
            node = node.get(f"f:{token}") if isinstance(node, Mapping) else None
            if node is None:
                break
        else:
            return True
    return False


def _cleanup(item: _Desired, live: Mapping[str, Any], manager: str) -> list[dict[str, Any]]:
    """The JSON patch that removes stale metadata and hands kubectl's fields to `manager`."""
    if item.marked(_SSA, "merge") or _marked(live, _SSA, "merge"):
        return []
    meta = live.get("metadata") or {}
    ops: list[dict[str, Any]] = []
    for section, keys in (("annotations", _STALE_ANNOTATIONS), ("labels", _STALE_LABELS)):
        present = meta.get(section) or {}
        for key in keys:
            if key in present:
                ops.append({"op": "remove", "path": f"/metadata/{section}/{_pointer(key)}"})
    managed = _replace_managers(meta.get("managedFields") or [], manager)
    if managed is not None:
        ops.append({"op": "replace", "path": "/metadata/managedFields", "value": managed})
    return ops


def _pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _foreign(entry: Mapping[str, Any]) -> bool:
    name, operation = str(entry.get("manager", "")), entry.get("operation")
    return not entry.get("subresource") and any(
        name.startswith(prefix) and operation == op for prefix, op in _FOREIGN_MANAGERS
    )


def _replace_managers(entries: Sequence[Mapping[str, Any]], manager: str) -> list[Any] | None:
    """The managedFields with the foreign managers' fields merged into `manager`'s apply entry.

    None when no entry is foreign (nothing to patch).
    """
    own: dict[str, Any] | None = None
    own_index = -1
    for index, entry in enumerate(entries):
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            own, own_index = dict(entry), index
    kept: list[Any] = []
    edited = False
    for index, entry in enumerate(entries):
        if index == own_index:
            continue
        if not _foreign(entry):
            kept.append(dict(entry))
            continue
        edited = True
        if own is None:
            own = {**entry, "manager": manager, "operation": "Apply"}
        else:
            own["fieldsV1"] = _merge_fields(own.get("fieldsV1") or {}, entry.get("fieldsV1") or {})
    if not edited or own is None:
        return None
    kept.append(own)
    return kept


def _merge_fields(left: Mapping[str, Any], right: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(left)
    for key, value in right.items():
        if isinstance(merged.get(key), Mapping) and isinstance(value, Mapping):
            merged[key] = _merge_fields(merged[key], value)
        elif key not in merged:
            merged[key] = value
    return merged


def _ready(live: Mapping[str, Any]) -> bool:
    """Whether a staged definition is ready for what follows it (kstatus' rule for its kind)."""
    kind = live.get("kind")
    status = live.get("status") or {}
    if kind == "CustomResourceDefinition":
        conditions = status.get("conditions") or []
        return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)
    if kind == "Namespace":
        return status.get("phase") == "Active"
    observed = status.get("observedGeneration")
    generation = (live.get("metadata") or {}).get("generation")
    return observed is None or generation is None or observed == generation


def _known_values(objects: Sequence[Clear]) -> KnownValues:
    """Every Secret value among `objects`, to scrub from messages."""
    known = KnownValues()
    for value in values_in(item.body for item in objects):
        known.add(value)
    for item in objects:
        if item.secret:
            _collect_paths(item, known)
    return known


def _collect_paths(item: Clear, known: KnownValues) -> None:
    def remember(value: bytes) -> str:
        known.add(value)
        return ""

    replace_paths(item.body, item.secret, remember)
