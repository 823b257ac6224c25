"""Benchmark deploy statuses: from a revision starting to apply to `pending` on the commit, and
from the run's final event to `success`, through the real notifier, queue and PyGithub.

The GitHub API server is the test suite's fake on loopback (every exchange checked against
GitHub's OpenAPI description); a github Provider and an Alert select the Kustomization. For each
of `--revisions` new commits the bench calls the reporter as the pipeline does (`applying`, then
`applied` and the success event through an `EventRecorder`) and waits until the status is on the
commit. Reported, as median and 95th percentile:

- `pending_s`: `applying` called -> the pending status stored by the API server;
- `success_s`: the final event recorded -> the success status stored;
- `reconcile_cost_s`: the time those calls take in the reconcile itself (they only queue).

Not measured: git fetch, artifact and apply time before `applying` (the source side), and a real
GitHub's latency. Run from the repository root: `.venv/bin/python -m bench.deploy_status`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from core.fetch import FetchPolicy
from devenv.github_api import FakeGitHub, serve_github
from reconciler.events import EventRecorder
from reconciler.notification.code_hosts import code_host
from reconciler.notification.delivery import Dispatcher
from reconciler.notification.lifecycle import DeployReporter
from reconciler.notification.service import Notifier

TOKEN = "ghp_" + secrets.token_hex(8)  # a throwaway for the local fake
API = "notification.toolkit.fluxcd.io/v1beta3"


class _Store:
    """One github Provider and one Alert for every Kustomization."""

    def __init__(self, address: str) -> None:
        meta = {"namespace": "flux-system", "uid": "0c9c2e41-aaaa"}
        self.objects = [
            {
                "apiVersion": API,
                "kind": "Provider",
                "metadata": {"name": "github", **meta},
                "spec": {"type": "github", "address": address, "secretRef": {"name": "gh"}},
            },
            {
                "apiVersion": API,
                "kind": "Alert",
                "metadata": {"name": "github", **meta},
                "spec": {
                    "providerRef": {"name": "github"},
                    "eventSources": [{"kind": "Kustomization", "name": "*"}],
                },
            },
        ]

    def list_objects(self, api_version: str, kind: str) -> Sequence[Mapping[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def get_object(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> Mapping[str, Any] | None:
        return next(
            (o for o in self.objects if o["kind"] == kind and o["metadata"]["name"] == name), None
        )

    def secret_data(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        return {"token": TOKEN.encode()}


def _kustomization() -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "app", "namespace": "flux-system", "uid": "u-1"},
        "status": {},
    }


def _wait(until: Callable[[], bool], timeout: float = 30.0) -> float:
    started = time.perf_counter()
    while not until():
        if time.perf_counter() - started > timeout:
            raise SystemExit("a status did not arrive within 30s")
        time.sleep(0.0005)
    return time.perf_counter()


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median": round(statistics.median(ordered), 4),
        "p95": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.deploy_status")
    parser.add_argument("--revisions", type=int, default=50)
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    fake = FakeGitHub(token=TOKEN)
    fake.add_pull("acme/fleet", 1, head="a" * 40)
    pending, success, cost = [], [], []
    with serve_github(fake):
        origin = fake.base_url.removesuffix("/api/v3")
        policy = FetchPolicy(
            allowed_hosts=frozenset({origin.removeprefix("http://")}), allow_loopback=True
        )
        dispatcher = Dispatcher(policy)
        dispatcher.start()
        reporter = DeployReporter(
            Notifier(_Store(f"{origin}/acme/fleet"), dispatcher, hosts=code_host).notify,
            cluster="bench",
        )
        recorder = EventRecorder(None, [reporter.forward])
        statuses = fake.repos["acme/fleet"].statuses
        try:
            for _ in range(args.revisions):
                sha = secrets.token_hex(20)
                revision = f"main@sha1:{sha}"
                obj = _kustomization()
                started = time.perf_counter()
                reporter.applying(obj, revision)
                queued = time.perf_counter()
                arrived = _wait(lambda sha=sha: len(statuses.get(sha, [])) >= 1)
                pending.append(arrived - started)
                finished = time.perf_counter()
                reporter.applied(obj, revision, changes=(), seconds=14.0, healthy=True)
                recorder.record(
                    obj,
                    "info",
                    "Reconciliation finished in 14s, next run in 10m",
                    revision=revision,
                    commit_status=True,
                    reason="ReconciliationSucceeded",
                )
                recorded = time.perf_counter()
                arrived = _wait(lambda sha=sha: len(statuses.get(sha, [])) >= 2)
                success.append(arrived - finished)
                cost.append((queued - started) + (recorded - finished))
        finally:
            dispatcher.stop()
    assert fake.violations == [], fake.violations
    report = {
        "revisions": args.revisions,
        "pending_s": _summary(pending),
        "success_s": _summary(success),
        "reconcile_cost_s": _summary(cost),
        "load_average_1m": round(os.getloadavg()[0], 1),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
