"""Webhook -> comment: how long the pull-request app takes to comment on a one-file change.

On the synthetic fleet (`bench.fleet`, 3 clusters x 150 apps) served by the local git server,
with `tidegate serve` (gunicorn, one worker and its review thread, GitHub App mode) talking to
the local GitHub API server (`devenv.demo_stack` without the control plane), this measures from
the signed `pull_request` delivery to the moment the pull request's comment exists on the API
server, for:

- cold: the first pull request, with an empty render cache (every unit rendered, both sides);
- warm: further pull requests, each a new one-file change (the image tag of one staging overlay,
  a fresh tag every time), on the running service;
- after restart: the first such pull request after `tidegate serve` was stopped and started
  again (the render cache on disk is kept, the process and its memory are new).

For every pull request the service logs the render part (`preview finished`, its `seconds`): the
preview alone, without fetching and publishing. The floor is measured in the same run: the bare
`kustomize build` of the edited overlay at the base and at the head, one after the other, with
the pinned kustomize, as `bench.preview_bench` measures it.

Run from the repository root: `.venv/bin/python -m bench.webhook_comment [--warm 5]`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import fleet as fleetgen
from bench.preview_bench import checkout, measure, serve_charts
from devenv.demo_stack import REPOSITORY, DemoStack
from devenv.github_webhook import deliver, pull_request_event
from devenv.ports import free_port

__all__ = ["main"]

_WAIT = 1800.0
_CLUSTER = "staging"


class Bench:
    """One run: the stack, the fleet's work tree, and what was measured."""

    def __init__(self, stack: DemoStack, work: Path, base: str, change: tuple[str, str]) -> None:
        self.stack = stack
        self.work = work
        self.base = base
        self.path, self.template = change
        self.number = 0

    def pull_request(self) -> tuple[float, float]:
        """Open a pull request with a fresh one-file change; return (end to end, render) s."""
        self.number += 1
        tag = f"9.{self.number}.{int(time.time()) % 100000}"
        _git(self.work, "checkout", "-q", "-B", f"pr-{self.number}", self.base)
        (self.work / self.path).write_text(self.template.replace("9.9.9", tag))
        _git(self.work, "commit", "-q", "-am", f"Bump one overlay to {tag}")
        head = _git(self.work, "rev-parse", "HEAD").strip()
        _git(self.work, "push", "-q", self.stack.push_url, f"pr-{self.number}")
        self.stack.github.add_pull(REPOSITORY, self.number, head=head)
        before = len(self._finished())
        started = time.perf_counter()
        self._deliver(head)
        deadline = time.monotonic() + _WAIT
        while not self._commented():
            self.stack.check_children()
            if time.monotonic() > deadline:
                raise SystemExit(f"no comment on pull request #{self.number} after {_WAIT:.0f}s")
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        return elapsed, self._render_seconds(before)

    def restart(self, tools: dict[str, Path]) -> None:
        """Stop `tidegate serve` (SIGTERM to its session) and start it again, same data."""
        child = self.stack.children.pop("serve")
        os.killpg(child.pid, signal.SIGTERM)
        child.wait(60)
        self.stack.start_serve(tools)

    def _commented(self) -> bool:
        comments = self.stack.github.repos[REPOSITORY].comments.values()
        return any(c["issue"] == self.number for c in list(comments))

    def _finished(self) -> list[dict[str, Any]]:
        """The `preview finished` lines of the running service's log."""
        lines = self.stack.log_file("serve").read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if '"preview finished"' in line]

    def _render_seconds(self, before: int) -> float:
        """The seconds the service logged for the job after the `before` it had logged."""
        for _ in range(100):
            found = self._finished()
            if len(found) > before:
                return float(found[before]["seconds"])
            time.sleep(0.05)
        raise SystemExit("the service logged no `preview finished` line")

    def _deliver(self, head: str) -> None:
        payload = pull_request_event(
            "opened",
            number=self.number,
            head=head,
            head_ref=f"pr-{self.number}",
            base=self.base,
            repository=REPOSITORY,
            clone_url=self.stack.clone_url,
            installation_id=self.stack.github.installation_id,
        )
        status = deliver(self.stack.webhook_url, self.stack.webhook_secret, payload)
        if status != 202:
            raise SystemExit(f"the delivery was answered {status}")


def floor(kustomize: Path, repo: Path, base: str, head: str, overlay: str, work: Path) -> float:
    """Two bare `kustomize build` calls: the edited overlay at the base and at the head."""
    trees = [checkout(repo, rev, work / name) for name, rev in (("base", base), ("head", head))]
    return sum(measure([kustomize, "build", tree / overlay], timeout=600).seconds for tree in trees)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", type=int, default=5, help="warm pull requests (median)")
    parser.add_argument("--apps", type=int, default=fleetgen.APPS_PER_CLUSTER)
    args = parser.parse_args(argv)
    tools = {name: fleetgen.pinned_tool(name) for name in ("kustomize", "helm")}
    with tempfile.TemporaryDirectory(prefix="tidegate-webhook-bench-") as scratch:
        work = Path(scratch)
        port = free_port()
        say("generating the fleet")
        fleet = fleetgen.generate(
            work / "gen", chart_url=f"http://127.0.0.1:{port}", helm=tools["helm"], apps=args.apps
        )
        [change] = [c for c in fleet.changes if c.name == "one-file"]
        changed = _git(fleet.repo, "diff", "--name-only", fleet.base_sha, change.branch).split()
        [path] = changed
        template = _git(fleet.repo, "show", f"{change.branch}:{path}")
        config = work / "operator.yaml"
        config.write_text("fetch:\n  allowLoopback: true\n")  # the chart server is on loopback
        os.environ["TIDEGATE_CONFIG"] = str(config)
        stack = DemoStack(cluster=_CLUSTER, log=say)
        results: dict[str, Any] = {}
        try:
            with serve_charts(fleet.charts, port):
                stack.start_servers()
                _git(fleet.repo, "push", "-q", stack.push_url, f"{fleetgen.BASE_BRANCH}")
                stack.start_serve(tools)
                bench = Bench(stack, fleet.repo, fleet.base_sha, (path, template))
                say("pull request 1: empty render cache")
                results["cold"] = bench.pull_request()
                warm = []
                for _ in range(args.warm):
                    warm.append(bench.pull_request())
                    say(f"warm pull request: {warm[-1][0]:.2f} s (render {warm[-1][1]:.2f} s)")
                say("restarting tidegate serve")
                bench.restart(tools)
                results["after_restart"] = bench.pull_request()
                head = _git(fleet.repo, "rev-parse", "HEAD").strip()
                floors = [
                    floor(
                        tools["kustomize"],
                        fleet.repo,
                        fleet.base_sha,
                        head,
                        change.head_units[0],
                        work / f"floor-{i}",
                    )
                    for i in range(3)
                ]
        finally:
            stack.stop()
    report = {
        "fleet": f"{len(fleet.clusters)} clusters x {args.apps} apps",
        "cold_end_to_end_s": round(results["cold"][0], 2),
        "cold_render_s": results["cold"][1],
        "warm_end_to_end_s": round(statistics.median(w[0] for w in warm), 2),
        "warm_render_s": round(statistics.median(w[1] for w in warm), 3),
        "after_restart_end_to_end_s": round(results["after_restart"][0], 2),
        "after_restart_render_s": results["after_restart"][1],
        "floor_s": round(statistics.median(floors), 3),
        "load_average_1m": round(os.getloadavg()[0], 1),
    }
    report["warm_render_over_floor"] = round(report["warm_render_s"] / report["floor_s"], 2)
    print(json.dumps(report, indent=2))
    return 0


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=Bench", "-c", "user.email=bench@tidegate.dev", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return done.stdout


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
