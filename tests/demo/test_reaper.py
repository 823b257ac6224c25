"""The demo's reaper: what the demo started goes, and its directory with it, however it ended.

Real processes throughout: the reaper runs as `python -m devenv.reaper`, the processes it must
end are real `sleep`s carrying its marker (one in a group of its own, started by another), and
one process with a different marker value must survive it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from devenv import reaper
from devenv.demo_stack import DemoStack


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended


def test_the_reaper_ends_marked_processes_and_removes_its_directory_when_the_pipe_closes() -> None:
    started = subprocess.Popen(
        [sys.executable, "-m", "devenv.reaper", str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert started.stdin is not None
    assert started.stdout is not None
    scratch = Path(started.stdout.readline().decode().strip())
    assert scratch.is_dir()
    assert scratch.name.startswith(reaper.PREFIX)
    (scratch / "logs").mkdir()
    (scratch / "logs" / "serve.log").write_text("started\n")

    marked = {**os.environ, reaper.MARKER: str(scratch)}
    # A child that starts a grandchild in a session of its own: no process group covers both.
    child = subprocess.Popen(
        ["sh", "-c", "setsid sleep 300 & echo $!; wait"],
        env=marked,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert child.stdout is not None
    grandchild = int(child.stdout.readline())
    other = subprocess.Popen(["sleep", "300"], env={**marked, reaper.MARKER: f"{scratch}-other"})
    try:
        assert _alive(grandchild)

        started.stdin.close()  # what the demo's end does, SIGKILL included
        assert started.wait(timeout=120) == 0

        assert not scratch.exists()
        assert child.wait(timeout=30) == -signal.SIGKILL
        assert not _alive(grandchild)
        assert other.poll() is None  # another marker value is not ours
    finally:
        other.kill()
        other.wait()


def test_stopping_the_stack_ends_a_child_it_never_recorded() -> None:
    # What a SIGTERM during `Popen` leaves: a child running, unknown to the stack's records.
    stack = DemoStack(cluster="clusters/demo", log=lambda line: None)
    try:
        unrecorded = subprocess.Popen(["sleep", "300"], start_new_session=True)
        assert os.environ[reaper.MARKER] == str(stack.root)
    finally:
        stack.stop()
    assert unrecorded.wait(timeout=30) == -signal.SIGKILL
    assert not stack.root.exists()
    assert reaper.MARKER not in os.environ


def test_a_starting_reaper_reclaims_what_a_killed_reaper_left(tmp_path: Path) -> None:
    stale = tmp_path / f"{reaper.PREFIX}stale"
    stale.mkdir()
    (stale / reaper.OWNER_FILE).write_text("999999999 12345\n")  # no such process
    left = subprocess.Popen(
        ["sleep", "300"], env={**os.environ, reaper.MARKER: str(stale)}, start_new_session=True
    )
    running = tmp_path / f"{reaper.PREFIX}running"
    running.mkdir()
    own_start = Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()[19]
    (running / reaper.OWNER_FILE).write_text(f"{os.getpid()} {own_start}\n")
    reused = tmp_path / f"{reaper.PREFIX}reused"  # its owner's id now names another process
    reused.mkdir()
    (reused / reaper.OWNER_FILE).write_text(f"{os.getpid()} 1\n")
    unowned = tmp_path / f"{reaper.PREFIX}unowned"  # not a reaper's: never touched
    unowned.mkdir()

    started = subprocess.Popen(
        [sys.executable, "-m", "devenv.reaper", str(os.getpid())],
        env={**os.environ, "TMPDIR": str(tmp_path)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert started.stdin is not None
    assert started.stdout is not None
    scratch = Path(started.stdout.readline().decode().strip())
    try:
        assert scratch.parent == tmp_path.resolve()
        assert left.wait(timeout=30) == -signal.SIGKILL
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            [running.name, unowned.name, scratch.name]
        )
    finally:
        started.stdin.close()
        started.wait(timeout=120)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([running.name, unowned.name])
