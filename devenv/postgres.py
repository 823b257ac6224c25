"""A throw-away PostgreSQL server for development and tests, started with the machine's binaries.

`initdb` makes a cluster in a fresh directory and `postgres` serves it on a free loopback port
(TCP only, no Unix socket), with password authentication for one superuser. PostgreSQL refuses
to run as root, so as root the cluster belongs to, and the server runs as, an unprivileged user
(`nobody`). The binaries come from Debian's `postgresql` package (installed by `scripts/dev`);
when they are missing, `start` says so and how to install them. Not for production data:
`fsync` is off.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from core.errors import TidegateError
from devenv.ports import START_ATTEMPTS, free_port, port_taken

__all__ = ["PostgresServer", "find_binaries"]

_USER = "tidegate"
_PASSWORD = "tidegate-dev-password"  # noqa: S105 - a throw-away loopback server's
_UNPRIVILEGED = "nobody"


def find_binaries() -> Path:
    """The directory holding `initdb` and `postgres` (newest Debian cluster version first).

    Raises:
        TidegateError: no PostgreSQL server binaries are installed.
    """
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for candidate in versions:
        if (candidate / "initdb").is_file() and (candidate / "postgres").is_file():
            return candidate
    found = shutil.which("initdb")
    if found and shutil.which("postgres"):
        return Path(found).resolve().parent
    raise TidegateError(
        "PostgreSQL server binaries (initdb, postgres) not found: run `scripts/dev test`, which "
        "installs Debian's postgresql package, or `apt-get install postgresql`"
    )


class PostgresServer:
    """One PostgreSQL server on 127.0.0.1; use it as a context manager (or `start`/`stop`)."""

    def __init__(self) -> None:
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the `postgres` database as the superuser."""
        return self.database_url("postgres")

    @property
    def pid(self) -> int | None:
        """The server's main process (its backends are its children); None unless started."""
        return self._process.pid if self._process is not None else None

    def database_url(self, name: str) -> str:
        """The SQLAlchemy URL of database `name`."""
        return f"postgresql+psycopg://{_USER}:{_PASSWORD}@127.0.0.1:{self.port}/{name}"

    def start(self, *, timeout: float = 120.0) -> None:
        """Create the cluster and start the server; wait until it accepts connections.

        Raises:
            TidegateError: binaries missing, `initdb` failed, or the server did not come up
                (with the tail of its log).
        """
        binaries = find_binaries()
        # World-traversable parent, so the unprivileged server user can reach its directory.
        self._dir = Path(tempfile.mkdtemp(prefix="tidegate-postgres-"))
        data, log, pwfile = self._dir / "data", self._dir / "server.log", self._dir / "pw"
        pwfile.write_text(_PASSWORD + "\n")
        owner = _unprivileged_ids() if os.geteuid() == 0 else None
        if owner is not None:
            self._dir.chmod(0o755)
            os.chown(self._dir, *owner)
            os.chown(pwfile, *owner)
        initdb = [
            str(binaries / "initdb"),
            "-D",
            str(data),
            "-U",
            _USER,
            "--pwfile",
            str(pwfile),
            "--auth",
            "scram-sha-256",
            "--encoding",
            "UTF8",
            "--no-sync",
        ]
        uid, gid = owner if owner else (None, None)
        groups: list[int] | None = [] if owner else None
        done = subprocess.run(
            initdb, capture_output=True, check=False, user=uid, group=gid, extra_groups=groups
        )
        if done.returncode != 0:
            raise TidegateError(f"initdb failed: {done.stderr.decode(errors='replace')[-2000:]}")
        # A port another process took between choosing and binding it costs one more try.
        for attempt in range(1, START_ATTEMPTS + 1):
            failure = self._launch(binaries, data, log, owner, timeout)
            if failure is None:
                return
            if attempt == START_ATTEMPTS or not port_taken(failure):
                break
        self.stop()
        raise TidegateError(f"PostgreSQL did not start: {failure}")

    def _launch(
        self, binaries: Path, data: Path, log: Path, owner: tuple[int, int] | None, timeout: float
    ) -> str | None:
        """Start the server on a free port; None once it is ready, else the tail of its log."""
        uid, gid = owner if owner else (None, None)
        groups: list[int] | None = [] if owner else None
        self.port = free_port()
        argv = [
            str(binaries / "postgres"),
            "-D",
            str(data),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"port={self.port}",
            "-c",
            "unix_socket_directories=",
            "-c",
            "fsync=off",
            "-c",
            "max_connections=200",
        ]
        with log.open("wb") as out:
            self._process = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                user=uid,
                group=gid,
                extra_groups=groups,
            )
        return self._wait(log, timeout)

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its directory."""
        self._halt()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _halt(self) -> None:
        """Stop the server process, if one runs."""
        if self._process is not None:
            # SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for every client to leave.
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait(self, log: Path, timeout: float) -> str | None:
        """None once the server accepts connections; else the tail of its log (it is stopped)."""
        if self._process is None:
            raise TidegateError("PostgreSQL was not started")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                if b"ready to accept connections" in log.read_bytes():
                    return None
            time.sleep(0.1)
        self._halt()
        return log.read_bytes().decode(errors="replace")[-2000:]


def _unprivileged_ids() -> tuple[int, int]:
    entry = pwd.getpwnam(_UNPRIVILEGED)
    return entry.pw_uid, entry.pw_gid
