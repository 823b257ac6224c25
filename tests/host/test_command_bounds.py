"""The subprocess seam's bounds and failures, with real processes.

Covers `run` and `Coprocess`: the time bound (a process that outlives it is killed and reported),
the memory bound (an allocation beyond it fails, the same one under a larger bound succeeds), a
missing tool, a tool that cannot start, a failing exit with the tail of stderr, accepted exit
codes, and the minimal environment; for a coprocess also a read that times out (the tool is
killed), a tool that exits mid-conversation, and use after close. The memory bound is set by
`prlimit` before the tool runs, with no `preexec_fn` (unsafe with threads, and a fork of the
whole process); without `prlimit` the `preexec_fn` still sets it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from core.errors import CommandError
from core.host import command
from core.host.command import Coprocess, Limits, run

ALLOCATE = [sys.executable, "-c", "block = bytearray(512 << 20); print(len(block))"]


def test_a_process_beyond_its_time_bound_is_killed_and_reported() -> None:
    with pytest.raises(CommandError, match=r"^sleep timed out after 0\.5s$"):
        run(["sleep", "60"], limits=Limits(timeout=0.5))


def test_an_allocation_beyond_the_memory_bound_fails() -> None:
    with pytest.raises(CommandError) as raised:
        run(ALLOCATE, limits=Limits(memory=256 << 20))

    # Reported in a few words, not as the tool's traceback or goroutine dump.
    assert str(raised.value).endswith(" ran out of memory (limit 256 MiB)")
    # The same program under a larger bound succeeds, so the bound is what failed it.
    assert run(ALLOCATE, limits=Limits(memory=2 << 30)) == str(512 << 20).encode() + b"\n"


def test_a_missing_tool_is_named() -> None:
    with pytest.raises(CommandError, match=r"^no-such-tool-here is not installed or not on PATH$"):
        run(["no-such-tool-here"])


def test_a_tool_that_cannot_start_says_why(tmp_path: Path) -> None:
    tool = tmp_path / "not-executable"
    tool.write_text("#!/bin/sh\necho hi\n")
    tool.chmod(0o644)

    with pytest.raises(CommandError, match=r"^not-executable could not start: Permission denied$"):
        run([str(tool)])


def test_a_failing_exit_carries_the_tail_of_stderr() -> None:
    with pytest.raises(CommandError) as raised:
        run(["sh", "-c", "echo first >&2; echo boom >&2; exit 3"])

    assert str(raised.value) == "sh failed (exit 3): first\nboom"


def test_accepted_exit_codes_return_stdout() -> None:
    assert run(["sh", "-c", "echo out; exit 1"], ok_codes=(0, 1)) == b"out\n"


def test_the_environment_is_minimal_plus_what_limits_add(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDEGATE_TEST_CREDENTIAL", "must-not-pass")

    out = run(["env"], limits=Limits(env={"ADDED": "yes"})).decode()

    assert "TIDEGATE_TEST_CREDENTIAL" not in out
    assert "ADDED=yes" in out.splitlines()


def test_a_coprocess_answers_until_closed() -> None:
    with Coprocess(["cat"]) as cat:
        cat.send(b"one\ntwo-and-more")
        assert cat.read_line() == b"one"
        assert cat.read_exact(3) == b"two"
        assert cat.alive
    assert not cat.alive
    with pytest.raises(CommandError, match=r"^cat was closed$"):
        cat.send(b"again\n")


def test_a_coprocess_read_beyond_its_time_bound_kills_it() -> None:
    with Coprocess(["sleep", "60"], limits=Limits(timeout=0.5)) as silent:
        with pytest.raises(CommandError, match=r"^sleep timed out after 0\.5s$"):
            silent.read_line()
        assert not silent.alive


def test_a_coprocess_that_exits_reports_its_code_and_stderr() -> None:
    with Coprocess(["sh", "-c", "read line; echo gone >&2; exit 4"]) as tool:
        tool.send(b"go\n")
        with pytest.raises(CommandError) as raised:
            tool.read_line()

    assert str(raised.value) == "sh exited (exit 4): gone"


def test_a_coprocess_memory_bound_applies() -> None:
    with (
        Coprocess(ALLOCATE, limits=Limits(memory=256 << 20)) as tool,
        pytest.raises(CommandError) as raised,
    ):
        tool.read_line()

    assert "exited (exit 1)" in str(raised.value)
    assert "MemoryError" in raised.value.stderr


def test_a_missing_or_unstartable_coprocess_is_named(tmp_path: Path) -> None:
    tool = tmp_path / "not-executable"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o644)

    with pytest.raises(CommandError, match=r"^no-such-tool-here is not installed or not on PATH$"):
        Coprocess(["no-such-tool-here"])
    with pytest.raises(CommandError, match=r"^not-executable could not start: .*Permission denied"):
        Coprocess([str(tool)])


# What an unconfined tool sees as its address-space bound, in KiB, before it does anything else.
ULIMIT = ["sh", "-c", "ulimit -v"]


def _started(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], Any]]:
    seen: list[tuple[list[str], Any]] = []
    real = subprocess.Popen

    def spy(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        seen.append((list(args), kwargs.get("preexec_fn")))
        return real(args, **kwargs)

    monkeypatch.setattr("core.host.command.subprocess.Popen", spy)
    return seen


def test_the_memory_bound_is_set_before_the_tool_runs_without_a_preexec_hook(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started = _started(monkeypatch)

    bound = run(ULIMIT, limits=Limits(memory=300 << 20))
    with Coprocess(["cat"], limits=Limits(memory=300 << 20)) as tool:
        tool.send(b"hello\n")
        echoed = tool.read_line()

    assert bound == b"307200\n"
    assert echoed == b"hello"
    assert [(argv[:2], hook) for argv, hook in started] == [
        ([command._prlimit(), f"--as={300 << 20}"], None)
    ] * 2


def test_without_prlimit_the_preexec_hook_sets_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(command, "_prlimit", lambda: None)
    started = _started(monkeypatch)

    bound = run(ULIMIT, limits=Limits(memory=300 << 20))

    assert bound == b"307200\n"
    assert started[0][0] == ULIMIT
    assert started[0][1] is not None


def test_a_caller_is_told_when_its_process_has_started() -> None:
    told: list[str] = []

    with command.on_start(lambda: told.append("started")):
        run(["true"])
        with pytest.raises(CommandError):
            run(["no-such-tool-here"])
    run(["true"])

    assert told == ["started"]
