"""Publish git commits as Flux artifacts on a loopback HTTP server, as source-controller does.

`ArtifactShelf.publish` makes the `.tar.gz` of a commit's tree with the real `git archive`,
serves it over plain HTTP on 127.0.0.1 (like source-controller's storage Service) and writes the
GitRepository's `status.artifact` (url, revision `main@sha1:<hex>`, digest, size) through the
status subresource. Stopping the shelf is a source-storage outage: the URL then refuses
connections.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from tests.fixtures.gitserver import git

__all__ = ["ArtifactShelf"]


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


class ArtifactShelf:
    """Tarballs of commits under `root`, served on a loopback port."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    def start(self) -> None:
        handler = functools.partial(_Quiet, directory=str(self.root))
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def publish(
        self,
        kube_client: Any,
        work: Path,
        *,
        namespace: str,
        name: str,
        branch: str = "main",
    ) -> str:
        """Archive HEAD of `work`, serve it and point GitRepository `namespace/name` at it."""
        commit = git("rev-parse", "HEAD", cwd=work)
        path = self.root / f"{namespace}-{name}-{commit}.tar.gz"
        git("archive", "--format=tar.gz", f"--output={path}", commit, cwd=work)
        data = path.read_bytes()
        revision = f"{branch}@sha1:{commit}"
        artifact = {
            "path": f"gitrepository/{namespace}/{name}/{commit}.tar.gz",
            "url": f"http://127.0.0.1:{self.port}/{path.name}",
            "revision": revision,
            "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
            "lastUpdateTime": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "size": len(data),
        }
        condition = {
            "type": "Ready",
            "status": "True",
            "reason": "Succeeded",
            "message": f"stored artifact for revision '{revision}'",
            "lastTransitionTime": artifact["lastUpdateTime"],
            "observedGeneration": 1,
        }
        k8s.CustomObjectsApi(kube_client).patch_namespaced_custom_object_status(
            "source.toolkit.fluxcd.io",
            "v1",
            namespace,
            "gitrepositories",
            name,
            {"status": {"artifact": artifact, "conditions": [condition], "observedGeneration": 1}},
        )
        return revision
