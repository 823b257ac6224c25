"""The controllers `tidegate reconcile` runs: the Kustomization pipeline over the live cluster.

`kustomization_controllers(runtime)` builds the pipeline's `Deps` from the runtime's clients:
Flux objects read from the informer cache (other kinds, such as postBuild ConfigMaps and
Secrets, from the apiserver), artifacts downloaded by `status.artifact.url` into the work
directory, the staged apply / prune / health engines on the live cluster, Kubernetes Events,
and the controller's flags as pipeline options. A GitRepository's new artifact revision
enqueues the Kustomizations that use it. This module only assembles; it holds no rule.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from core.cluster.fluxobjects import GIT_REPOSITORY, KUSTOMIZATION
from core.sources.artifact import artifact_policy
from reconciler.controllers import CachedReader, KustomizationController
from reconciler.events import EventRecorder
from reconciler.kustomization.artifact import ArtifactCache, HttpDownloader
from reconciler.kustomization.deps import Deps, Options
from reconciler.kustomization.engines import LiveEngines, PortReader
from reconciler.loop import Controller
from reconciler.runtime import Runtime
from reconciler.status_writer import write_status
from reconciler.triggers import source_revision_watch

__all__ = ["kustomization_controllers"]


def kustomization_controllers(runtime: Runtime) -> Sequence[Controller]:
    """The Kustomization controller of a runtime."""
    settings = runtime.settings
    work = settings.work_dir or Path(tempfile.gettempdir()) / "tidegate-reconciler"
    # The pipeline makes its build directories inside these; they must exist first.
    for directory in (work / "artifacts", work / "builds"):
        directory.mkdir(parents=True, exist_ok=True)

    def progress(obj: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        # `Reconciling` shows while a long run goes on, written like the final status.
        write_status(runtime.flux, obj, status)

    deps = Deps(
        objects=CachedReader(runtime.cache, PortReader(runtime.live)),
        artifacts=ArtifactCache(
            HttpDownloader(artifact_policy(allow_loopback=settings.artifact_allow_loopback)),
            work / "artifacts",
        ),
        engines=LiveEngines(runtime.live),
        events=EventRecorder(runtime.flux, instance=runtime.identity),
        options=Options(
            kustomize=settings.kustomize,
            work_root=work / "builds",
            default_service_account=settings.default_service_account or None,
            no_cross_namespace_refs=settings.no_cross_namespace_refs,
            requeue_dependency=settings.requeue_dependency,
            jitter_percentage=settings.interval_jitter_percentage,
        ),
        progress=progress,
    )
    controller = KustomizationController(deps, runtime.flux, runtime.metrics)
    return [
        Controller(
            KUSTOMIZATION,
            controller.reconcile,
            controller.deleted,
            watches=(source_revision_watch(GIT_REPOSITORY),),
        )
    ]
