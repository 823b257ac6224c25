"""SIGTERM stops a leading reconciler cleanly: the loop stops, the Lease is released, exit 0."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.cluster.kube import eventually, unique_name

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]


class _Lines:
    """The stdout lines of a process, collected as they arrive."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        self._seen: list[str] = []
        self._process = process
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._queue.put(line.strip())

    def said(self) -> list[str]:
        while not self._queue.empty():
            self._seen.append(self._queue.get())
        return self._seen


def test_sigterm_stops_the_loop_releases_the_lease_and_exits_zero(
    admin_kubeconfig: Path, kube_client: Any, namespace: str
) -> None:
    lease = unique_name("ops")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.cluster.operations_process",
            "--kubeconfig",
            str(admin_kubeconfig),
            "--namespace",
            namespace,
            "--lease",
            lease,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        replica = _Lines(process)
        port = eventually(
            lambda: next((x.split()[1] for x in replica.said() if x.startswith("port ")), None),
            "the port",
        )
        eventually(lambda: "working" in replica.said(), "the loop to start leading")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=60) as reply:
            assert reply.status == 200
        leases = k8s.CoordinationV1Api(kube_client)
        assert leases.read_namespaced_lease(lease, namespace).spec.holder_identity == "ops-1"

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        eventually(lambda: "exited" in replica.said(), "the last line")
        assert replica.said()[-2:] == ["work stopped", "exited"]
        assert leases.read_namespaced_lease(lease, namespace).spec.holder_identity in (None, "")
    finally:
        if process.poll() is None:
            process.kill()
