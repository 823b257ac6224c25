"""Benchmark what predicted vs applied adds to the reconcile of a one-app change, on a cluster.

The synthetic fleet (`bench.fleet`, 3 clusters x 150 apps) is generated; the one-app change
(`change/image-tag`) edits one staging app. On the local control plane, that app's Kustomization
(as the fleet defines it, without its `dependsOn`) is reconciled by the real pipeline
(`reconciler.pipeline`) from served artifacts of the base and the head revision, as
source-controller would serve them. Each round applies base (untimed), then head, twice: once
without a predictor, once with the controller's own (`ArtifactPredictor` over the kept
artifacts, previewing the applied Kustomization alone, `clusters/staging` for its
`cluster-vars`, warm render cache). For the run with the predictor the controller's kept
revisions start empty each round, so the base is kept and read by its untimed apply and the head
is a new revision, predicted from its unpacked artifact while it applies and kept (imported into
the store) after its preview on the predictions' worker, as a pushed commit is; the round waits
for that before going on, and reports its duration apart (`keep_revision_after_wall_s_median`).
It reports:

- the reconcile of the change without a predictor (wall and CPU of the whole pipeline run, CPU
  being user and system time of the process and its finished children, such as kustomize);
- the same reconcile with the predictor;
- what the predictor adds: the difference of the two medians, and its share of the reconcile
  without it (the target is under 10%); also the time the pipeline spends blocked in the
  observer (`applying`, starting the preview; `applied`, noting the change set; and `forward`,
  the final event, held back until the preview ends), the preview's own duration and CPU (it
  runs beside the pipeline, on the predictions' worker), and the time from the start of the
  reconcile until the final event is sent with the predicted-vs-applied verdict in its status
  description (the round fails when that description has no verdict).

The render cache is warmed first (a prediction of the same change), as it is after the pull
request's own preview. Run from the repository root:
`.venv/bin/python -m bench.predicted_reconcile [--rounds 5] [--profile]`. It prints JSON;
nothing asserts a target. `--profile` profiles the timed predictions (cProfile, on the
predictions' worker) and prints the costliest functions to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import functools
import hashlib
import json
import os
import pstats
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s

from bench import fleet as fleetgen
from bench.preview_bench import serve_charts
from bench.timing import cpu_seconds
from core.changes import UnitPlan
from core.cluster.fluxobjects import LiveCluster as FluxObjects
from core.cluster.live import LiveCluster, connect
from core.fetch.policy import FetchPolicy
from core.model import UnitKind, UnitRef
from core.render.cache import RenderCache
from core.render.engine import RenderEngine
from core.render.unit import RenderOptions
from core.sources.artifact import artifact_policy
from devenv import toolchain
from devenv.controlplane import ControlPlane
from devenv.ports import free_port
from reconciler import crds
from reconciler.events import EventRecorder, Subscriber
from reconciler.kustomization.artifact import ArtifactCache, HttpDownloader
from reconciler.kustomization.deps import Deps, Options, ReconcileObserver
from reconciler.kustomization.engines import LiveEngines, PortReader
from reconciler.kustomization.model import ChangeEntry
from reconciler.notification.commit_status import DESCRIPTION_KEY
from reconciler.notification.event import Event
from reconciler.notification.lifecycle import DeployReporter
from reconciler.notification.predictor import ArtifactPredictor
from reconciler.notification.revisions import RevisionStore
from reconciler.pipeline import reconcile_kustomization
from reconciler.source.archive import write_archive
from reconciler.status_writer import write_status

__all__ = ["main"]

FLUX = "flux-system"
CLUSTER = "clusters/staging"  # the one-app change edits a staging overlay
GROUP, VERSION = "kustomize.toolkit.fluxcd.io", "v1"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


@contextlib.contextmanager
def _served(root: Path) -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


class _Timed:
    """The observer, with the seconds the pipeline spent in it and in the preview itself."""

    def __init__(self, inner: DeployReporter) -> None:
        self.inner = inner
        self.in_observer = 0.0

    def forward(self, event: Event) -> None:
        started = time.perf_counter()
        self.inner.forward(event)
        self.in_observer += time.perf_counter() - started

    def applying(self, obj: Mapping[str, Any], revision: str, tree: Path | None = None) -> None:
        started = time.perf_counter()
        self.inner.applying(obj, revision, tree)
        self.in_observer += time.perf_counter() - started

    def applied(
        self,
        obj: Mapping[str, Any],
        revision: str,
        *,
        changes: Sequence[ChangeEntry],
        seconds: float,
        healthy: bool,
    ) -> None:
        started = time.perf_counter()
        self.inner.applied(obj, revision, changes=changes, seconds=seconds, healthy=healthy)
        self.in_observer += time.perf_counter() - started

    def failed(self, obj: Mapping[str, Any], revision: str, reason: str, message: str) -> None:
        self.inner.failed(obj, revision, reason, message)


class _TimedPredictor:
    """The predictor, recording how long each preview took and what it said."""

    def __init__(self, inner: ArtifactPredictor) -> None:
        self.inner = inner
        self.profile: cProfile.Profile | None = None
        self.seconds: list[float] = []
        self.cpu: list[float] = []
        """CPU seconds of each preview's thread (the render cache is warm: no tool runs)."""
        self.plans: list[UnitPlan | None] = []
        self.keeping: list[float] = []
        """Seconds each revision took to keep, on the predictions' worker after its preview."""
        self.kept = threading.Event()

    def unpacked(self, kustomization: Mapping[str, Any], revision: str, tree: Path) -> None:
        self.inner.unpacked(kustomization, revision, tree)

    def record(self, kustomization: Mapping[str, Any], revision: str, tree: Path) -> None:
        started = time.perf_counter()
        try:
            self.inner.record(kustomization, revision, tree)
        finally:
            self.keeping.append(time.perf_counter() - started)
            self.kept.set()

    def __call__(self, unit: UnitRef, previous: str, revision: str) -> UnitPlan | None:
        started, cpu = time.perf_counter(), time.thread_time()
        if self.profile is not None:
            plan = self.profile.runcall(self.inner, unit, previous, revision)
        else:
            plan = self.inner(unit, previous, revision)
        self.seconds.append(time.perf_counter() - started)
        self.cpu.append(time.thread_time() - cpu)
        self.plans.append(plan)
        return plan


class _Bench:
    """The control plane side: the source's artifacts, the Kustomization, one pipeline run."""

    def __init__(self, kube_client: Any, cluster: LiveCluster, work: Path, port: int) -> None:
        self.kube = kube_client
        self.custom = k8s.CustomObjectsApi(kube_client)
        self.flux = FluxObjects(kube_client)
        self.cluster = cluster
        self.work = work
        self.port = port
        self.artifacts: dict[str, dict[str, Any]] = {}

    def publish(self, repo: Path, sha: str, served: Path) -> None:
        path = served / f"{sha}.tar.gz"
        with path.open("wb") as out:
            write_archive(repo, sha, out, spec_ignore=None)
        data = path.read_bytes()
        self.artifacts[sha] = {
            "path": f"gitrepository/{FLUX}/{FLUX}/{sha}.tar.gz",
            "url": f"http://127.0.0.1:{self.port}/{path.name}",
            "revision": f"main@sha1:{sha}",
            "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
            "lastUpdateTime": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "size": len(data),
        }

    def point_source_at(self, sha: str) -> None:
        artifact = self.artifacts[sha]
        now = artifact["lastUpdateTime"]
        status = {
            "observedGeneration": 1,
            "artifact": artifact,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Succeeded",
                    "message": f"stored artifact for revision '{artifact['revision']}'",
                    "lastTransitionTime": now,
                    "observedGeneration": 1,
                }
            ],
        }
        self.custom.patch_namespaced_custom_object_status(
            "source.toolkit.fluxcd.io", "v1", FLUX, "gitrepositories", FLUX, {"status": status}
        )

    def deps(self, observer: ReconcileObserver | None, forward: Sequence[Subscriber] = ()) -> Deps:
        return Deps(
            objects=PortReader(self.cluster),
            artifacts=ArtifactCache(
                HttpDownloader(artifact_policy(allow_loopback=True)), self.work / "artifacts"
            ),
            engines=LiveEngines(self.cluster, health_interval=1.0),
            events=EventRecorder(self.flux, list(forward), instance="bench-0"),
            options=Options(kustomize=fleetgen.pinned_tool("kustomize"), work_root=self.work),
            observer=observer,
        )

    def reconcile(self, name: str, deps: Deps) -> tuple[float, float]:
        obj = self.custom.get_namespaced_custom_object(GROUP, VERSION, FLUX, "kustomizations", name)
        started, cpu = time.perf_counter(), cpu_seconds()
        outcome = reconcile_kustomization(obj, deps)
        timed = (time.perf_counter() - started, cpu_seconds() - cpu)
        if outcome.status is not None:
            write_status(self.flux, obj, outcome.status)
        if not outcome.ready:
            raise SystemExit(f"the reconcile of {name} failed: {outcome.reason}")
        return timed


def _setup(bench: _Bench, fleet: fleetgen.Fleet, app: str) -> None:
    core = k8s.CoreV1Api(bench.kube)
    for namespace in (FLUX, "platform", *fleetgen.TEAMS):
        core.create_namespace({"metadata": {"name": namespace}})
    extensions = k8s.ApiextensionsV1Api(bench.kube)
    for crd in crds.documents():
        extensions.create_custom_resource_definition(crd)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        established = [
            any(c.type == "Established" and c.status == "True" for c in (d.status.conditions or []))
            for d in extensions.list_custom_resource_definition().items
        ]
        if established and all(established):
            break
        time.sleep(0.5)
    base = fleet.repo / CLUSTER
    for document in yaml.safe_load_all((base / "cluster-vars.yaml").read_text()):
        core.create_namespaced_config_map(FLUX, document)
    bench.custom.create_namespaced_custom_object(
        "source.toolkit.fluxcd.io",
        "v1",
        FLUX,
        "gitrepositories",
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": FLUX, "namespace": FLUX},
            "spec": {"url": "https://git.invalid/fleet.git", "interval": "60m", "suspend": True},
        },
    )
    kustomization = yaml.safe_load((base / "apps" / f"{app}.yaml").read_text())
    kustomization["spec"].pop("dependsOn", None)  # its dependency is not part of the bench
    # As the cluster's `apps` Kustomization applies it: owned, so never taken for the root.
    kustomization["metadata"]["labels"] = {
        f"{GROUP}/name": "apps",
        f"{GROUP}/namespace": FLUX,
    }
    bench.custom.create_namespaced_custom_object(
        GROUP, VERSION, FLUX, "kustomizations", kustomization
    )


def _median(samples: list[float]) -> float:
    return round(statistics.median(samples), 4)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.predicted_reconcile")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="profile the timed predictions")
    args = parser.parse_args(argv)
    load_at_start = round(os.getloadavg()[0], 1)
    with tempfile.TemporaryDirectory(prefix="tidegate-predicted-reconcile-") as scratch:
        work = Path(scratch)
        chart_port = free_port()
        print("generating the fleet", file=sys.stderr)
        fleet = fleetgen.generate(
            work / "gen",
            chart_url=f"http://127.0.0.1:{chart_port}",
            helm=fleetgen.pinned_tool("helm"),
        )
        change = next(c for c in fleet.changes if c.name == "one-file")
        base_sha, head_sha = fleet.base_sha, fleet.change_shas[change.name]
        app = change.head_units[0].rsplit("/", 1)[1]
        served = work / "served"
        served.mkdir()
        settings = RenderEngine(
            RenderOptions(
                kustomize=fleetgen.pinned_tool("kustomize"),
                helm=fleetgen.pinned_tool("helm"),
                jobs=args.jobs,
                fetch_policy=FetchPolicy(allowed_hosts=None, allow_loopback=True),
            ),
            RenderCache(toolchain.cache_root() / "bench-predicted-reconcile"),
        )
        print("starting the control plane", file=sys.stderr)
        with (
            serve_charts(fleet.charts, chart_port),
            _served(served) as port,
            ControlPlane(work / "controlplane") as plane,
        ):
            kube = connect(plane.admin_kubeconfig)
            cluster = LiveCluster(kube)
            bench = _Bench(kube, cluster, work, port)
            bench.publish(fleet.repo, base_sha, served)
            bench.publish(fleet.repo, head_sha, served)
            _setup(bench, fleet, app)
            report = _rounds(
                bench, app, base_sha, head_sha, settings, work, args.rounds, profile=args.profile
            )
            cluster.close()
    report["load_average_1m_at_start"] = load_at_start
    report["load_average_1m"] = round(os.getloadavg()[0], 1)
    print(json.dumps(report, indent=2))
    return 0


_SETTLE = 0.5
"""Seconds between the base's reconcile (and, with the predictor, its keeping) and the timed
head's, the same for both: a head reconciled right after its base's apply meets the apiserver
still busy with it and is slower, which would credit or charge the predictor for the gap."""


def _rounds(
    bench: _Bench,
    app: str,
    base_sha: str,
    head_sha: str,
    settings: RenderEngine,
    work: Path,
    rounds: int,
    *,
    profile: bool = False,
) -> dict[str, Any]:
    plain = bench.deps(None)

    def fresh(index: int) -> ArtifactPredictor:
        # As `--predict-cluster clusters/staging`: the bench applies no root Kustomization.
        store = RevisionStore(work / f"revisions-{index}")
        return ArtifactPredictor(store, settings, cluster=CLUSTER)

    predictor = _TimedPredictor(fresh(0))
    verdicts: list[tuple[float, str]] = []
    """When each final event was sent, and its status description."""
    sent = threading.Event()

    def notify(event: Event, **_: Any) -> None:
        description = event.metadata.get(f"{GROUP}/{DESCRIPTION_KEY}")
        if description is not None:
            verdicts.append((time.perf_counter(), description))
            sent.set()

    reporter = DeployReporter(notify, cluster="staging", predictor=predictor, recorder=predictor)
    observer = _Timed(reporter)
    predicting = bench.deps(observer, [observer.forward])
    unit = UnitRef(UnitKind.KUSTOMIZATION, FLUX, app)

    def change(deps: Deps) -> tuple[float, float]:
        bench.point_source_at(base_sha)
        bench.reconcile(app, deps)
        bench.point_source_at(head_sha)
        time.sleep(_SETTLE)
        return bench.reconcile(app, deps)

    print("first apply, and a prediction to warm the render cache", file=sys.stderr)
    change(predicting)
    reporter.drain()
    warmup = predictor.seconds[-1] if predictor.seconds else None
    if profile:
        predictor.profile = cProfile.Profile()
    without: list[tuple[float, float]] = []
    with_: list[tuple[float, float]] = []
    added: list[float] = []
    previews: list[float] = []
    kept: list[float] = []
    preview_cpu: list[float] = []
    to_verdict: list[float] = []
    for index in range(rounds):
        print(f"round {index + 1} of {rounds}", file=sys.stderr)
        without.append(change(plain))
        # A controller that has kept and read the base only: the head is a new revision to it,
        # predicted from its unpacked artifact while it applies and kept after, as a pushed
        # commit would be.
        predictor.inner = fresh(index + 1)
        bench.point_source_at(base_sha)
        predictor.kept.clear()
        bench.reconcile(app, predicting)
        predictor.kept.wait(600)
        observer.in_observer = 0.0
        predictor.kept.clear()
        bench.point_source_at(head_sha)
        sent.clear()
        time.sleep(_SETTLE)
        started = time.perf_counter()
        with_.append(bench.reconcile(app, predicting))
        # The preview, the final event it holds back and keeping the head run after the
        # reconcile returned; let them finish before the next round's reconcile without a
        # predictor, which they would otherwise slow down.
        if not sent.wait(600):
            raise SystemExit("the final event of the head was never sent")
        predictor.kept.wait(600)
        sent_at, description = verdicts[-1]
        if "previewed" not in description and "difference" not in description:
            raise SystemExit(
                f"the head's status has no predicted-vs-applied verdict: {description}"
            )
        to_verdict.append(sent_at - started)
        added.append(observer.in_observer)
        previews.append(predictor.seconds[-1])
        preview_cpu.append(predictor.cpu[-1])
        kept.append(predictor.keeping[-1])
    reporter.close()
    if predictor.profile is not None:
        stats = pstats.Stats(predictor.profile, stream=sys.stderr)
        stats.sort_stats("cumulative").print_stats(30)
        stats.sort_stats("tottime").print_stats(15)
    plan = predictor.plans[-1]
    reconcile = _median([w for w, _ in without])
    return {
        "unit": str(unit),
        "previewed_changes": len(plan.changes) if plan is not None else None,
        "rounds": rounds,
        "warmup_prediction_s": round(warmup, 4) if warmup is not None else None,
        "reconcile_without_predictor": {
            "wall_s_median": reconcile,
            "cpu_s_median": _median([c for _, c in without]),
        },
        "reconcile_with_predictor": {
            "wall_s_median": _median([w for w, _ in with_]),
            "cpu_s_median": _median([c for _, c in with_]),
        },
        "preview_wall_s_median": _median(previews),
        "preview_thread_cpu_s_median": _median(preview_cpu),
        "blocked_in_observer_wall_s_median": _median(added),
        # From the start of the head's reconcile until its final event, with the verdict in
        # its status description, is handed to the notifier.
        "final_status_with_verdict_after_s_median": _median(to_verdict),
        "final_status_description": verdicts[-1][1] if verdicts else None,
        # Off the reconcile's path: on the predictions' worker, after the preview.
        "keep_revision_after_wall_s_median": _median(kept),
        # What the predictor adds: the preview runs beside the pipeline, but on a busy machine
        # it slows the pipeline down, so the difference of the medians is the honest measure.
        "added_wall_s": round(_median([w for w, _ in with_]) - reconcile, 4),
        "added_share_of_reconcile": round(
            (_median([w for w, _ in with_]) - reconcile) / reconcile, 4
        ),
    }


if __name__ == "__main__":
    raise SystemExit(main())
