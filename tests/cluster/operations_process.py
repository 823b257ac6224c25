"""A reconciler-shaped process: `python -m tests.cluster.operations_process ...`.

Runs `Operations` with a real Lease elector and probe server; its stand-in loop prints `working`
when it starts leading and `work stopped` when told to stop.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from core.cluster.fluxobjects import LiveCluster
from reconciler.leader import LeaderElector, Timing
from reconciler.metrics import Metrics, MetricsServer
from reconciler.operations import Operations


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--lease", required=True)
    args = parser.parse_args()
    cluster = LiveCluster.from_kubeconfig(args.kubeconfig)
    elector = LeaderElector(cluster, args.namespace, args.lease, "ops-1", Timing(3.0, 2.0, 0.3))
    # The probe reads the readiness of the Operations built right after it (late binding).
    server = MetricsServer(Metrics(), lambda: operations.ready.is_set(), host="127.0.0.1", port=0)
    operations = Operations(server, elector)
    operations.install_signal_handlers()
    print(f"port {server.port}", flush=True)

    def lead(stop: threading.Event) -> None:
        print("working", flush=True)
        stop.wait()
        print("work stopped", flush=True)

    code = operations.run(lead)
    cluster.close()
    print("exited", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
