"""The only place the engine starts a subprocess.

Repository content is untrusted, so every tool (git, kustomize, helm) runs through `run`, which
bounds its time, memory and output, gives it a minimal environment, captures its output and turns
any failure into a `CommandError` with a short reason: the tail of stderr, cut before a Go
goroutine dump, or "ran out of memory (limit 4 GiB)" / "was killed by signal SIGKILL" when that is
what happened. Output over its budget kills the tool and raises `BudgetError`. Running tools
are known, so `terminate_all` can stop them when the preview itself is told to stop. Callers never
touch `subprocess` directly.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import resource
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from core.errors import BudgetError, CommandError

__all__ = [
    "DEFAULT_LIMITS",
    "Confinement",
    "Coprocess",
    "Limits",
    "on_start",
    "run",
    "terminate_all",
]

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
    max_output: int = 64 << 20
    """Bytes of stdout before the process is killed (a tiny chart can print gigabytes)."""
    flags: bool = False
    """Whether these bounds come from `tidegate preview`'s flags, which messages then name."""


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


@functools.cache
def _prlimit() -> str | None:
    """util-linux's `prlimit` (in every Debian and Ubuntu image), or None."""
    return shutil.which("prlimit")


def _bounded(
    argv: Sequence[str], limits: Limits, env: Mapping[str, str], cwd: Path | None
) -> tuple[list[str], Callable[[], None] | None]:
    """The command line and `preexec_fn` that run an unconfined tool within its memory bound.

    `prlimit --as` sets the limit and then becomes the tool, so the limit holds before the tool
    runs. A `preexec_fn` would do it in the forked child instead, which is unsafe while other
    threads run (the engine renders in a thread pool) and makes Python fork this whole process
    rather than vfork it: with a warm preview's ~150 MiB that alone costs ~7 ms per git process.
    The `preexec_fn` stays only for a system without `prlimit`. The tool is looked up here, on
    the PATH it gets, so that a missing one fails as it would without `prlimit`.

    Raises:
        FileNotFoundError, PermissionError: as starting the tool itself would.
    """
    prlimit = _prlimit()
    if prlimit is None:
        return list(argv), _limit_memory(limits.memory)
    tool = _executable(argv[0], env, cwd)
    return [prlimit, f"--as={limits.memory}", "--", tool, *argv[1:]], None


def _executable(name: str, env: Mapping[str, str], cwd: Path | None) -> str:
    """The file exec would run for `name` (a path is taken from `cwd`), or exec's error."""
    if os.sep in name:
        path = os.path.join(cwd, name) if cwd is not None else name
        if os.access(path, os.X_OK) and os.path.isfile(path):
            return os.path.abspath(path)
        if os.path.exists(path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), name)
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)
    found = shutil.which(name, path=env.get("PATH", os.defpath))
    if found is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)
    return found


def run(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    stdin: bytes | None = None,
    limits: Limits = DEFAULT_LIMITS,
    ok_codes: Sequence[int] = (0,),
    confine: Confinement | None = None,
) -> bytes:
    """Run a command and return its stdout.

    With `confine`, the command runs in the sandbox, which also applies the memory limit (in the
    child, after fork and before exec, where `preexec_fn` would be unsafe with threads).

    Raises:
        CommandError: the command could not start, failed, timed out or was killed.
        BudgetError: it printed more than `limits.max_output` bytes.
    """
    env = _environment(limits)
    try:
        if confine is not None:
            command, preexec = confine.wrap(argv, limits.memory), None
        else:
            command, preexec = _bounded(argv, limits, env, cwd)
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            preexec_fn=preexec,
        )
    except FileNotFoundError as exc:
        raise CommandError(argv, "is not installed or not on PATH") from exc
    except OSError as exc:
        raise CommandError(argv, f"could not start: {exc.strerror}") from exc
    with _RUNNING_LOCK:
        _RUNNING.add(proc)
    started = getattr(_STARTING, "callback", None)
    if started is not None:
        started()
    try:
        stdout, stderr, problem = _collect(proc, stdin, limits)
    finally:
        with _RUNNING_LOCK:
            _RUNNING.discard(proc)
    if problem == "output":
        raise BudgetError(
            f"{_name(argv)} printed more than {_mib(limits.max_output)} of output",
            flag="--max-tool-output",
        )
    if problem == "timeout":
        raise CommandError(
            argv,
            f"timed out after {limits.timeout:g}s{_hint(limits, '--tool-timeout')}",
            stderr=_summary(stderr),
        )
    code = proc.returncode
    if code in ok_codes:
        return stdout
    if _out_of_memory(code, stderr):
        raise CommandError(
            argv,
            f"ran out of memory (limit {_gib(limits.memory)}{_hint(limits, '--tool-memory')})",
        )
    if code < 0:
        raise CommandError(
            argv,
            f"was killed by signal {_signal_name(-code)} (its memory limit is "
            f"{_gib(limits.memory)})",
        )
    where = " in the sandbox" if confine is not None else ""
    raise CommandError(argv, f"failed (exit {code}){where}", stderr=_summary(stderr), code=code)


# Tools running now, so that a preview told to stop can stop them at once.
_RUNNING: set[subprocess.Popen[bytes]] = set()
_RUNNING_LOCK = threading.Lock()
# What this thread's next `run` calls once its process has started (`on_start`).
_STARTING = threading.local()


@contextlib.contextmanager
def on_start(callback: Callable[[], None]) -> Iterator[None]:
    """Call `callback` (in this thread) each time `run` has started a process, while in here.

    A caller waiting for a tool to be under way, not for its result, is told when the tool's
    process exists, not when it is done.
    """
    previous = getattr(_STARTING, "callback", None)
    _STARTING.callback = callback
    try:
        yield
    finally:
        _STARTING.callback = previous


# Bytes of stderr kept at its start and at its end: a tool may print gigabytes there too.
_STDERR_KEEP = 64 << 10
_ELIDED = b"\n[...]\n"


def terminate_all() -> None:
    """Kill every tool `run` has started and not yet reaped (on SIGTERM or SIGINT)."""
    with _RUNNING_LOCK:
        running = list(_RUNNING)
    for proc in running:
        with contextlib.suppress(OSError):
            proc.kill()


def _collect(
    proc: subprocess.Popen[bytes], stdin: bytes | None, limits: Limits
) -> tuple[bytes, bytes, str]:
    """Read stdout (up to the budget) and the tail of stderr until the process ends.

    Returns stdout, stderr and the problem that stopped it early: "", "output" or "timeout".
    """
    if proc.stdout is None or proc.stderr is None:  # never with PIPE; narrows the types
        raise CommandError([], "could not start: no pipes")
    if stdin is not None and proc.stdin is not None:
        writer = threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True)
        writer.start()
    deadline = time.monotonic() + limits.timeout
    out = bytearray()
    err = bytearray()
    problem = ""
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ, out)
        selector.register(proc.stderr, selectors.EVENT_READ, err)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                problem = "timeout"
                break
            for key, _ in selector.select(remaining):
                chunk = os.read(key.fd, _CHUNK)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                buffer: bytearray = key.data
                buffer += chunk
                if buffer is err and len(err) > 3 * _STDERR_KEEP:
                    # Keep the start (Go's fatal errors) and the end (most tools' errors).
                    del err[_STDERR_KEEP:-_STDERR_KEEP]
                    err[_STDERR_KEEP:_STDERR_KEEP] = _ELIDED
            if len(out) > limits.max_output:
                problem = "output"
                break
    if problem:
        proc.kill()
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    return bytes(out), bytes(err), problem


def _feed(pipe: IO[bytes], data: bytes) -> None:
    with contextlib.suppress(BrokenPipeError, OSError):
        pipe.write(data)
    with contextlib.suppress(BrokenPipeError, OSError):
        pipe.close()


# What Go's runtime (and Python's) print when an allocation or an address-space reservation
# fails; under an address-space limit, running out shows as any of these.
_OOM_MARKERS = (
    b"out of memory",
    b"cannot allocate memory",
    b"failed to reserve page summary memory",
    b"cannot reserve arena",
    b"MemoryError",
)


def _out_of_memory(code: int, stderr: bytes) -> bool:
    """Tell a tool that hit its memory limit: Go aborts with "runtime: out of memory"."""
    return code != 0 and any(marker in stderr for marker in _OOM_MARKERS)


def _summary(stderr: bytes) -> str:
    """The useful part of stderr: the end, before any Go goroutine dump."""
    text = _text(stderr)
    for marker in ("\ngoroutine ", "\nruntime stack:", "\n[signal "):
        at = text.find(marker)
        if at >= 0:
            text = text[:at]
    return text.strip()


def _hint(limits: Limits, flag: str) -> str:
    return f"; raise it with `tidegate preview {flag}`" if limits.flags else ""


def _name(argv: Sequence[str]) -> str:
    return argv[0].rsplit("/", 1)[-1] if argv else "command"


def _mib(size: int) -> str:
    return f"{size / (1 << 20):g} MiB" if size >= 1 << 20 else f"{size} bytes"


def _gib(size: int) -> str:
    return f"{size / (1 << 30):g} GiB" if size >= 1 << 30 else _mib(size)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


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
        env = _environment(limits)
        try:
            command, preexec = _bounded(argv, limits, env, cwd)
            self._proc = subprocess.Popen(
                command,
                cwd=cwd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env=env,
                preexec_fn=preexec,
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
