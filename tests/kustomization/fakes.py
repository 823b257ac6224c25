"""Fakes of the pipeline's own seams (`reconciler.kustomization.deps`) for unit tests.

They stand for the cluster, the artifact server and the event recorder; the pipeline, the build
(real kustomize) and everything between are the real code.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.model import group_of
from core.sources.artifact import ArtifactError
from reconciler.health import HealthReport, ObjectRef
from reconciler.kustomization.artifact import ArtifactCache
from reconciler.kustomization.deps import Applied, Deps, Options, Owner, Pruned
from reconciler.kustomization.model import ChangeEntry, InventoryEntry

DIGEST = "sha256:" + "a" * 64
REVISION = "main@sha1:" + "1" * 40


class Objects:
    """An in-memory object store keyed by (kind, namespace, name)."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.reads: list[tuple[str, str, str]] = []

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        self.items[(obj["kind"], meta.get("namespace", ""), meta["name"])] = obj
        return obj

    def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> Mapping[str, Any] | None:
        self.reads.append((kind, namespace, name))
        return self.items.get((kind, namespace, name))


class Fetcher:
    """Serves directories as artifacts by URL; counts fetches."""

    def __init__(self) -> None:
        self.trees: dict[str, Path] = {}
        self.fetches: list[str] = []
        self.missing: set[str] = set()

    def download(self, url: str, digest: str, target: Path, owner: str) -> None:
        self.fetches.append(url)
        if url in self.missing:
            raise ArtifactError(url, "HTTP 404", missing=True)
        shutil.copytree(self.trees[url], target)


def entry_of(body: Mapping[str, Any]) -> InventoryEntry:
    meta = body["metadata"]
    group = group_of(body["apiVersion"])
    version = body["apiVersion"].rpartition("/")[2]
    return InventoryEntry(
        f"{meta.get('namespace', '')}_{meta['name']}_{group}_{body['kind']}", version
    )


def subject_of(body: Mapping[str, Any]) -> str:
    meta = body["metadata"]
    ns = meta.get("namespace")
    return f"{body['kind']}/{ns}/{meta['name']}" if ns else f"{body['kind']}/{meta['name']}"


@dataclass
class Engines:
    """Records what the pipeline asks of the cluster and answers as told."""

    applied: list[list[dict[str, Any]]] = field(default_factory=list)
    pruned: list[list[InventoryEntry]] = field(default_factory=list)
    waited: list[list[ObjectRef]] = field(default_factory=list)
    identities: list[str | None] = field(default_factory=list)
    finalized: list[tuple[list[InventoryEntry], str, bool, bool, float]] = field(
        default_factory=list
    )
    apply_error: str | None = None
    prune_error: str | None = None
    health_error: str | None = None
    live: set[str] = field(default_factory=set)

    def apply(
        self,
        objects: Sequence[Any],
        *,
        owner: Owner,
        service_account: str | None,
        force: bool,
        ignore: Sequence[Any] = (),
    ) -> Applied:
        bodies = [obj.body for obj in objects]
        self.applied.append(bodies)
        self.identities.append(service_account)
        if self.apply_error:
            return Applied((), (), self.apply_error)
        changes = []
        for body in bodies:
            subject = subject_of(body)
            changes.append(ChangeEntry(subject, "unchanged" if subject in self.live else "created"))
            self.live.add(subject)
        return Applied(tuple(changes), tuple(entry_of(body) for body in bodies))

    def prune(
        self,
        stale: Sequence[InventoryEntry],
        *,
        applied: Applied,
        owner: Owner,
        service_account: str | None,
    ) -> Pruned:
        self.pruned.append(list(stale))
        if self.prune_error:
            return Pruned((), tuple(stale), self.prune_error)
        return Pruned(tuple(ChangeEntry(e.id, "deleted") for e in stale))

    def finalize(
        self,
        inventory: Sequence[InventoryEntry],
        *,
        owner: Owner,
        service_account: str | None,
        policy: str,
        prune_enabled: bool,
        suspended: bool,
        timeout: float,
    ) -> Pruned:
        self.finalized.append((list(inventory), policy, prune_enabled, suspended, timeout))
        if self.prune_error:
            return Pruned((), tuple(inventory), self.prune_error)
        return Pruned(tuple(ChangeEntry(e.id, "deleted") for e in inventory))

    def wait(
        self,
        targets: Sequence[ObjectRef],
        *,
        rules: Any,
        timeout: dt.timedelta,
        owner: Owner,
        service_account: str | None,
        gone_is_current: frozenset[ObjectRef] = frozenset(),
    ) -> HealthReport:
        self.waited.append(list(targets))
        elapsed = dt.timedelta(seconds=1.5)
        if self.health_error:
            return HealthReport(False, elapsed, (), self.health_error)
        return HealthReport(True, elapsed, ())


@dataclass
class Events:
    """Records events with the metadata keys Flux's recorder derives from them."""

    recorded: list[dict[str, Any]] = field(default_factory=list)

    def record(
        self,
        obj: Mapping[str, Any],
        severity: str,
        message: str,
        *,
        revision: str = "",
        origin_revision: str = "",
        commit_status: bool = False,
        reason: str = "",
    ) -> object:
        metadata = {}
        if revision:
            metadata["kustomize.toolkit.fluxcd.io/revision"] = revision
        if origin_revision:
            metadata["kustomize.toolkit.fluxcd.io/originRevision"] = origin_revision
        if commit_status:
            metadata["kustomize.toolkit.fluxcd.io/commit_status"] = "update"
        self.recorded.append(
            {"severity": severity, "reason": reason, "message": message, "metadata": metadata}
        )
        return None


class Clock:
    """A clock that moves only when told; jitter fixed at the middle (no spread)."""

    def __init__(self) -> None:
        self.time = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
        self.ticks = 100.0
        self.rand = 0.5

    def now(self) -> dt.datetime:
        return self.time

    def monotonic(self) -> float:
        self.ticks += 0.25
        return self.ticks

    def random(self) -> float:
        return self.rand


@dataclass
class World:
    objects: Objects
    fetcher: Fetcher
    engines: Engines
    events: Events
    clock: Clock
    deps: Deps


def world(tmp: Path, kustomize: Path, **options: Any) -> World:
    objects, fetcher, engines, events, clock = Objects(), Fetcher(), Engines(), Events(), Clock()
    deps = Deps(
        objects=objects,
        artifacts=ArtifactCache(fetcher, tmp / "artifacts"),
        engines=engines,
        events=events,
        options=Options(kustomize=kustomize, work_root=tmp, **options),
        clock=clock,
    )
    return World(objects, fetcher, engines, events, clock, deps)


def git_repository(
    name: str = "flux-system",
    namespace: str = "flux-system",
    *,
    url: str = "http://artifacts.test/repo.tar.gz",
    revision: str = REVISION,
    digest: str = DIGEST,
    artifact: bool = True,
) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if artifact:
        status["artifact"] = {"url": url, "revision": revision, "digest": digest}
    return {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"url": "http://git.test/repo", "interval": "1m"},
        "status": status,
    }


def kustomization(
    name: str = "apps",
    namespace: str = "flux-system",
    *,
    generation: int = 1,
    finalizer: bool = True,
    status: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "generation": generation,
        "uid": f"uid-{name}",
    }
    if finalizer:
        meta["finalizers"] = ["finalizers.fluxcd.io"]
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": meta,
        "spec": {
            "interval": "10m",
            "prune": True,
            "path": "./apps",
            "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
            **spec,
        },
        "status": status or {},
    }


def ready(obj: dict[str, Any], revision: str = REVISION) -> dict[str, Any]:
    """`obj` as a Kustomization that was reconciled to Ready at `revision`."""
    obj["status"] = {
        "observedGeneration": obj["metadata"]["generation"],
        "lastAppliedRevision": revision,
        "conditions": [{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded"}],
    }
    return obj
