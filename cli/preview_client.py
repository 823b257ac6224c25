"""The thin client of the warm preview server: hand `tidegate preview` to it, or say it cannot.

`cli.main` calls `forward` before it imports anything of the preview. When a server started with
`tidegate preview-server start` listens in this user's cache directory and runs the same code,
the preview runs there and this process only relays its output: the report and messages byte
for byte, the exit code, and the cwd, umask and environment the preview needs. Otherwise
`forward` returns None and the command runs in this process exactly as without a server.

It imports only the interpreter's built-in modules and a few small ones (the C socket module, not
`socket`; frames in `marshal`, not `json`: see `cli.preview_wire`), so a preview through the
server costs a bare interpreter plus the render. It must not import `cli.preview` or anything of
`core`: that is the cost the server exists to save (tests/preview/test_preview_server.py).
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal.py imports enum; no stubs for the C module
import _socket
import os
import struct
import sys
from collections.abc import Sequence

from cli import preview_wire

# Neither typing nor pathlib is imported at run time (see `cli.main`); type checkers read this
# name as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from hashlib import sha256
    from pathlib import Path
    from typing import Any
else:
    try:  # The interpreter's own SHA-256: hashlib would load OpenSSL (~3 ms) for one digest.
        from _sha256 import sha256
    except ImportError:  # Python 3.12 renamed it
        from hashlib import sha256

__all__ = ["DISABLE_ENV", "forward", "identity", "server_dir", "socket_path"]

DISABLE_ENV = "TIDEGATE_PREVIEW_SERVER"
"""`off` (or `0`, `no`, `false`) makes `tidegate preview` ignore any running server."""
NO_SERVER_FLAG = "--no-server"

# Strings and os.path, not pathlib: importing pathlib alone would cost the client a sixth of its
# own time.
_SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
# What makes two servers interchangeable: our packages the preview runs, and the pinned tools'
# build inputs (their binaries live in a directory named after a hash of these).
_CODE_DIRS = ("cli", "core", "policies", "devenv", "tools")
_CODE_SUFFIXES = (".py", ".rego", ".yaml", ".yml", ".mod", ".sum", ".json", ".cel")
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


def cache_root() -> Path:
    """Tidegate's cache directory, as `devenv.toolchain.cache_root` finds it (kept light here)."""
    from pathlib import Path

    return Path(_cache_root())


def server_dir() -> Path:
    """The server's private directory (mode 0700) inside the cache directory."""
    return cache_root() / "preview-server"


def socket_path() -> Path:
    """The server's socket (mode 0600) in its private directory."""
    return server_dir() / "socket"


def _cache_root() -> str:
    explicit = os.environ.get("TIDEGATE_CACHE_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tidegate")


def _socket_file() -> str:
    return os.path.join(_cache_root(), "preview-server", "socket")


def identity() -> str:
    """A digest of the code a preview would run: interpreter, our source files, tool pins.

    Sizes and modification times stand for contents: a checkout, an edit or a reinstall changes
    them, and statting a few hundred files costs about a millisecond where reading them would not.
    A process computes it once: the code it runs is loaded already.
    """
    if not _IDENTITY:
        _IDENTITY.append(_digest())
    return _IDENTITY[0]


_IDENTITY: list[str] = []


def _digest() -> str:
    digest = sha256()
    # The interpreter by what it is, not by the name it was started as (`python`, `python3`),
    # and the environment (venv) whose packages it imports.
    interpreter = os.path.realpath(sys.executable)
    for part in (interpreter, sys.prefix, sys.version, _SOURCE_ROOT):
        digest.update(part.encode() + b"\0")
    for name in _CODE_DIRS:
        for root, dirs, files in os.walk(os.path.join(_SOURCE_ROOT, name)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
            for file in sorted(files):
                if not file.endswith(_CODE_SUFFIXES):
                    continue
                path = os.path.join(root, file)
                try:
                    stat = os.stat(path)
                except OSError:
                    continue
                line = f"{os.path.relpath(path, _SOURCE_ROOT)}\0{stat.st_size}\0{stat.st_mtime_ns}"
                digest.update(line.encode(errors="surrogateescape") + b"\n")
    return digest.hexdigest()


def disabled(argv: Sequence[str]) -> bool:
    """The user asked for no server, or the command line is one only this process answers."""
    setting = os.environ.get(DISABLE_ENV, "").strip().lower()
    if setting in ("off", "0", "no", "false"):
        return True
    # Help is printed by the parser of this process; it needs no render and no server.
    return any(arg in (NO_SERVER_FLAG, "-h", "--help") for arg in argv)


def forward(argv: Sequence[str]) -> int | None:
    """Run `tidegate preview argv` in the warm server; None when this process must run it."""
    if disabled(argv):
        return None
    try:
        conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    except OSError:
        return None
    try:
        try:
            conn.connect(_socket_file())
        except OSError:
            return None  # no server (or a stale socket): the usual in-process preview
        try:
            # Ctrl-C ends the request as it ends an in-process preview (`cli.preview` sets its own
            # handler too), also where the shell started us with SIGINT ignored (a background
            # job): Python then leaves it ignored, and the client would wait for the whole render.
            _signal.signal(_signal.SIGINT, _signal.default_int_handler)
            return _exchange(conn, argv)
        except KeyboardInterrupt:
            # As in-process: one line and 130. Closing the socket tells the server to abandon it.
            sys.stderr.write("tidegate: interrupted\n")
            return EXIT_INTERRUPTED
    finally:
        conn.close()


def _exchange(conn: _socket.socket, argv: Sequence[str]) -> int | None:
    if not _same_user(conn):
        _fallback("the preview server's socket belongs to another user")
        return None
    try:
        hello = preview_wire.read(conn.recv)
    except (OSError, ValueError):
        hello = None
    if hello is None or hello.get("identity") != identity():
        _fallback("the running preview server runs other code")
        return None
    try:
        conn.sendall(preview_wire.encode(_request(argv)))
        return _relay(conn)
    except _RefusedError as refused:
        _fallback(str(refused))
        return None
    except (OSError, ValueError):
        sys.stderr.write(
            "tidegate: error: the preview server stopped before the preview ended; run the "
            f"command again (or with {DISABLE_ENV}=off)\n"
        )
        return EXIT_ERROR


class _RefusedError(Exception):
    """The server will not run this request; nothing was written."""


def _request(argv: Sequence[str]) -> dict[str, Any]:
    mask = os.umask(0o077)
    os.umask(mask)
    return {
        "op": "preview",
        "identity": identity(),
        "argv": list(argv),
        "cwd": os.getcwd(),
        "umask": mask,
        # The whole environment, as an in-process preview sees it; the server sets it for this
        # request only and restores its own after (requests run one at a time).
        "env": dict(os.environ),
        "tty": [_isatty(sys.stdout), _isatty(sys.stderr)],
        "columns": _columns(),
    }


def _relay(conn: _socket.socket) -> int:
    while True:
        message = preview_wire.read(conn.recv)
        if message is None:
            raise ValueError("end of answer")
        if "refused" in message:
            raise _RefusedError(str(message["refused"]))
        if "out" in message:
            sys.stdout.write(str(message["out"]))
            sys.stdout.flush()
        elif "err" in message:
            sys.stderr.write(str(message["err"]))
            sys.stderr.flush()
        elif "code" in message:
            return int(message["code"])


def _fallback(reason: str) -> None:
    sys.stderr.write(f"tidegate: {reason}; previewing in this process\n")
    return None


def _same_user(conn: _socket.socket) -> bool:
    try:
        creds = conn.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return False
    _pid, uid, _gid = struct.unpack("3i", creds)
    return bool(uid == os.getuid())


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _columns() -> int | None:
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns if sys.__stdout__ else None
    except (OSError, ValueError):
        return None
