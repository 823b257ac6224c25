"""The preview benchmark passes the fleet size and the rendering mode through to what it runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench import fleet as fleetgen
from bench import preview_bench


def test_clusters_and_changed_only_reach_the_fleet_and_the_preview(tmp_path: Path) -> None:
    args = preview_bench.parse_args(["--clusters", "30", "--changed-only"])
    assert (args.clusters, args.changed_only) == (30, True)
    tool = preview_bench.Tidegate(
        Path("tidegate"),
        tmp_path,
        Path("kustomize"),
        Path("helm"),
        None,
        60,
        tmp_path,
        args.changed_only,
    )
    assert "--changed-only" in tool.command("main", "change/image-tag")


def test_a_large_fleet_gets_a_unit_budget_that_holds_it(tmp_path: Path) -> None:
    def budget(clusters: int) -> str:
        tool = preview_bench.Tidegate(
            Path("tidegate"), tmp_path, Path("k"), Path("h"), None, 900, tmp_path, True, clusters
        )
        command = [str(part) for part in tool.command("main", "change/image-tag")]
        assert command[command.index("--timeout") + 1] == "900"
        return command[command.index("--max-units") + 1]

    # 100 clusters render 15,600 units per revision, over the preview's default of 5,000.
    assert (budget(3), budget(100)) == ("5000", "20000")


def test_by_default_three_clusters_are_rendered_in_full(tmp_path: Path) -> None:
    args = preview_bench.parse_args([])
    assert (args.clusters, args.changed_only) == (3, False)
    tool = preview_bench.Tidegate(
        Path("tidegate"), tmp_path, Path("kustomize"), Path("helm"), None, 60, tmp_path
    )
    assert "--changed-only" not in tool.command("main", "change/image-tag")


def test_a_preview_the_gate_blocks_is_a_finished_measurement(tmp_path: Path) -> None:
    # A stand-in for `tidegate preview` that reports and exits as a blocked gate does.
    fake = tmp_path / "tidegate"
    fake.write_text('#!/bin/sh\necho \'{"summary": {"move": 10}}\'\nexit 3\n')
    fake.chmod(0o755)
    tool = preview_bench.Tidegate(
        fake, tmp_path, Path("kustomize"), Path("helm"), None, 60, tmp_path, True
    )
    report = tmp_path / "report.json"

    sample = tool.run("main", "change/rename", tmp_path / "cache", report)

    assert sample.seconds >= 0
    assert preview_bench._summary(report) == {"move": 10}


def test_a_crash_is_not_a_preview_whatever_its_exit_code(tmp_path: Path) -> None:
    # Python exits 1, the code of "changes", on an uncaught exception.
    fake = tmp_path / "tidegate"
    fake.write_text("#!/bin/sh\necho 'Traceback: ModuleNotFoundError' >&2\nexit 1\n")
    fake.chmod(0o755)
    tool = preview_bench.Tidegate(
        fake, tmp_path, Path("kustomize"), Path("helm"), None, 60, tmp_path, True
    )

    with pytest.raises(preview_bench.CommandFailedError, match=r"without a report.*Traceback"):
        tool.run("main", "change/image-tag", tmp_path / "cache")


def test_a_measurement_counts_the_cpu_of_the_whole_process_tree(tmp_path: Path) -> None:
    # The parent only waits; its child burns the CPU, as kustomize does under tidegate.
    burn = "import time; end = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    command = ["sh", "-c", f'{sys.executable} -c "{burn}"']

    sample = preview_bench.measure(command, timeout=60)

    assert sample.cpu_seconds >= 0.3
    combined = preview_bench.combine([sample, sample])
    assert combined.cpu_seconds == sample.cpu_seconds * 2
    assert "s CPU" in preview_bench._fmt(preview_bench.Series([sample]))


def test_a_warm_cache_is_taken_again_only_for_the_same_base_and_command(tmp_path: Path) -> None:
    def tool(jobs: int | None) -> preview_bench.Tidegate:
        return preview_bench.Tidegate(
            Path("tidegate"), tmp_path, Path("kustomize"), Path("helm"), jobs, 60, tmp_path
        )

    stamp = preview_bench._warm_stamp(tool(None), "a" * 40)

    assert stamp == preview_bench._warm_stamp(tool(None), "a" * 40)
    assert stamp != preview_bench._warm_stamp(tool(None), "b" * 40)
    assert stamp != preview_bench._warm_stamp(tool(2), "a" * 40)


def test_a_server_process_s_cpu_counts_its_waited_children(tmp_path: Path) -> None:
    # The server row adds what the server used to the client's CPU; the server's renders are
    # its children, as kustomize is the preview's.
    burn = "import time; end = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    script = f"import subprocess, sys, time; subprocess.run([sys.executable, '-c', {burn!r}])\n"
    script += "print('done', flush=True); time.sleep(60)"
    server = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        assert server.stdout.readline() == "done\n"
        used = preview_bench._tree_cpu(server.pid)
    finally:
        server.kill()
        server.wait()

    assert used >= 0.3


def _logging_fake(path: Path, log: Path, stdout: str) -> Path:
    """A stand-in executable that appends its arguments to `log` and prints `stdout`."""
    path.write_text(f"#!/bin/sh\necho \"$*\" >> {log}\necho '{stdout}'\n")
    path.chmod(0o755)
    return path


def test_flate_diffs_every_cluster_of_a_larger_fleet(tmp_path: Path) -> None:
    log = tmp_path / "calls"
    fake = _logging_fake(tmp_path / "flate", log, "")
    clusters = ("staging", "production", "edge", "edge-004")
    peer = preview_bench.Flate(fake, 60, tmp_path, clusters)
    (tmp_path / "head").mkdir()
    (tmp_path / "base").mkdir()

    peer.diff(tmp_path / "head", "a" * 40, tmp_path / "cache", tmp_path / "report")
    peer.warm(tmp_path / "base")

    paths = [line.split("--path ")[1].split()[0] for line in log.read_text().splitlines()]
    assert paths == [str(tmp_path / t / "clusters" / c) for t in ("head", "base") for c in clusters]


def test_skip_warm_measures_only_the_cold_preview(tmp_path: Path) -> None:
    log = tmp_path / "calls"
    fake = _logging_fake(tmp_path / "tidegate", log, '{"summary": {"update": 1}}')
    args = preview_bench.parse_args(["--skip-warm", "--skip-floor", "--repeat", "2"])
    assert args.skip_warm
    fleet = fleetgen.Fleet(tmp_path, tmp_path, "http://127.0.0.1:1", [])
    change = fleetgen.Change("one-file", "change/image-tag", "", ("a",), ("a",))
    trees = {preview_bench.BASE_TREE: tmp_path, change.name: tmp_path}
    run = preview_bench.Run(args, tmp_path, fleet, trees, Path("k"), Path("h"))
    tool = preview_bench.Tidegate(fake, tmp_path, Path("k"), Path("h"), None, 60, tmp_path)

    preview_bench.measure_change(run, change, (tool, None), None)

    # Two cold previews of the change; no warm-up of the base, no incremental or server run.
    calls = log.read_text().splitlines()
    assert len(calls) == 2
    assert all("--head change/image-tag" in call for call in calls)
    result = run.results[0]
    assert len(result.tidegate_cold.samples) == 2
    assert (result.tidegate_incremental.samples, result.tidegate_server.samples) == ([], [])
    assert result.tidegate_summary == {"update": 1}
