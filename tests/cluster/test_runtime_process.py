"""The controller process on the real apiserver: probes, SIGTERM, kill -9 and two replicas.

The process is `reconciler.runtime.Runtime` with a trivial reconcile (tests/cluster/
runtime_process.py) so the process is proven on its own: a SIGTERM during a reconcile lets it
finish and write its whole status before exit 0; of two replicas exactly one leads, and the
standby takes over when the leader is killed with SIGKILL.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.cluster.fluxcrds import install_flux_crds
from tests.cluster.kube import eventually

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
GROUP, VERSION, PLURAL = "kustomize.toolkit.fluxcd.io", "v1", "kustomizations"


class Replica:
    """One controller process and the lines it printed."""

    def __init__(self, kubeconfig: Path, namespace: str, identity: str, *extra: str) -> None:
        self.identity = identity
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.cluster.runtime_process",
                "--kubeconfig",
                str(kubeconfig),
                "--namespace",
                namespace,
                "--identity",
                identity,
                *extra,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.strip())

    def said(self) -> list[str]:
        while not self._lines.empty():
            self.seen.append(self._lines.get())
        return self.seen

    def ports(self) -> tuple[int, int]:
        line = eventually(
            lambda: next((s for s in self.said() if s.startswith("ports ")), None),
            f"{self.identity}'s ports",
        )
        metrics, health = line.split()[1:]
        return int(metrics), int(health)

    def wait(self, timeout: float) -> int:
        """Wait for the process to exit and for its last lines to be read; its exit code."""
        code = self.process.wait(timeout)
        self._reader.join(timeout)  # the pipe's end: every line it printed is in `said()`
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)


@pytest.fixture
def replicas(admin_kubeconfig: Path, namespace: str) -> Iterator[list[Replica]]:
    started: list[Replica] = []
    yield started
    for replica in started:
        replica.stop()


def _create(api: Any, namespace: str, name: str) -> None:
    k8s.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Kustomization",
            "metadata": {"name": name},
            "spec": {
                "interval": "10m",
                "path": "./",
                "prune": True,
                "sourceRef": {"kind": "GitRepository", "name": "repo"},
            },
        },
    )


def _status(api: Any, namespace: str, name: str) -> dict[str, Any]:
    obj = k8s.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name
    )
    return dict(obj.get("status") or {})


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=60) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def test_sigterm_during_a_reconcile_finishes_it_and_writes_the_whole_status(
    admin_kubeconfig: Path,
    dynamic_client: Any,
    kube_client: Any,
    namespace: str,
    replicas: list[Replica],
) -> None:
    install_flux_crds(dynamic_client)
    replica = Replica(admin_kubeconfig, namespace, "solo", "--hold", "3")
    replicas.append(replica)
    _, health_port = replica.ports()
    eventually(lambda: "leading" in replica.said(), "the loop to start")
    assert _get(health_port, "/healthz")[0] == 200
    assert _get(health_port, "/readyz")[0] == 200
    _create(kube_client, namespace, "apps")
    eventually(lambda: "start apps" in replica.said(), "the reconcile to start")
    os.kill(replica.process.pid, signal.SIGTERM)
    assert replica.wait(60) == 0
    said = replica.said()
    assert said.index("done apps") < said.index("stopped") < said.index("exited 0")
    status = _status(kube_client, namespace, "apps")
    assert status["observedGeneration"] == 1
    assert status["lastAttemptedRevision"] == "by solo"
    assert status["conditions"][0]["reason"] == "ReconciliationSucceeded"


def test_metrics_show_each_reconcile_under_fluxs_names(
    admin_kubeconfig: Path,
    dynamic_client: Any,
    kube_client: Any,
    namespace: str,
    replicas: list[Replica],
) -> None:
    install_flux_crds(dynamic_client)
    replica = Replica(admin_kubeconfig, namespace, "metered")
    replicas.append(replica)
    metrics_port, _ = replica.ports()
    _create(kube_client, namespace, "apps")
    eventually(lambda: "done apps" in replica.said(), "the reconcile")
    series = f'kind="Kustomization",name="apps",namespace="{namespace}"'

    def exposed() -> str | None:
        code, text = _get(metrics_port, "/metrics")
        ready = 'ready="True"' in text and 'reason="ReconciliationSucceeded"' in text
        return text if code == 200 and ready and series in text else None

    text = eventually(exposed, "the reconcile's series")
    assert f"gotk_reconcile_duration_seconds_count{{{series}}} 1.0" in text
    assert "gotk_resource_info{" in text


def test_two_replicas_elect_one_leader_and_the_standby_takes_over_after_kill_9(
    admin_kubeconfig: Path,
    dynamic_client: Any,
    kube_client: Any,
    namespace: str,
    replicas: list[Replica],
) -> None:
    install_flux_crds(dynamic_client)
    first = Replica(admin_kubeconfig, namespace, "first", "--leader-election")
    second = Replica(admin_kubeconfig, namespace, "second", "--leader-election")
    replicas.extend([first, second])
    eventually(lambda: "leading" in first.said() + second.said(), "a leader")
    leader, standby = (first, second) if "leading" in first.said() else (second, first)
    _create(kube_client, namespace, "one")
    eventually(lambda: "done one" in leader.said(), "the leader to reconcile")
    # The standby serves its probes but never reconciles.
    assert _get(standby.ports()[1], "/readyz")[0] == 200
    assert "leading" not in standby.said()
    assert (
        _status(kube_client, namespace, "one")["lastAttemptedRevision"] == f"by {leader.identity}"
    )

    leader.process.kill()
    leader.process.wait(30)
    eventually(lambda: "leading" in standby.said(), "the standby to take over")
    _create(kube_client, namespace, "two")
    try:
        eventually(lambda: "done two" in standby.said(), "the new leader to reconcile")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nthe new leader said: {standby.said()}") from None
    assert (
        _status(kube_client, namespace, "two")["lastAttemptedRevision"] == f"by {standby.identity}"
    )
