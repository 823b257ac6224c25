"""The GitRepository source controller assembled: storage, artifact server, caches, reconciler.

`GitSourceService` is what a controller process starts next to its other controllers: it serves
the storage directory over HTTP on `bind` and advertises artifacts at `advertised_url` (in a
cluster, the Service that fronts the pod, as source-controller's `--storage-adv-addr`), and gives
the loop `reconcile(obj) -> seconds | None` and `deleted(namespace, name)`. Artifacts already in
the storage directory are served again after a restart, so a persistent volume keeps
`status.artifact.url` valid. This module only assembles; the rules live in the modules it uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from reconciler.source.checkout import GitFetcher
from reconciler.source.gitrepository import (
    EventSink,
    GitRepositoryReconciler,
    SourceCluster,
    reconcile_git_repository,
)
from reconciler.source.server import ArtifactServer
from reconciler.source.storage import Storage

__all__ = ["GitSourceService", "SourceSettings"]


@dataclass(frozen=True)
class SourceSettings:
    """Where artifacts live and how they are reached."""

    storage_dir: Path
    """Artifacts (a persistent volume keeps them across restarts)."""
    cache_dir: Path
    """The per-object git caches (may be an emptyDir: they refill)."""
    bind_host: str = "0.0.0.0"  # noqa: S104 - the artifact server faces the cluster network
    port: int = 9090
    """Source-controller's `--storage-addr` port; 0 picks a free one (tests)."""
    advertised_url: str = ""
    """Base of `status.artifact.url`; empty: `http://<bind host>:<port>` as bound."""


class GitSourceService:
    """The source controller of one process; a context manager that runs the artifact server."""

    def __init__(
        self, cluster: SourceCluster, settings: SourceSettings, *, events: EventSink | None = None
    ) -> None:
        """Prepare the service; `events` receives the GitRepositories' events (optional)."""
        self.settings = settings
        self._events = events
        self.server = ArtifactServer(settings.storage_dir, settings.bind_host, settings.port)
        self._cluster = cluster
        self._reconciler: GitRepositoryReconciler | None = None

    def start(self) -> None:
        """Bind the artifact server and make the reconciler ready."""
        self.settings.storage_dir.mkdir(parents=True, exist_ok=True)
        self.server.start()
        base = self.settings.advertised_url or self.server.url
        self._reconciler = GitRepositoryReconciler(
            self._cluster,
            Storage(self.settings.storage_dir, base),
            GitFetcher(self.settings.cache_dir),
            events=self._events,
        )

    def stop(self) -> None:
        """Stop serving artifacts."""
        self.server.stop()

    def __enter__(self) -> GitSourceService:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def reconciler(self) -> GitRepositoryReconciler:
        """The reconciler (after `start`)."""
        if self._reconciler is None:
            raise RuntimeError("the source service is not started")
        return self._reconciler

    def reconcile(self, obj: Mapping[str, Any]) -> float | None:
        """The loop's reconcile: one pass, then the seconds until the next (None: not requeued)."""
        return reconcile_git_repository(obj, self.reconciler).requeue_after

    def deleted(self, namespace: str, name: str) -> None:
        """The loop's deletion hook: drop the object's cache and artifacts."""
        self.reconciler.forget(namespace, name)
