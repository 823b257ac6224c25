"""Leader election on a real Lease: two replica processes elect exactly one leader; a clean stop
hands over at once; a killed leader is replaced once its lease runs out; a leader that loses its
Lease stops leading and later leads again.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from core.cluster.fluxobjects import LiveCluster
from reconciler.leader import LeaderElector, Timing, lease_name
from tests.cluster.kube import eventually, unique_name

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]


class Replica:
    """A leader-election process whose output lines are collected as they arrive."""

    def __init__(self, kubeconfig: Path, namespace: str, lease: str, identity: str) -> None:
        self.identity = identity
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.cluster.leader_process",
                "--kubeconfig",
                str(kubeconfig),
                "--namespace",
                namespace,
                "--lease",
                lease,
                "--identity",
                identity,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def said(self) -> list[str]:
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return self.seen

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the process; once it exits and its last lines are read, its exit code."""
        self.process.send_signal(sig)
        code = self.process.wait(timeout=60)
        self._reader.join(timeout=60)  # the pipe's end: every line it printed is in `said()`
        return code


@pytest.fixture
def replicas(admin_kubeconfig: Path, namespace: str) -> Iterator[list[Replica]]:
    lease = unique_name("lease")
    started = [Replica(admin_kubeconfig, namespace, lease, name) for name in ("alpha", "beta")]
    yield started
    for replica in started:
        if replica.process.poll() is None:
            replica.stop(signal.SIGKILL)


def _holder(kube_client: Any, namespace: str) -> dict[str, Any]:
    leases = k8s.CoordinationV1Api(kube_client).list_namespaced_lease(namespace).items
    assert len(leases) <= 1
    return {} if not leases else kube_client.sanitize_for_serialization(leases[0].spec)


def _leaders(replicas: list[Replica]) -> list[Replica]:
    return [r for r in replicas if f"started {r.identity}" in r.said()]


def test_two_replicas_elect_exactly_one_and_a_clean_stop_hands_over(
    replicas: list[Replica], kube_client: Any, namespace: str
) -> None:
    eventually(lambda: all(f"ready {r.identity}" in r.said() for r in replicas), "both replicas")
    (leader,) = eventually(lambda: _leaders(replicas), "a leader")
    (standby,) = [r for r in replicas if r is not leader]
    # The standby keeps trying while the leader renews; it must not lead meanwhile.
    eventually(lambda: _holder(kube_client, namespace).get("renewTime"), "a renewed lease")
    first = _holder(kube_client, namespace)
    assert first["holderIdentity"] == leader.identity
    eventually(
        lambda: _holder(kube_client, namespace)["renewTime"] != first["renewTime"], "a renewal"
    )
    assert _leaders(replicas) == [leader]

    assert leader.stop() == 0
    assert leader.said()[-1] == f"stopped {leader.identity}"
    eventually(lambda: f"started {standby.identity}" in standby.said(), "the standby to lead")
    after = _holder(kube_client, namespace)
    assert after["holderIdentity"] == standby.identity
    assert after["leaseTransitions"] == first["leaseTransitions"] + 1


def test_a_killed_leader_is_replaced_when_its_lease_runs_out(
    replicas: list[Replica], kube_client: Any, namespace: str
) -> None:
    (leader,) = eventually(lambda: _leaders(replicas), "a leader")
    (standby,) = [r for r in replicas if r is not leader]
    leader.stop(signal.SIGKILL)
    eventually(lambda: f"started {standby.identity}" in standby.said(), "the standby to lead")
    assert _holder(kube_client, namespace)["holderIdentity"] == standby.identity


def test_a_leader_that_loses_its_lease_stops_and_leads_again_later(
    admin_kubeconfig: Path, kube_client: Any, namespace: str
) -> None:
    cluster = LiveCluster.from_kubeconfig(admin_kubeconfig)
    name = lease_name()
    # Generous, so a busy machine cannot make gamma miss a renewal of its own accord.
    elector = LeaderElector(cluster, namespace, name, "gamma", Timing(10.0, 6.0, 0.5))
    events: list[str] = []
    stop = threading.Event()
    runner = threading.Thread(
        target=elector.run,
        args=(stop, lambda: events.append("started"), lambda: events.append("stopped")),
    )
    runner.start()
    try:
        eventually(lambda: events == ["started"] or None, "gamma to lead")
        # Another replica takes the lease over (as after a network partition) and then vanishes;
        # its lease outlasts gamma's renew deadline, so gamma steps down before it may return.
        leases = k8s.CoordinationV1Api(kube_client)
        lease = leases.read_namespaced_lease(name, namespace)
        lease.spec.holder_identity = "intruder"
        lease.spec.lease_duration_seconds = 12
        leases.replace_namespaced_lease(name, namespace, lease)
        eventually(lambda: events[:2] == ["started", "stopped"] or None, "gamma to step down")
        eventually(lambda: events == ["started", "stopped", "started"] or None, "gamma to return")
        assert _holder(kube_client, namespace)["holderIdentity"] == "gamma"
    finally:
        stop.set()
        runner.join()
        cluster.close()
    assert events[-1] == "stopped"
    assert _holder(kube_client, namespace)["holderIdentity"] == ""


def test_each_shard_selector_gets_its_own_lease() -> None:
    assert lease_name() == "tidegate-reconciler-leader-election"
    shard = lease_name("sharding.fluxcd.io/key in (shard1)")
    assert shard.startswith("tidegate-reconciler-leader-election-")
    assert len(shard.rsplit("-", 1)[1]) == 8
    assert shard != lease_name("sharding.fluxcd.io/key in (shard2)")


def test_timing_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="lease duration > renew deadline > retry period"):
        Timing(10.0, 10.0, 1.0)
