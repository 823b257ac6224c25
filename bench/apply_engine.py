"""The apply engine alone (`reconciler.apply` + `reconciler.prune`) on the reconcile scenarios.

The same three scenarios as `bench/reconcile_floor.py` (the pinned kubectl's floor), run in this
process through `core.cluster.live.LiveCluster`: first apply of one set of 1,000 ConfigMaps, a
no-op re-apply of it, and 100 sets of 10 applied one after another; plus a prune of 100 of the
1,000. For each: wall time, the requests the engine sent by verb (its own count) and the
apiserver's count (`apiserver_request_total` before and after, less the reads of /metrics).
Run from the repository root: `.venv/bin/python -m bench.apply_engine`. It prints JSON; nothing
asserts a target.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from bench.reconcile_floor import _configmaps, _requests
from core.cleartext import Clear
from core.cluster.live import LiveCluster, connect
from devenv import toolchain
from devenv.controlplane import ControlPlane
from reconciler.apply import Owner, apply_objects
from reconciler.changeset import ChangeSet
from reconciler.prune import prune

__all__ = ["main"]


def _objects(label: str, count: int) -> list[Clear]:
    return [Clear(doc, None) for doc in yaml.safe_load_all(_configmaps("bench", label, count))]


def _measure(
    kubectl: Path, kubeconfig: Path, api: Any, run: Callable[[LiveCluster], object]
) -> dict[str, Any]:
    port = LiveCluster(api)
    before = _requests(kubectl, kubeconfig)
    start = time.perf_counter()
    run(port)
    wall = time.perf_counter() - start
    after = _requests(kubectl, kubeconfig)
    return {
        "wall_seconds": round(wall, 3),
        "api_requests": int(after - before) - 1,
        "engine_requests": dict(sorted(port.requests.items())),
    }


def main() -> int:
    # A timeout's SIGTERM must unwind the `with` below so the control plane is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    kubectl = toolchain.binary("kubectl")
    with (
        tempfile.TemporaryDirectory(prefix="tidegate-bench-") as scratch,
        ControlPlane(Path(scratch) / "plane") as plane,
    ):
        kubeconfig = plane.admin_kubeconfig
        subprocess.run(
            [str(kubectl), f"--kubeconfig={kubeconfig}", "create", "namespace", "bench"],
            check=True,
            capture_output=True,
        )
        api = connect(kubeconfig)
        owner = Owner("bench", "bench")
        big = _objects("big", 1000)
        small = [_objects(f"small{i}", 10) for i in range(100)]
        state: dict[str, ChangeSet] = {}

        def first(port: LiveCluster) -> None:
            state["big"] = apply_objects(port, big, owner=owner)

        def many(port: LiveCluster) -> None:
            for objects in small:
                apply_objects(port, objects, owner=owner)

        def shrink(port: LiveCluster) -> None:
            applied = apply_objects(port, big[:900], owner=owner)
            prune(port, state["big"].inventory(), applied, owner)

        report = {
            "tool": "reconciler.apply + reconciler.prune (in process)",
            "first_apply_1000": _measure(kubectl, kubeconfig, api, first),
            "noop_reapply_1000": _measure(kubectl, kubeconfig, api, first),
            "first_apply_100x10": _measure(kubectl, kubeconfig, api, many),
            "apply_900_prune_100": _measure(kubectl, kubeconfig, api, shrink),
        }
        api.close()
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
