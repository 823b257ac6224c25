"""Webhook -> comment: how long the pull-request app takes to comment on a one-file change.

On the synthetic fleet (`bench.fleet`, 3 clusters x 150 apps) served by the local git server,
with `tidegate serve` (gunicorn, one worker and its review thread, GitHub App mode) talking to
the local GitHub API server (`devenv.demo_stack` without the control plane), this measures from
the signed `pull_request` delivery to the moment the pull request's comment exists on the API
server, for:

- cold (only with `--cold`): the first pull request, with an empty render cache (every unit
  rendered, both sides);
- first: without `--cold`, the render cache is filled before the service starts by
  `tidegate preview` of the base against itself with the service's cache directory, sandbox,
  tools and operator file, so the service's first pull request renders from the cache on disk
  (its process and memory are new);
- warm: further pull requests, each a new one-file change (the image tag of one staging overlay,
  a fresh tag every time), on the running service;
- after restart: the first such pull request after `tidegate serve` was stopped and started
  again (the render cache on disk is kept, the process and its memory are new).

For every pull request the service logs the render part (`preview finished`, its `seconds`): the
preview alone, without fetching and publishing. Its CPU time is read from /proc: the user and
system time of the service's preview process and of the tools it ran and waited for, before and
after each pull request; the whole service's process tree likewise for end to end. The floor is
measured in the same run: the bare `kustomize build` of the edited overlay at the base and at the
head, one after the other, with the pinned kustomize, as `bench.preview_bench` measures it (wall
and CPU). The load average is recorded with every figure.

Run from the repository root: `.venv/bin/python -m bench.webhook_comment [--warm 5] [--cold]`.
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

    def pull_request(self) -> dict[str, float]:
        """Open a pull request with a fresh one-file change; return what it cost.

        End to end and render part in wall seconds (`end_to_end_s`, `render_s`), the CPU
        seconds of the service's process tree and of its preview process over the same span
        (`end_to_end_cpu_s`, `render_cpu_s`), and the 1-minute load average after it.
        """
        self.number += 1
        tag = f"9.{self.number}.{int(time.time()) % 100000}"
        _git(self.work, "checkout", "-q", "-B", f"pr-{self.number}", self.base)
        (self.work / self.path).write_text(self.template.replace("9.9.9", tag))
        _git(self.work, "commit", "-q", "-am", f"Bump one overlay to {tag}")
        head = _git(self.work, "rev-parse", "HEAD").strip()
        _git(self.work, "push", "-q", self.stack.push_url, f"pr-{self.number}")
        self.stack.github.add_pull(REPOSITORY, self.number, head=head)
        before = len(self._finished())
        serve = self.stack.pid("serve")
        tree_cpu, preview_cpu = _tree_cpu(serve), _preview_cpu(serve)
        started = time.perf_counter()
        self._deliver(head)
        deadline = time.monotonic() + _WAIT
        while not self._commented():
            self.stack.check_children()
            if time.monotonic() > deadline:
                raise SystemExit(f"no comment on pull request #{self.number} after {_WAIT:.0f}s")
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        return {
            "end_to_end_s": round(elapsed, 3),
            "render_s": self._render_seconds(before),
            "end_to_end_cpu_s": round(_tree_cpu(serve) - tree_cpu, 3),
            "render_cpu_s": round(_preview_cpu(serve) - preview_cpu, 3),
            "load_1m": round(os.getloadavg()[0], 2),
        }

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


def floor(
    kustomize: Path, repo: Path, base: str, head: str, overlay: str, work: Path
) -> tuple[float, float]:
    """Two bare `kustomize build` calls, the edited overlay at base and head: (wall, CPU) s."""
    trees = [checkout(repo, rev, work / name) for name, rev in (("base", base), ("head", head))]
    samples = [measure([kustomize, "build", tree / overlay], timeout=600) for tree in trees]
    return sum(s.seconds for s in samples), sum(s.cpu_seconds for s in samples)


def warm_up(stack: DemoStack, tools: dict[str, Path], repo: Path, config: Path) -> dict[str, float]:
    """Fill the service's render cache: `tidegate preview` of the base against itself.

    The same render settings as the service's previews (`app.review`): its cache directory, the
    default sandbox, the pinned tools and the operator file, so the service's own lookups hit.
    """
    cache = stack.root / "app" / "render"
    cache.parent.mkdir(parents=True, exist_ok=True)
    command: list[str | Path] = [
        sys.executable,
        "-m",
        "cli",
        "preview",
        "--repo",
        repo,
        "--base",
        fleetgen.BASE_BRANCH,
        "--head",
        fleetgen.BASE_BRANCH,
        "--cache-dir",
        cache,
        "--kustomize",
        tools["kustomize"],
        "--helm",
        tools["helm"],
        "--sandbox",
        "required",
        "--config",
        config,
        "--format",
        "markdown",
        "--output",
        os.devnull,
    ]
    sample = measure(command, timeout=_WAIT)
    if sample.returncode != 0:
        raise SystemExit(
            f"the warm-up preview exited with {sample.returncode}:\n{sample.stderr_tail}"
        )
    return {"wall_s": round(sample.seconds, 2), "cpu_s": round(sample.cpu_seconds, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", type=int, default=5, help="warm pull requests (median)")
    parser.add_argument("--apps", type=int, default=fleetgen.APPS_PER_CLUSTER)
    parser.add_argument(
        "--cold",
        action="store_true",
        help="start with an empty render cache and measure that first pull request (slow: "
        "every unit of both revisions is rendered in the sandbox)",
    )
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
        results: dict[str, Any] = {"load_1m_start": round(os.getloadavg()[0], 2)}
        try:
            with serve_charts(fleet.charts, port):
                stack.start_servers()
                _git(fleet.repo, "push", "-q", stack.push_url, f"{fleetgen.BASE_BRANCH}")
                if not args.cold:
                    say("warming the render cache: the base against itself")
                    results["warm_up"] = warm_up(stack, tools, fleet.repo, config)
                stack.start_serve(tools)
                bench = Bench(stack, fleet.repo, fleet.base_sha, (path, template))
                first = "cold" if args.cold else "first"
                say(f"pull request 1 ({first})")
                results[first] = bench.pull_request()
                warm = []
                for _ in range(args.warm):
                    warm.append(bench.pull_request())
                    say(f"warm pull request: {json.dumps(warm[-1])}")
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
    report: dict[str, Any] = {"fleet": f"{len(fleet.clusters)} clusters x {args.apps} apps"}
    report.update(results)
    report["warm"] = {key: _median(warm, key) for key in warm[0]} if warm else {}
    report["warm_each"] = warm
    report["floor"] = {
        "wall_s": round(statistics.median(f[0] for f in floors), 3),
        "cpu_s": round(statistics.median(f[1] for f in floors), 3),
    }
    report["load_1m_end"] = round(os.getloadavg()[0], 2)
    if warm:
        report["warm_render_over_floor"] = {
            "wall": round(report["warm"]["render_s"] / report["floor"]["wall_s"], 2),
            "cpu": round(report["warm"]["render_cpu_s"] / max(report["floor"]["cpu_s"], 1e-3), 2),
        }
    print(json.dumps(report, indent=2))
    return 0


def _median(rows: list[dict[str, float]], key: str) -> float:
    return round(statistics.median(row[key] for row in rows), 3)


def _processes() -> dict[int, tuple[int, float, str]]:
    """Every process: its parent, its CPU seconds (own plus waited-for children), its command."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        # The command name may hold spaces and parentheses: the fields start after the last ")".
        fields = stat[stat.rindex(")") + 2 :].split()
        utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
        found[int(entry.name)] = (int(fields[1]), (utime + stime + cutime + cstime) / tick, command)
    return found


def _descendants(root: int, processes: dict[int, tuple[int, float, str]]) -> set[int]:
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, (parent, _, _) in processes.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return tree & processes.keys()


def _tree_cpu(root: int) -> float:
    """The CPU seconds of a process tree (its live processes and what they waited for)."""
    processes = _processes()
    return sum(processes[pid][1] for pid in _descendants(root, processes))


def _preview_cpu(root: int) -> float:
    """The CPU seconds of the service's preview process tree (0 before it starts)."""
    processes = _processes()
    tree = _descendants(root, processes)
    previews = [pid for pid in tree if "cli.preview_server" in processes[pid][2]]
    return sum(_tree_cpu(pid) for pid in previews)


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
