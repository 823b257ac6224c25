"""Benchmark the local control plane: warm start time and the memory each component uses.

"Warm" means the pinned binaries are already built (the run builds them first if not, outside
the timing). Each round starts a fresh `ControlPlane` in a new state directory, times `start()`
(etcd healthy, apiserver ready, controller-manager and scheduler healthy, fake Nodes Ready, the
`default` ServiceAccount created) and `stop()`, and records every component's resident set (RSS,
from /proc) right after start. In the last round it also applies a Deployment with 2 replicas,
waits until it is Available with the pinned kubectl, and records RSS again.

Run from the repository root: `.venv/bin/python -m bench.controlplane_start [--rounds 5]`.
It prints a JSON report; nothing here asserts a target.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from devenv import toolchain
from devenv.controlplane import ControlPlane

__all__ = ["main"]

_MIB = 1024 * 1024

_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: bench, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: bench}}
  template:
    metadata: {labels: {app: bench}}
    spec: {containers: [{name: app, image: registry.invalid/app:1}]}
"""


def _mib(memory: dict[str, int]) -> dict[str, float]:
    values = {name: round(rss / _MIB, 1) for name, rss in memory.items()}
    values["total"] = round(sum(memory.values()) / _MIB, 1)
    return values


def _kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> None:
    subprocess.run(
        [str(toolchain.binary("kubectl")), f"--kubeconfig={kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )


def _deployment_available(plane: ControlPlane) -> float:
    started = time.monotonic()
    _kubectl(plane.admin_kubeconfig, "apply", "--server-side", "-f", "-", stdin=_DEPLOYMENT)
    _kubectl(
        plane.admin_kubeconfig,
        "wait",
        "--for=condition=Available",
        "--timeout=240s",
        "deployment/bench",
    )
    return time.monotonic() - started


def _round(workdir: Path, index: int, *, with_deployment: bool) -> dict[str, Any]:
    plane = ControlPlane(workdir / f"round-{index}")
    started = time.monotonic()
    plane.start()
    result: dict[str, Any] = {"start_s": round(time.monotonic() - started, 2)}
    try:
        result["rss_after_start_mib"] = _mib(plane.memory())
        if with_deployment:
            result["deployment_available_s"] = round(_deployment_available(plane), 2)
            result["rss_after_deployment_mib"] = _mib(plane.memory())
    finally:
        stopping = time.monotonic()
        plane.stop()
        result["stop_s"] = round(time.monotonic() - stopping, 2)
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="starts to measure (default 5)")
    args = parser.parse_args(argv)
    for name in ("etcd", "kube-apiserver", "kwok", "kubectl"):
        toolchain.binary(name)  # build outside the timing
    with tempfile.TemporaryDirectory(prefix="tidegate-bench-") as workdir:
        rounds = [
            _round(Path(workdir), i, with_deployment=i == args.rounds - 1)
            for i in range(args.rounds)
        ]
    starts = [r["start_s"] for r in rounds]
    report = {
        "rounds": rounds,
        "start_s": {"median": statistics.median(starts), "min": min(starts), "max": max(starts)},
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
