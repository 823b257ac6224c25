"""The only place the engine starts a subprocess.

Repository content is untrusted, so every tool (git, kustomize, helm) runs through `run`, which
bounds its time and memory, gives it a minimal environment, captures its output and turns any
failure into a `CommandError` with the tail of stderr. Callers never touch `subprocess` directly.
"""

from __future__ import annotations

import contextlib
import os
import resource
import selectors
import subprocess
import tempfile
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from core.errors import CommandError

__all__ = ["DEFAULT_LIMITS", "Confinement", "Coprocess", "Limits", "run"]

# The environment a tool sees: enough to run, nothing of the caller's credentials.
_PASSED_ENV = ("PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ")


@dataclass(frozen=True)
class Limits:
    """Bounds for one subprocess."""

    timeout: float = 120.0
    """Seconds before the process is killed."""
    memory: int = 4 << 30
    """Address-space limit in bytes (Go tools need headroom above their heap)."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Variables added to the minimal environment."""


DEFAULT_LIMITS = Limits()


class Confinement(Protocol):
    """Confines one process (`core.host.sandbox` makes these)."""

    def wrap(self, argv: Sequence[str], memory: int) -> list[str]:
        """Return the command line that runs `argv` confined, within `memory` bytes."""
        ...


def _limit_memory(limit: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def run(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    stdin: bytes | None = None,
    limits: Limits = DEFAULT_LIMITS,
    ok_codes: Sequence[int] = (0,),
    confine: Confinement | None = None,
) -> bytes:
    """Run a command and return its stdout; raise `CommandError` on any failure.

    With `confine`, the command runs in the sandbox, which also applies the memory limit (in the
    child, after fork and before exec, where `preexec_fn` would be unsafe with threads).
    """
    command = confine.wrap(argv, limits.memory) if confine is not None else list(argv)
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            input=stdin,
            capture_output=True,
            timeout=limits.timeout,
            env=_environment(limits),
            preexec_fn=None if confine is not None else _limit_memory(limits.memory),
            check=False,
        )
    except FileNotFoundError as exc:
        raise CommandError(argv, "is not installed or not on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandError(
            argv, f"timed out after {limits.timeout:g}s", stderr=_text(exc.stderr)
        ) from exc
    except OSError as exc:
        raise CommandError(argv, f"could not start: {exc.strerror}") from exc
    if done.returncode not in ok_codes:
        where = " in the sandbox" if confine is not None else ""
        raise CommandError(
            argv, f"failed (exit {done.returncode}){where}", stderr=_text(done.stderr)
        )
    return done.stdout


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")


# How much a coprocess read asks the pipe for at once (a pipe holds 64 KiB by default).
_CHUNK = 1 << 16


class Coprocess:
    """A long-lived tool spoken to over stdin and stdout, such as `git cat-file --batch`.

    Starting a process costs milliseconds and a request to a running one microseconds, so tools
    asked thousands of small questions run once. The process gets the same minimal environment and
    memory bound as `run`; the time bound applies to each read, and a tool that stops answering is
    killed. Failures raise `CommandError` with the tail of stderr. Not thread-safe: callers
    serialise requests. Use it as a context manager or call `close`.
    """

    def __init__(
        self, argv: Sequence[str], *, cwd: Path | None = None, limits: Limits = DEFAULT_LIMITS
    ) -> None:
        self._argv = tuple(argv)
        self._timeout = limits.timeout
        # A file, not a pipe: nobody drains stderr while the tool runs, and a full pipe would
        # block it. It lives as long as the process, so no `with`.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env=_environment(limits),
                preexec_fn=_limit_memory(limits.memory),
            )
        except OSError as exc:
            self._stderr.close()
            reason = "is not installed or not on PATH"
            raise CommandError(
                argv, reason if isinstance(exc, FileNotFoundError) else f"could not start: {exc}"
            ) from exc
        stdin, stdout = self._proc.stdin, self._proc.stdout
        if stdin is None or stdout is None:  # never with PIPE; narrows the types
            raise CommandError(argv, "could not start: no pipes")
        self._stdin = stdin
        # Reads go to the raw descriptor through our own buffer so that each one can wait with a
        # deadline; a buffered reader would block without one.
        self._fd = stdout.fileno()
        self._buffer = bytearray()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._fd, selectors.EVENT_READ)
        self._finalizer = weakref.finalize(
            self, _stop_coprocess, self._proc, self._selector, self._stderr
        )

    @property
    def alive(self) -> bool:
        """Whether the process is still running."""
        return self._finalizer.alive and self._proc.poll() is None

    def send(self, data: bytes) -> None:
        """Write `data` to the tool's stdin and flush it."""
        try:
            self._stdin.write(data)
            self._stdin.flush()
        except (BrokenPipeError, ValueError) as exc:
            raise self._failure() from exc

    def read_line(self) -> bytes:
        """Return the next line of output, without its newline."""
        deadline = time.monotonic() + self._timeout
        while (end := self._buffer.find(b"\n")) < 0:
            self._fill(deadline, _CHUNK)
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return line

    def read_exact(self, size: int) -> bytes:
        """Return exactly the next `size` bytes of output."""
        deadline = time.monotonic() + self._timeout
        while len(self._buffer) < size:
            self._fill(deadline, max(_CHUNK, size - len(self._buffer)))
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def close(self) -> None:
        """Stop the tool (end of input first, then a kill) and release its pipes."""
        self._finalizer()

    def __enter__(self) -> Coprocess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _fill(self, deadline: float, size: int) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not self._selector.select(remaining):
            self._proc.kill()
            self._proc.wait()  # so that `alive` is false and later calls fail at once
            raise CommandError(
                self._argv, f"timed out after {self._timeout:g}s", stderr=self._stderr_tail()
            )
        chunk = os.read(self._fd, size)
        if not chunk:
            raise self._failure()
        self._buffer += chunk

    def _failure(self) -> CommandError:
        if not self._finalizer.alive:
            return CommandError(self._argv, "was closed")
        try:
            code = self._proc.wait(timeout=self._timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            code = self._proc.wait()
        return CommandError(self._argv, f"exited (exit {code})", stderr=self._stderr_tail())

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        return _text(self._stderr.read())


def _stop_coprocess(
    proc: subprocess.Popen[bytes], selector: selectors.BaseSelector, stderr: IO[bytes]
) -> None:
    """End a coprocess: most tools exit on end of input; the rest are killed."""
    selector.close()
    if proc.stdin is not None:
        # A broken pipe means it has already exited, which is what we want.
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
    stderr.close()


def _environment(limits: Limits) -> dict[str, str]:
    """The minimal environment of `run`, for a coprocess."""
    env = {k: v for k, v in os.environ.items() if k in _PASSED_ENV}
    env.update(limits.env)
    return env
