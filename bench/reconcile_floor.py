"""The floor for the reconcile benchmark: `kubectl apply --server-side --prune` on a control plane.

Three scenarios, each measured as wall time, apiserver requests (the sum of
`apiserver_request_total` from the apiserver's /metrics, before and after) and the peak resident
memory of the applying process (`ru_maxrss` of the child):

1. first apply of one set of 1,000 ConfigMaps (one "Kustomization" worth of objects);
2. a no-op re-apply of the same set;
3. 100 sets of 10 ConfigMaps, applied one set after another.

The same scenarios are what the reconciler and Flux's kustomize-controller are compared on; this
script measures the pinned kubectl, the lower bound any controller pays. Run from the repository
root: `.venv/bin/python -m bench.reconcile_floor`. It prints JSON; nothing asserts a target.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from devenv import toolchain
from devenv.controlplane import ControlPlane

__all__ = ["main"]


def _configmaps(namespace: str, label: str, count: int) -> str:
    docs = []
    for i in range(count):
        docs.append(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {
                        "name": f"{label}-{i}",
                        "namespace": namespace,
                        "labels": {"bench": label},
                    },
                    "data": {"index": str(i), "payload": "x" * 200},
                }
            )
        )
    return "\n---\n".join(docs)


def _requests(kubectl: Path, kubeconfig: Path) -> float:
    text = subprocess.run(
        [str(kubectl), f"--kubeconfig={kubeconfig}", "get", "--raw", "/metrics"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("apiserver_request_total{")
    )


def _apply(kubectl: Path, kubeconfig: Path, manifest: Path, label: str) -> tuple[float, int]:
    # Server-side apply prunes through an ApplySet (a parent Secret per set, like an inventory).
    args = [
        str(kubectl),
        f"--kubeconfig={kubeconfig}",
        "apply",
        "--server-side",
        "--field-manager=bench",
        "--prune",
        f"--applyset={label}",
        "-n",
        "bench",
        "-f",
        str(manifest),
    ]
    start = time.perf_counter()
    env = {**os.environ, "KUBECTL_APPLYSET": "true"}
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    if status != 0:
        raise SystemExit(
            f"kubectl apply failed: {process.stderr.read().decode() if process.stderr else ''}"
        )
    return elapsed, usage.ru_maxrss * 1024


def _measure(kubectl: Path, kubeconfig: Path, runs: list[tuple[Path, str]]) -> dict[str, Any]:
    before = _requests(kubectl, kubeconfig)
    wall, peak = 0.0, 0
    for manifest, label in runs:
        seconds, rss = _apply(kubectl, kubeconfig, manifest, label)
        wall += seconds
        peak = max(peak, rss)
    after = _requests(kubectl, kubeconfig)
    # The two /metrics reads count themselves; take them out.
    return {
        "wall_seconds": round(wall, 3),
        "api_requests": int(after - before) - 1,
        "peak_rss_mib": round(peak / 2**20, 1),
    }


def main() -> int:
    # A timeout's SIGTERM must unwind the `with` below so the control plane is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    kubectl = toolchain.binary("kubectl")
    with tempfile.TemporaryDirectory(prefix="tidegate-bench-") as scratch:
        work = Path(scratch)
        with ControlPlane(work / "plane") as plane:
            kubeconfig = plane.admin_kubeconfig
            subprocess.run(
                [str(kubectl), f"--kubeconfig={kubeconfig}", "create", "namespace", "bench"],
                check=True,
                capture_output=True,
            )
            big = work / "big.yaml"
            big.write_text(_configmaps("bench", "big", 1000))
            small = []
            for i in range(100):
                path = work / f"small-{i}.yaml"
                path.write_text(_configmaps("bench", f"small{i}", 10))
                small.append((path, f"small{i}"))
            report = {
                "tool": "kubectl apply --server-side --prune --applyset (pinned)",
                "first_apply_1000": _measure(kubectl, kubeconfig, [(big, "big")]),
                "noop_reapply_1000": _measure(kubectl, kubeconfig, [(big, "big")]),
                "first_apply_100x10": _measure(kubectl, kubeconfig, small),
            }
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
