"""The offline preview of a Kustomization's last applied revision -> the one being applied.

Two `lifecycle.Predictor`s run the shared engine and return the unit's plan; the preview a pull
request showed and this one are the same computation over the same two trees:

- `ArtifactPredictor`, the controller's, on by default: the trees are the source artifacts the
  controller itself reconciled, kept by `revisions.RevisionStore` (`record` is called with each
  unpacked artifact, and the Kustomization as it was applied). It previews the applied unit
  alone (`unitpreview.preview_unit`: its spec at each revision, rendered from its own
  `spec.path`), so it needs no cluster entry point and costs what the unit costs. A unit whose
  render needs objects of other units gets those of its cluster entry point's root unit, and
  failing that the whole entry point is previewed. The entry point is `--predict-cluster`, or
  else inferred: the `spec.path` of the Kustomization at the top of the tree, the one the
  controller applied from the same source without ownership labels naming another
  Kustomization (`flux bootstrap`'s `flux-system`, which owns itself). Without one, such a unit
  is not predicted;
- `RepositoryPredictor`: a local git repository holding both commits (a clone of the source) and
  one cluster entry point, previewed whole (`core.preview.run_preview`, changed-only).

They read files and render; they never touch a cluster. A revision that is not kept, a unit the
preview does not have, or a preview that fails gives None (nothing to compare).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.changes import UnitPlan
from core.errors import TidegateError
from core.host.paths import flux_path
from core.model import UnitKind, UnitRef
from core.preview import PreviewRequest, run_preview
from core.render.engine import RenderEngine
from core.repo.artifacts import Artifacts
from core.repo.git import Repository
from core.units import KustomizationSpec, parse_unit
from reconciler.notification.lifecycle import sha_of
from reconciler.notification.revisions import RevisionStore, source_key
from reconciler.notification.unitpreview import NeedsCluster, Revision, preview_unit
from reconciler.notification.unpacked import unpacked_artifacts

__all__ = ["ArtifactPredictor", "RepositoryPredictor"]

OWNER_NAME = "kustomize.toolkit.fluxcd.io/name"
OWNER_NAMESPACE = "kustomize.toolkit.fluxcd.io/namespace"
_REVISIONS_READ = 4
"""Kept revisions held read (listing and ignore-filtered views) between predictions."""
_SPECS_KEPT = 8
"""Specs kept per Kustomization, one per revision: as many as the store keeps trees."""


class RepositoryPredictor:
    """Previews over one repository and one cluster entry point (`clusters/production`)."""

    def __init__(self, repository: Path, cluster: str, engine: RenderEngine) -> None:
        self._repository = repository
        self._cluster = cluster
        self._engine = engine

    def __call__(self, unit: UnitRef, previous: str, revision: str) -> UnitPlan | None:
        """The unit's previewed changes from `previous` to `revision` (`main@sha1:<hex>`)."""
        base, head = sha_of(previous), sha_of(revision)
        if base is None or head is None:
            return None
        return _unit_plan(self._repository, base, head, self._cluster, self._engine, unit)


class ArtifactPredictor:
    """Previews each applied Kustomization over the source trees the controller kept."""

    def __init__(self, store: RevisionStore, engine: RenderEngine, *, cluster: str = "") -> None:
        """`cluster`, when given, previews units that need other units' objects (fallback)."""
        self._store = store
        self._cluster = cluster
        self._engine = engine
        self._sources: dict[UnitRef, str] = {}
        self._specs: dict[UnitRef, dict[str, KustomizationSpec]] = {}
        self._roots: dict[str, str] = {}
        self._unpacked: dict[tuple[str, str], Path] = {}
        """Revisions applying but not kept yet: (source, commit) -> their unpacked artifact."""
        self._lock = threading.Lock()
        # Read and filtered once per revision: a revision is the head of one prediction and the
        # base of the next, so its tree listing and ignore verdicts serve both (and a new head
        # matches only the paths its base did not hold).
        self._repo: Repository | None = None
        self._revisions: dict[str, Artifacts] = {}
        self._reading = threading.Lock()

    def unpacked(self, kustomization: Mapping[str, Any], revision: str, tree: Path) -> None:
        """Note the Kustomization as it applies `revision`, whose unpacked artifact is `tree`.

        Starts no process: until `record` has kept it, a prediction of `revision` reads its
        files from `tree` itself.
        """
        commit = self._note(kustomization, revision)
        if commit is not None:
            with self._lock:
                self._unpacked[(source_key(kustomization), commit)] = tree
                while len(self._unpacked) > _SPECS_KEPT:
                    del self._unpacked[next(iter(self._unpacked))]

    def record(self, kustomization: Mapping[str, Any], revision: str, tree: Path) -> None:
        """Keep `tree`, the unpacked artifact of `revision` the Kustomization is reconciling."""
        commit = self._note(kustomization, revision)
        if commit is None:
            return
        source = source_key(kustomization)
        # A revision kept already (the periodic reconcile) is read when a prediction needs it.
        new = self._store.ref(source, commit) is None
        kept = self._store.record(source, commit, tree)
        with self._lock:
            self._unpacked.pop((source, commit), None)
        if kept and new:
            self._read(source, commit, kustomization)

    def _note(self, kustomization: Mapping[str, Any], revision: str) -> str | None:
        """Remember the unit's source and its spec at `revision`; the revision's commit."""
        commit = sha_of(revision)
        meta = kustomization.get("metadata") or {}
        unit = UnitRef(
            UnitKind.KUSTOMIZATION, str(meta.get("namespace", "")), str(meta.get("name", ""))
        )
        source = source_key(kustomization)
        spec = _spec_of(kustomization)
        with self._lock:
            self._sources[unit] = source
            if spec is not None and _is_root(kustomization):
                self._roots[source] = flux_path(spec.path)
            if commit is not None and spec is not None:
                specs = self._specs.setdefault(unit, {})
                specs.pop(commit, None)
                specs[commit] = spec
                while len(specs) > _SPECS_KEPT:
                    del specs[next(iter(specs))]
        return commit

    def _read(self, source: str, commit: str, kustomization: Mapping[str, Any]) -> None:
        """List and filter a revision just kept, with the help of the one applied before it.

        Done as it is kept, on the predictions' worker, so that a prediction finds both of its
        sides read, and a new head reuses its base's ignore verdicts.
        """
        ref = self._store.ref(source, commit)
        status = kustomization.get("status")
        last = status.get("lastAppliedRevision") if isinstance(status, Mapping) else None
        before = sha_of(last) if isinstance(last, str) else None
        base = self._store.ref(source, before) if before is not None else None
        if ref is None:
            return
        with self._reading:
            like = self._revisions.get(base) if base is not None else None
        try:
            self._artifacts(ref, like=like).repository()
        except TidegateError:
            return  # read again, and fail there, when a prediction needs it

    def __call__(self, unit: UnitRef, previous: str, revision: str) -> UnitPlan | None:
        """The unit's previewed changes from `previous` to `revision`, when both are kept."""
        base, head = sha_of(previous), sha_of(revision)
        with self._lock:
            source = self._sources.get(unit)
            specs = dict(self._specs.get(unit, {}))
            root = self._cluster or self._roots.get(source or "", "")
        if base is None or head is None or source is None:
            return None
        base_ref, head_ref = self._store.ref(source, base), self._store.ref(source, head)
        with self._lock:
            unpacked = self._unpacked.get((source, head)) if head_ref is None else None
        if base_ref is None or (head_ref is None and unpacked is None):
            return None
        head_spec = specs.get(head)
        if head_spec is not None:
            try:
                # The base as it was applied; after a restart, the spec applied now stands for it.
                before = Revision(self._artifacts(base_ref), specs.get(base, head_spec))
                # A new head reuses the base's ignore verdicts for the paths they share.
                if head_ref is not None:
                    files = self._artifacts(head_ref, like=before.artifacts)
                elif unpacked is not None:
                    # Not kept yet: read from the artifact itself, the same files by the same ids.
                    files = unpacked_artifacts(unpacked, revision, like=before.artifacts)
                else:
                    return None
                after = Revision(files, head_spec)
                planned = preview_unit(before, after, self._engine.settings(), root=root)
            except (TidegateError, OSError):
                return None
            if not isinstance(planned, NeedsCluster):
                return planned if planned.error is None else None
        if not root:
            return None
        if head_ref is None and unpacked is not None and self._store.record(source, head, unpacked):
            # A whole-cluster preview reads both sides from the store: keep the head first.
            head_ref = self._store.ref(source, head)
        if head_ref is None:
            return None
        return _unit_plan(self._store.path, base_ref, head_ref, root, self._engine, unit)

    def _artifacts(self, ref: str, *, like: Artifacts | None = None) -> Artifacts:
        """The kept revision's files, shared by the predictions that read it."""
        with self._reading:
            found = self._revisions.get(ref)
            if found is None:
                if self._repo is None:
                    self._repo = Repository(self._store.path)
                found = Artifacts(self._repo.tree(ref), self._repo.read_blob, like=like)
                self._revisions[ref] = found
                while len(self._revisions) > _REVISIONS_READ:
                    del self._revisions[next(iter(self._revisions))]
            return found


def _is_root(kustomization: Mapping[str, Any]) -> bool:
    """Whether no other Kustomization owns this one: it is the top of its cluster's tree."""
    meta = kustomization.get("metadata") or {}
    labels = meta.get("labels") if isinstance(meta, Mapping) else None
    labels = labels if isinstance(labels, Mapping) else {}
    owner = labels.get(OWNER_NAME), labels.get(OWNER_NAMESPACE)
    return owner == (None, None) or owner == (meta.get("name"), meta.get("namespace"))


def _spec_of(kustomization: Mapping[str, Any]) -> KustomizationSpec | None:
    """The Kustomization's rendering spec, or None when it cannot be parsed (then no preview)."""
    try:
        spec = parse_unit(kustomization)
    except TidegateError:
        return None
    return spec if isinstance(spec, KustomizationSpec) else None


def _unit_plan(
    repository: Path, base: str, head: str, cluster: str, engine: RenderEngine, unit: UnitRef
) -> UnitPlan | None:
    # Only what the change can affect is rendered; the rest is proven unchanged from the files
    # the builds read (`core.render.affected`), with the same plan a full render gives.
    request = PreviewRequest(base=base, head=head, clusters=(cluster,), changed_only=True)
    try:
        with Repository(repository) as repo:
            # Fresh settings per preview: the cache stays warm, nothing else carries over.
            preview = run_preview(repo, request, engine.settings())
    except TidegateError:
        return None
    for plan_cluster in preview.clusters:
        for plan in plan_cluster.units:
            if plan.unit == unit:
                return plan
    return None
