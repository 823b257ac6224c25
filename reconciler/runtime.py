"""The `tidegate reconcile` controller process: clients, loop, probes, election, shutdown.

`Settings` holds the controller's flags under Flux's names and defaults. `Runtime` builds the
process from them: one API client (the kubeconfig given, else the in-cluster ServiceAccount),
the informer-backed loop running the controllers its `Controllers` factory builds (the
Kustomization pipeline's are in `reconciler.wiring`), `/metrics` on `--metrics-addr` and
`/healthz` `/readyz` on `--health-addr`, and leader election on a Lease in the runtime namespace
when `--enable-leader-election` is set. `Runtime.run()` blocks until SIGTERM and returns 0 after
the workers finished their reconciles and the Lease was released.

The runtime namespace is `$RUNTIME_NAMESPACE` (as Flux's controllers read it), else the
ServiceAccount's namespace file, else `flux-system`. This module wires; it decides nothing about
a reconcile and reads no object itself.
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.cluster.fluxobjects import LiveCluster as FluxObjects
from core.cluster.live import LiveCluster, connect
from core.cluster.watch import Lister
from reconciler.informer import Cache
from reconciler.leader import LeaderElector, Timing, lease_name
from reconciler.loop import Controller, Loop, ObjectRef
from reconciler.metrics import Metrics, MetricsServer
from reconciler.operations import Operations
from reconciler.workqueue import Backoff

__all__ = ["Controllers", "Runtime", "Settings", "runtime_namespace"]

_SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


Controllers = Callable[["Runtime"], Sequence[Controller]]
"""Builds the loop's controllers from the runtime's clients, cache, metrics and settings."""


@dataclass(frozen=True)
class Settings:
    """The controller's flags (Flux's names; defaults as kustomize-controller's)."""

    kustomize: Path
    kubeconfig: Path | None = None
    concurrent: int = 4
    requeue_dependency: float = 30.0
    watch_all_namespaces: bool = True
    watch_label_selector: str = ""
    enable_leader_election: bool = False
    metrics_addr: tuple[str, int] = ("0.0.0.0", 8080)  # noqa: S104 - a pod's own address
    health_addr: tuple[str, int] = ("0.0.0.0", 9440)  # noqa: S104
    no_cross_namespace_refs: bool = False
    default_service_account: str = ""
    leader_election_lease_duration: float = 35.0
    leader_election_renew_deadline: float = 30.0
    leader_election_retry_period: float = 5.0
    interval_jitter_percentage: float = 5.0
    min_retry_delay: float = 0.75
    max_retry_delay: float = 900.0
    artifact_allow_loopback: bool = False
    work_dir: Path | None = None
    storage_path: Path | None = None
    storage_addr: tuple[str, int] = ("0.0.0.0", 9090)  # noqa: S104
    storage_adv_addr: str = ""
    notification_allow_loopback: bool = False
    """Deliver notifications to loopback receivers (a development cluster's code host)."""
    predict: bool = True
    """Compare each applied revision with its offline preview (predicted vs applied)."""
    predict_repository: Path | None = None
    """A local clone of the source holding every applied commit: compare predicted vs applied."""
    predict_cluster: str = ""
    """The cluster entry point (`clusters/NAME`) previewed whole for a unit that needs objects of
    other units (`postBuild.substituteFrom`); without it such a unit is not predicted."""
    helm: Path | None = None
    namespace: str = ""
    identity: str = ""


def runtime_namespace(environ: dict[str, str] | None = None, sa_file: Path = _SA_NAMESPACE) -> str:
    """Where the controller runs: $RUNTIME_NAMESPACE, the ServiceAccount's, or flux-system."""
    env = os.environ if environ is None else environ
    if env.get("RUNTIME_NAMESPACE"):
        return env["RUNTIME_NAMESPACE"]
    try:
        return sa_file.read_text().strip() or "flux-system"
    except OSError:
        return "flux-system"


class Runtime:
    """One controller process, built from `Settings`."""

    def __init__(
        self, settings: Settings, controllers: Controllers, api: Any | None = None
    ) -> None:
        self.settings = settings
        self._controllers = controllers
        self.cache = Cache()
        self.namespace = settings.namespace or runtime_namespace()
        self.identity = settings.identity or f"{socket.gethostname()}_{uuid.uuid4()}"
        self._api = api if api is not None else connect(settings.kubeconfig)
        self.flux = FluxObjects(self._api)
        self.live = LiveCluster(self._api)
        self.metrics = Metrics()
        self.operations = Operations(None, self._elector())
        self._cleanups: list[Callable[[], None]] = []
        self._servers = self._probe_servers()
        self.loop = self._loop()

    def run(self, install_signals: bool = True) -> int:
        """Serve, elect and reconcile until SIGTERM; 0 on a clean stop."""
        if install_signals:
            self.operations.install_signal_handlers()
        for server in self._servers:
            server.start()
        try:
            return self.operations.run(self.loop.run)
        finally:
            for server in self._servers:
                server.stop()
            for cleanup in reversed(self._cleanups):
                cleanup()
            self.live.close()

    def on_stop(self, cleanup: Callable[[], None]) -> None:
        """Run `cleanup` when the process stops (a controller's servers, for instance)."""
        self._cleanups.append(cleanup)

    @property
    def work_dir(self) -> Path:
        """Where controllers keep their files (`--work-dir`, else a temporary directory)."""
        return self.settings.work_dir or Path(tempfile.gettempdir()) / "tidegate-reconciler"

    @property
    def ports(self) -> tuple[int, int]:
        """The bound metrics and health ports (useful when started on port 0)."""
        return self._servers[0].port, self._servers[-1].port

    def _elector(self) -> LeaderElector | None:
        if not self.settings.enable_leader_election:
            return None
        settings = self.settings
        timing = Timing(
            settings.leader_election_lease_duration,
            settings.leader_election_renew_deadline,
            settings.leader_election_retry_period,
        )
        name = lease_name(settings.watch_label_selector)
        return LeaderElector(self.flux, self.namespace, name, self.identity, timing)

    def _probe_servers(self) -> list[MetricsServer]:
        ready: Callable[[], bool] = self.operations.ready.is_set
        metrics_host, metrics_port = self.settings.metrics_addr
        health_host, health_port = self.settings.health_addr
        servers = [MetricsServer(self.metrics, ready, host=metrics_host, port=metrics_port)]
        if (health_host, health_port) != (metrics_host, metrics_port):
            servers.append(MetricsServer(self.metrics, ready, host=health_host, port=health_port))
        return servers

    def _loop(self) -> Loop:
        settings = self.settings
        backoff: Backoff[ObjectRef] = Backoff(settings.min_retry_delay, settings.max_retry_delay)
        return Loop(
            Lister(self._api),
            self._controllers(self),
            cache=self.cache,
            concurrent=settings.concurrent,
            namespace=None if settings.watch_all_namespaces else self.namespace,
            label_selector=settings.watch_label_selector,
            jitter_percentage=settings.interval_jitter_percentage,
            backoff=backoff,
            metrics=self.metrics,
        )
