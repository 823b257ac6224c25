"""`tidegate preview-server start|stop|status|run`: a warm preview process for one user's CLI.

A one-shot `tidegate preview` pays the interpreter and the preview's imports before it renders
anything; on a warm one-file change that is most of its time. A server started here keeps them
loaded, with the render caches warm (`cli.preview.WarmCaches`, bounded), and runs the previews
that `tidegate preview` hands it (`cli.preview_client`) one at a time, exactly as the command
would run them in its own process: the client's argv, working directory, umask and environment
for the duration of the request, the report and messages streamed back byte for byte, the exit
code returned. The server adds no capability: it runs with the user's own rights, renders
through the same sandbox and fetch policy, and keeps none of a request's environment after it.

Safety: the socket lives in a directory of the cache directory that only the user can enter
(0700; the socket itself 0600), and every connection's peer uid (SO_PEERCRED) must be the
server's own. A client checks the server's identity (the code and tool pins, `identity`) before
sending anything, and the server checks it again; a server of other code never answers. The
server exits after `--idle-timeout` seconds without a request and on `stop`; after
`--recycle-after` previews it replaces itself (exec, same socket) so that nothing it holds can
grow without bound.

It must not hold anything between requests but the warm caches, nor start anything on its own:
the user starts it, and it is never used when `TIDEGATE_PREVIEW_SERVER=off` or `--no-server`.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import io
import os
import shutil
import signal
import socket
import stat
import struct
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from cli import preview_client, preview_wire
from core.errors import InputError

__all__ = ["PreviewServer", "peer_allowed", "register"]

DEFAULT_IDLE = 900.0
DEFAULT_RECYCLE = 200
_START_WAIT = 60.0
_REQUEST_WAIT = 30.0
_LOCK = "lock"
_LOG = "log"


def register(subparsers: Any) -> None:
    """Add the `preview-server` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "preview-server",
        help="keep a warm process for `tidegate preview` (start, stop, status)",
        description="Start, stop or inspect a warm preview server for this user. While one runs "
        "for the same cache directory and the same Tidegate code and tools, `tidegate preview` "
        "hands its work to it and only relays the output: the same report, messages and exit "
        "code, without the interpreter's start-up. It listens on a socket only this user can "
        "reach (in the cache directory's preview-server/), renders with the same sandbox, and "
        "exits after --idle-timeout seconds without a preview. "
        f"{preview_client.DISABLE_ENV}=off or `tidegate preview --no-server` ignores it.",
    )
    parser.add_argument(
        "action",
        choices=("start", "stop", "status", "run"),
        help="run: serve in the foreground (what `start` runs in the background)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="the render cache of the previews it serves (default: the user cache); a preview "
        "with another --cache-dir runs in its own process",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=DEFAULT_IDLE,
        metavar="SECONDS",
        help=f"exit after this long without a request (default: {DEFAULT_IDLE:g})",
    )
    parser.add_argument(
        "--recycle-after",
        type=int,
        default=DEFAULT_RECYCLE,
        metavar="N",
        help=f"replace the process after N previews (default: {DEFAULT_RECYCLE})",
    )
    parser.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--lock-fd", type=int, help=argparse.SUPPRESS)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not args.idle_timeout > 0:
        raise InputError("--idle-timeout must be more than 0 seconds")
    if args.recycle_after < 1:
        raise InputError("--recycle-after must be at least 1")
    actions = {"start": _start, "stop": _stop, "status": _status, "run": _run_foreground}
    code: int = actions[args.action](args)
    return code


def _cache_dir(args: argparse.Namespace) -> Path:
    from cli.preview import default_cache_dir

    return Path(os.path.abspath(args.cache_dir or default_cache_dir()))


# --- the commands --------------------------------------------------------------------------


def _start(args: argparse.Namespace) -> int:
    directory = private_dir(preview_client.server_dir())
    answer = _ask({"op": "status"})
    if answer is not None:
        print(f"tidegate: a preview server already runs (pid {answer.get('pid')})")
        return 0
    log = directory / _LOG
    argv = [
        sys.executable, "-m", "cli", "preview-server", "run",
        "--cache-dir", str(_cache_dir(args)),
        "--idle-timeout", repr(args.idle_timeout),
        "--recycle-after", str(args.recycle_after),
    ]  # fmt: skip
    pid = _spawn_detached(argv, log)
    deadline = time.monotonic() + _START_WAIT
    while time.monotonic() < deadline:
        answer = _ask({"op": "status"})
        if answer is not None:
            print(
                f"tidegate: preview server started (pid {answer.get('pid')}); it stops after "
                f"{args.idle_timeout:g}s without a preview"
            )
            return 0
        done, _status_code = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:].strip() if log.exists() else ""
    raise InputError(f"the preview server did not start: {tail or 'no message'}")


def _stop(args: argparse.Namespace) -> int:
    answer = _ask({"op": "stop"})
    if answer is None:
        print("tidegate: no preview server runs")
        return 0
    pid = int(answer.get("pid", 0))
    deadline = time.monotonic() + _START_WAIT
    while pid and _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    print(f"tidegate: preview server stopped (pid {pid})")
    return 0


def _status(args: argparse.Namespace) -> int:
    answer = _ask({"op": "status"})
    if answer is None:
        print("tidegate: no preview server runs")
        return 1
    same = answer.get("identity") == preview_client.identity()
    print(
        f"tidegate: preview server pid {answer.get('pid')}, cache {answer.get('cache_dir')}, "
        f"{answer.get('served')} previews served, stops after {answer.get('idle_timeout')}s "
        f"idle; {'same code' if same else 'OTHER code: it will not be used (stop it)'}"
    )
    return 0


def _run_foreground(args: argparse.Namespace) -> int:
    directory = private_dir(preview_client.server_dir())
    if args.listen_fd is not None and args.lock_fd is not None:
        listener = socket.socket(fileno=args.listen_fd)
        lock_fd = args.lock_fd
    else:
        lock_fd = _lock(directory)
        listener = _listen(preview_client.socket_path())
    server = PreviewServer(
        listener,
        lock_fd,
        cache_dir=_cache_dir(args),
        idle_timeout=args.idle_timeout,
        recycle_after=args.recycle_after,
    )
    return server.serve()


# --- the socket's directory, lock and listener ---------------------------------------------


def private_dir(path: Path) -> Path:
    """Create `path` (0700) or check it: a directory of this user that no one else can enter."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise InputError(f"{path}: not a directory of this user; remove it")
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def _lock(directory: Path) -> int:
    """Hold the directory's lock for the server's life: one server per cache directory."""
    fd = os.open(directory / _LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise InputError("a preview server already runs for this cache directory") from None
        raise
    return fd


def _listen(path: Path) -> socket.socket:
    """Bind the socket 0600 (the lock is held, so a file there is a dead server's)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous = os.umask(0o177)
    try:
        listener.bind(str(path))
    except OSError as exc:
        listener.close()
        raise InputError(f"{path}: cannot listen there ({exc.strerror})") from None
    finally:
        os.umask(previous)
    os.chmod(path, 0o600)
    listener.listen(16)
    return listener


def _spawn_detached(argv: Sequence[str], log: Path) -> int:
    """Start the server in its own session, its output in `log`; return its pid."""
    env = dict(os.environ)
    root = str(Path(preview_client.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    pid = os.fork()
    if pid:
        return pid
    try:  # the child: nothing here may return into the command's code
        os.setsid()
        os.chdir("/")
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.execve(sys.executable, list(argv), env)  # noqa: S606 (our interpreter, fixed argv)
    finally:
        os._exit(127)


def _ask(message: dict[str, Any]) -> dict[str, Any] | None:
    """Send an operation to the running server; None when none answers."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(_REQUEST_WAIT)
            conn.connect(str(preview_client.socket_path()))
            hello = preview_wire.read(conn.recv)
            if hello is None:
                return None
            conn.sendall(preview_wire.encode(message))
            answer = preview_wire.read(conn.recv)
            return {**hello, **answer} if answer is not None else hello
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    return True


def peer_allowed(conn: socket.socket, uid: int | None = None) -> bool:
    """Whether the process at the other end of `conn` runs as `uid` (default: ours)."""
    try:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return False
    _pid, peer_uid, _gid = struct.unpack("3i", creds)
    return bool(peer_uid == (os.getuid() if uid is None else uid))


# --- the server ----------------------------------------------------------------------------


class _Forward(io.TextIOBase):
    """The request's stdout or stderr: each write goes to the client as it happens."""

    def __init__(self, conn: socket.socket, key: str, tty: bool, lock: threading.Lock) -> None:
        super().__init__()
        self._conn, self._key, self._tty, self._lock = conn, key, tty, lock
        self.broken = False

    def write(self, text: str) -> int:
        if text:
            send(self._conn, {self._key: text}, self._lock)
        return len(text)

    def isatty(self) -> bool:
        return self._tty

    def writable(self) -> bool:
        return True


def send(conn: socket.socket, message: dict[str, Any], lock: threading.Lock) -> None:
    """Send one frame; a client that went away is noticed by the watcher, not here."""
    with lock, contextlib.suppress(OSError):
        conn.sendall(preview_wire.encode(message))


class PreviewServer:
    """Accepts previews on a listening socket, one at a time, until idle, stopped or recycled."""

    def __init__(
        self,
        listener: socket.socket,
        lock_fd: int,
        *,
        cache_dir: Path,
        idle_timeout: float,
        recycle_after: int,
    ) -> None:
        self.listener = listener
        self.lock_fd = lock_fd
        self.cache_dir = cache_dir
        self.idle_timeout = idle_timeout
        self.recycle_after = recycle_after
        self.identity = preview_client.identity()
        self.served = 0
        self.stopping = False
        self._go = shutil.which("go")
        self._abandoned = threading.Event()
        self._in_request = False

    def serve(self) -> int:
        """Serve until idle or stopped; 0 then. Recycling replaces the process and never returns."""
        from cli import main, policy_gate, preview

        preview.warm_caches = preview.WarmCaches()
        # Built once: building the preview's parser costs more than parsing with it.
        self._parser = main.build_parser("preview")
        policy_gate.warm_up()
        signal.signal(signal.SIGINT, self._on_interrupt)
        signal.signal(signal.SIGTERM, self._on_terminate)
        print(f"preview server {os.getpid()} serving {self.cache_dir}", flush=True)
        try:
            while not self.stopping:
                self.listener.settimeout(self.idle_timeout)
                try:
                    conn, _ = self.listener.accept()
                except TimeoutError:
                    print("idle: exiting", flush=True)
                    break
                with conn:
                    self._connection(conn)
                if self.served >= self.recycle_after and not self.stopping:
                    self._recycle()
        finally:
            if not self._recycling:
                self._remove_socket()
        return 0

    _recycling = False

    def _on_interrupt(self, signum: int, frame: FrameType | None) -> None:
        # Only the watcher sends SIGINT, for an abandoned request; a late one is ignored.
        if self._in_request and self._abandoned.is_set():
            raise KeyboardInterrupt

    def _on_terminate(self, signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    def _connection(self, conn: socket.socket) -> None:
        if not peer_allowed(conn):
            return
        lock = threading.Lock()
        conn.settimeout(_REQUEST_WAIT)
        send(conn, {"identity": self.identity, "pid": os.getpid()}, lock)
        try:
            request = preview_wire.read(conn.recv)
        except (OSError, ValueError):
            return
        if request is None:
            return
        op = request.get("op")
        if op == "status":
            send(conn, self._describe(), lock)
        elif op == "stop":
            self.stopping = True
            send(conn, {"stopping": True}, lock)
        elif op == "preview":
            self._preview(conn, request, lock)

    def _describe(self) -> dict[str, Any]:
        return {
            "cache_dir": str(self.cache_dir),
            "served": self.served,
            "idle_timeout": self.idle_timeout,
        }

    def _preview(self, conn: socket.socket, request: dict[str, Any], lock: threading.Lock) -> None:
        if request.get("identity") != self.identity:
            send(conn, {"refused": "the running preview server runs other code"}, lock)
            return
        try:
            argv = [str(a) for a in request["argv"]]
            env = {str(k): str(v) for k, v in dict(request["env"]).items()}
            cwd, umask = str(request["cwd"]), int(request["umask"])
            tty = [bool(t) for t in request["tty"]]
            columns = request.get("columns")
        except (KeyError, TypeError, ValueError):
            send(conn, {"refused": "the preview server did not understand the request"}, lock)
            return
        if columns and "COLUMNS" not in env:
            env["COLUMNS"] = str(int(columns))  # argparse wraps usage to the client's terminal
        conn.settimeout(None)
        if not os.path.isdir(cwd):
            send(conn, {"refused": "the preview server cannot enter the working directory"}, lock)
            return
        with _as_client(env, cwd, umask):
            reason = self._mismatch(argv)
            if reason:
                send(conn, {"refused": reason}, lock)
                return
            code = self._run(conn, argv, tty, lock)
        self.served += 1
        send(conn, {"code": code}, lock)

    def _mismatch(self, argv: list[str]) -> str | None:
        """Why this server must not run the request (in the client's environment), or None."""
        from cli.preview import default_cache_dir

        if shutil.which("go") != self._go:
            return "the preview server was started with another Go (the tools' pin)"
        try:
            with (
                contextlib.redirect_stderr(io.StringIO()),
                contextlib.redirect_stdout(io.StringIO()),
            ):
                args = self._parser.parse_args(["preview", *argv])
        except SystemExit:
            return None  # a usage error: the run below prints it, as the command would
        wanted = Path(os.path.abspath(args.cache_dir or default_cache_dir()))
        if wanted != self.cache_dir:
            return f"the preview server serves another cache directory ({self.cache_dir})"
        return None

    def _run(self, conn: socket.socket, argv: list[str], tty: list[bool], lock: Any) -> int:
        from cli import main

        finished = threading.Event()
        self._abandoned.clear()
        watcher = threading.Thread(target=self._watch, args=(conn, finished), daemon=True)
        out = _Forward(conn, "out", tty[0], lock)
        err = _Forward(conn, "err", tty[1], lock)
        self._in_request = True
        try:
            watcher.start()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    return main.run_command(["preview", *argv], self._parser)
                except SystemExit as exc:  # argparse's usage error: the exit it would cause
                    return _exit_code(exc)
        except KeyboardInterrupt:
            return main.EXIT_INTERRUPTED
        finally:
            self._in_request = False
            finished.set()
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RD)
            watcher.join(5)

    def _watch(self, conn: socket.socket, finished: threading.Event) -> None:
        """Interrupt the preview when its client goes away (Ctrl-C, a killed client)."""
        try:
            data = conn.recv(1)
        except OSError:
            data = b""
        if not data and not finished.is_set():
            self._abandoned.set()
            os.kill(os.getpid(), signal.SIGINT)

    def _recycle(self) -> None:
        """Replace this process by a fresh one on the same socket and lock."""
        print(f"recycling after {self.served} previews", flush=True)
        self._recycling = True
        os.set_inheritable(self.listener.fileno(), True)
        os.set_inheritable(self.lock_fd, True)
        argv = [
            sys.executable, "-m", "cli", "preview-server", "run",
            "--cache-dir", str(self.cache_dir),
            "--idle-timeout", repr(self.idle_timeout),
            "--recycle-after", str(self.recycle_after),
            "--listen-fd", str(self.listener.fileno()),
            "--lock-fd", str(self.lock_fd),
        ]  # fmt: skip
        sys.stdout.flush()
        os.execv(sys.executable, argv)  # noqa: S606 (our interpreter, fixed argv)

    def _remove_socket(self) -> None:
        # The lock is still held, so the file there is this server's.
        with contextlib.suppress(OSError):
            preview_client.socket_path().unlink()
        self.listener.close()


def _exit_code(exc: SystemExit) -> int:
    """The status `sys.exit(code)` gives a process, written as it would be."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


@contextlib.contextmanager
def _as_client(env: dict[str, str], cwd: str, umask: int) -> Iterator[None]:
    """The client's environment, directory and umask for one request; the server's after."""
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    saved_mask = os.umask(umask)
    os.environ.clear()
    os.environ.update(env)
    try:
        os.chdir(cwd)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
        os.umask(saved_mask)
