"""A controller process with a trivial reconcile: `python -m tests.cluster.runtime_process ...`.

The process is the real `reconciler.runtime.Runtime` (clients, informers, queue, workers, probes,
leader election, SIGTERM); only the reconcile function is a stand-in. It prints `leading` when
its loop starts, `start NAME` and `done NAME` around each reconcile, and `exited CODE` at the
end. A reconcile holds for `--hold` seconds, then writes the whole status in one merge patch.
Workers reconcile at the same time, so each line is written whole under one lock: `print` writes
the text and its newline apart, and two workers' lines would run together.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.cluster.fluxobjects import KUSTOMIZATION
from reconciler.loop import Controller
from reconciler.runtime import Runtime, Settings

_SAYING = threading.Lock()


def say(line: str) -> None:
    """Print one whole line, never interleaved with another thread's."""
    with _SAYING:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--identity", required=True)
    parser.add_argument("--hold", type=float, default=0.0)
    parser.add_argument("--leader-election", action="store_true")
    args = parser.parse_args()
    settings = Settings(
        kustomize=Path("kustomize"),
        kubeconfig=args.kubeconfig,
        watch_all_namespaces=False,
        namespace=args.namespace,
        identity=args.identity,
        enable_leader_election=args.leader_election,
        # Seconds, not fractions: a leader starved of CPU on a busy machine must not lose the
        # lease (and its reconciles) by missing a renewal deadline.
        leader_election_lease_duration=10.0,
        leader_election_renew_deadline=6.0,
        leader_election_retry_period=0.5,
        metrics_addr=("127.0.0.1", 0),
        health_addr=("127.0.0.1", 0),
    )

    def controllers(runtime: Runtime) -> Sequence[Controller]:
        def reconcile(obj: dict[str, Any]) -> float | None:
            meta = obj["metadata"]
            say(f"start {meta['name']}")
            threading.Event().wait(args.hold)
            status = {
                "observedGeneration": meta.get("generation"),
                "lastAttemptedRevision": f"by {args.identity}",
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "ReconciliationSucceeded",
                        "message": "trivial",
                        "lastTransitionTime": "2026-01-01T00:00:00Z",
                    }
                ],
            }
            runtime.flux.merge_patch_status(
                KUSTOMIZATION, meta["namespace"], meta["name"], {"status": status}
            )
            say(f"done {meta['name']}")
            return None

        return [Controller(KUSTOMIZATION, reconcile)]

    runtime = Runtime(settings, controllers)
    original = runtime.loop.run

    def run(stop: threading.Event) -> None:
        say("leading")
        original(stop)
        say("stopped")

    runtime.loop.run = run  # type: ignore[method-assign]
    metrics_port, health_port = runtime.ports
    say(f"ports {metrics_port} {health_port}")
    code = runtime.run()
    say(f"exited {code}")
    return code


if __name__ == "__main__":
    sys.exit(main())
