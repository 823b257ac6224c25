"""The controllers `tidegate reconcile` runs: GitRepositories and the Kustomization pipeline.

`controllers(runtime)` assembles both over the runtime's clients:

- GitRepository: the git source service (`reconciler.source.service`), its artifact server
  bound on `--storage-addr` and advertised at `--storage-adv-addr`, artifacts kept under
  `--storage-path`; the server stops with the process; its events (NewArtifact, failures) are
  Kubernetes Events reported by `source-controller` and go to the notifier (Alerts).
- Kustomization: the pipeline's `Deps` with Flux objects read from the informer cache (other
  kinds, such as postBuild ConfigMaps and Secrets, from the apiserver), artifacts downloaded by
  `status.artifact.url` into the work directory, the staged apply / prune / health engines on
  the live cluster, Kubernetes Events, the deploy reporter (Flux's Alerts and Providers, commit
  statuses with pending; loopback receivers only with `--notification-allow-loopback`;
  predicted vs applied unless `--predict=false`, from the artifacts the controller keeps) and
  the controller's flags as pipeline options. A
  GitRepository's new artifact revision enqueues the Kustomizations that use it.

This module only assembles; it holds no rule.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from core.cluster.fluxobjects import GIT_REPOSITORY, KUSTOMIZATION
from core.fetch import FetchPolicy
from core.render.cache import RenderCache
from core.render.engine import RenderEngine
from core.render.unit import RenderOptions
from core.sources.artifact import artifact_policy
from reconciler.controllers import CachedReader, KustomizationController
from reconciler.events import SOURCE_CONTROLLER, EventRecorder
from reconciler.kustomization.artifact import ArtifactCache, HttpDownloader, TreePins
from reconciler.kustomization.deps import Deps, Options
from reconciler.kustomization.engines import LiveEngines, PortReader
from reconciler.loop import Controller
from reconciler.notification.assembly import DEFAULT_POLICY, DeployReporting, deploy_reporting
from reconciler.notification.lifecycle import Predictor
from reconciler.notification.predictor import ArtifactPredictor, RepositoryPredictor
from reconciler.notification.revisions import RevisionStore
from reconciler.notification.store import ClusterStore
from reconciler.runtime import Runtime, Settings
from reconciler.source.service import GitSourceService, SourceSettings
from reconciler.triggers import source_revision_watch

__all__ = [
    "controllers",
    "git_repository_controller",
    "kustomization_controller",
    "notification_policy",
    "notifications",
    "predictor",
]


def controllers(runtime: Runtime) -> Sequence[Controller]:
    """Every controller of the process, sharing one notification path."""
    # The deploy reporter holds each new revision's unpacked artifact until its preview ends;
    # the artifact cache removes no tree held.
    pins = TreePins()
    reporting = notifications(runtime, pins)
    return [
        git_repository_controller(runtime, reporting),
        kustomization_controller(runtime, reporting, pins),
    ]


def notifications(runtime: Runtime, trees: TreePins | None = None) -> DeployReporting:
    """The started notifier and deploy reporter (stopped with the process)."""
    settings = runtime.settings
    # Events go to Kubernetes Events and, through the deploy reporter, to the Alerts' Providers
    # (commit statuses with pending, predicted vs applied when a predictor is configured).
    predicting = predictor(settings, runtime.work_dir)
    reporting = deploy_reporting(
        ClusterStore(runtime.live, runtime.flux),
        registry=runtime.metrics.registry,
        instance=runtime.identity,
        policy=notification_policy(settings),
        predictor=predicting,
        recorder=predicting if isinstance(predicting, ArtifactPredictor) else None,
        trees=trees,
    )
    runtime.on_stop(reporting.dispatcher.stop)
    # Cleanups run last first: the statuses held back for their previews are queued before
    # the queue stops.
    runtime.on_stop(reporting.reporter.close)
    return reporting


def git_repository_controller(runtime: Runtime, reporting: DeployReporting) -> Controller:
    """The GitRepository controller; starts its artifact server.

    Its events are Kubernetes Events and go to the notifier, as source-controller's go to
    notification-controller (Alerts on GitRepository event sources).
    """
    settings = runtime.settings
    host, port = settings.storage_addr
    service = GitSourceService(
        runtime.flux,
        SourceSettings(
            storage_dir=settings.storage_path or runtime.work_dir / "storage",
            cache_dir=runtime.work_dir / "git",
            bind_host=host,
            port=port,
            advertised_url=_advertised(settings.storage_adv_addr),
        ),
        events=EventRecorder(
            runtime.flux,
            [reporting.reporter.forward],
            controller=SOURCE_CONTROLLER,
            instance=runtime.identity,
        ),
    )
    service.start()
    runtime.on_stop(service.stop)
    # The source reconciler returns the bare interval: the loop spreads it by the jitter.
    return Controller(GIT_REPOSITORY, service.reconcile, service.deleted)


def kustomization_controller(
    runtime: Runtime, reporting: DeployReporting, pins: TreePins | None = None
) -> Controller:
    """The Kustomization controller."""
    settings = runtime.settings
    work = runtime.work_dir
    # The pipeline makes its build directories inside these; they must exist first.
    for directory in (work / "artifacts", work / "builds"):
        directory.mkdir(parents=True, exist_ok=True)
    deps = Deps(
        objects=CachedReader(runtime.cache, PortReader(runtime.live)),
        artifacts=ArtifactCache(
            HttpDownloader(artifact_policy(allow_loopback=settings.artifact_allow_loopback)),
            work / "artifacts",
            pins=pins,
        ),
        engines=LiveEngines(runtime.live, stop=runtime.operations.stop),
        events=EventRecorder(runtime.flux, [reporting.reporter.forward], instance=runtime.identity),
        observer=reporting.reporter,
        options=Options(
            kustomize=settings.kustomize,
            work_root=work / "builds",
            default_service_account=settings.default_service_account or None,
            no_cross_namespace_refs=settings.no_cross_namespace_refs,
            requeue_dependency=settings.requeue_dependency,
            jitter_percentage=settings.interval_jitter_percentage,
        ),
    )
    controller = KustomizationController(deps, runtime.flux, runtime.metrics)
    return Controller(
        KUSTOMIZATION,
        controller.reconcile,
        controller.deleted,
        watches=(source_revision_watch(GIT_REPOSITORY),),
        # The pipeline's requeue delays already carry Flux's jitter.
        jitter=False,
    )


def notification_policy(settings: Settings) -> FetchPolicy:
    """Where notifications may go: public hosts, and loopback only when the flag allows it."""
    if settings.notification_allow_loopback:
        return dataclasses.replace(DEFAULT_POLICY, allow_loopback=True)
    return DEFAULT_POLICY


def predictor(settings: Settings, work: Path) -> Predictor | None:
    """The predicted-vs-applied preview: on unless `--predict=false`.

    Each applied Kustomization is previewed alone from the artifacts the controller reconciles,
    kept under the work directory (`ArtifactPredictor`); `--predict-cluster` names the entry point
    previewed whole for units that need other units' objects. Over a local clone with
    `--predict-repository` (development), which needs `--predict-cluster`.
    """
    if not settings.predict:
        return None
    options = RenderOptions(kustomize=settings.kustomize, helm=settings.helm or Path("helm"))
    render = RenderEngine(options, RenderCache(work / "predictions"))
    if settings.predict_repository is not None:
        return RepositoryPredictor(settings.predict_repository, settings.predict_cluster, render)
    return ArtifactPredictor(
        RevisionStore(work / "revisions"), render, cluster=settings.predict_cluster
    )


def _advertised(address: str) -> str:
    """`--storage-adv-addr` (host:port, as Flux takes it) as the artifacts' base URL."""
    if not address or "://" in address:
        return address
    return f"http://{address}"
