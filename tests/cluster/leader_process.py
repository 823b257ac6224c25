"""One replica's leader election, as a process: `python -m tests.cluster.leader_process ...`.

Prints `started <identity>` / `stopped <identity>` lines as the elector's callbacks fire and stops
cleanly (releasing the Lease) on SIGTERM, as the reconciler does.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from core.cluster.fluxobjects import LiveCluster
from reconciler.leader import LeaderElector, Timing


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--lease", required=True)
    parser.add_argument("--identity", required=True)
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    cluster = LiveCluster.from_kubeconfig(args.kubeconfig)
    elector = LeaderElector(
        cluster, args.namespace, args.lease, args.identity, Timing(10.0, 6.0, 0.5)
    )

    def say(word: str) -> None:
        print(f"{word} {args.identity}", flush=True)

    print(f"ready {args.identity}", flush=True)
    elector.run(stop, lambda: say("started"), lambda: say("stopped"))
    cluster.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
