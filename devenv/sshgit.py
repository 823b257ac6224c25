"""A local git server over SSH, for development and tests: an unprivileged sshd on loopback.

It serves the same bare repositories as `devenv.gitserver.GitServer` (a root directory of
`<name>.git`) through OpenSSH's `sshd`, run as the current user on a free 127.0.0.1 port with
its own configuration, host key and authorized key. The key may only run `git-upload-pack` or
`git-receive-pack` on a repository under the root (a forced command checks the request), with
no shell, terminal or forwarding. Clients log in as the current user with `client_key`
(OpenSSH private key) and trust the server through `known_hosts`.

Keys are generated with `cryptography` at start and written unencrypted under a private state
directory; everything is for loopback tests and must never face a network. `sshd` comes from
the `openssh-server` package, which `scripts/dev` installs.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from devenv.ports import START_ATTEMPTS, free_port, port_taken

__all__ = ["SSHD", "SSHGitServer", "new_key"]

SSHD = Path("/usr/sbin/sshd")
"""Where Debian's openssh-server installs sshd."""

# sshd runs this for every login of the authorized key: only git's two services, only below
# the root, never a `..`.
_FORCED_COMMAND = r"""#!/bin/sh
set -eu
request="${SSH_ORIGINAL_COMMAND:-}"
case "$request" in
  "git-upload-pack '"*"'") service=git-upload-pack ;;
  "git-receive-pack '"*"'") service=git-receive-pack ;;
  *) echo "this server only serves git fetch and push" >&2; exit 1 ;;
esac
path="${request#* \'}"
path="${path%\'}"
path="${path#/}"
case "$path" in
  ""|*..*|*\'*) echo "invalid repository path" >&2; exit 1 ;;
esac
exec "$service" "$GIT_ROOT/$path"
"""

_START_TIMEOUT = 120.0  # generous: the machine may be busy


def new_key() -> tuple[bytes, str]:
    """Return a new Ed25519 key: the OpenSSH private key and the public key line."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, public.decode()


class SSHGitServer:
    """Serve the bare repositories under `root` over SSH on 127.0.0.1.

    Use it as a context manager (or `start`/`stop`). Clone URLs are
    `ssh://<user>@127.0.0.1:<port>/<name>.git`.
    """

    def __init__(self, root: Path) -> None:
        """Prepare a server and its keys; nothing listens until `start`.

        Args:
            root: Directory holding the bare repositories (shared with an HTTP `GitServer`).
        """
        self._root = root.resolve()
        self._state = Path(tempfile.mkdtemp(prefix="ssh-git-server-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._port = 0
        self.user = getpass.getuser()
        """The account clients log in as: sshd run unprivileged admits only its own user."""
        self.client_key, self._client_public = new_key()
        """The OpenSSH private key the server authorizes."""
        self._host_key, self.host_public_key = new_key()

    @property
    def port(self) -> int:
        """The port sshd listens on."""
        if self._proc is None:
            raise RuntimeError("the SSH git server is not running")
        return self._port

    @property
    def known_hosts(self) -> str:
        """A known_hosts line that trusts this server's host key at its address."""
        return f"[127.0.0.1]:{self.port} {self.host_public_key}\n"

    def repo_url(self, name: str) -> str:
        """The clone URL of a repository (`<name>.git` under the root)."""
        return f"ssh://{self.user}@127.0.0.1:{self.port}/{name.removesuffix('.git')}.git"

    def start(self) -> None:
        """Write the configuration and keys, start sshd and wait until it accepts connections."""
        if self._proc is not None:
            return
        if not SSHD.exists():
            raise RuntimeError(f"{SSHD} is missing: install openssh-server (scripts/dev does)")
        if os.geteuid() == 0:
            # sshd started as root insists on its privilege separation directory.
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        config = self._write_state()
        # A port another process took between choosing and binding it costs one more try.
        for attempt in range(1, START_ATTEMPTS + 1):
            self._port = free_port()
            log = (self._state / "sshd.log").open("wb")
            with log:
                self._proc = subprocess.Popen(
                    [str(SSHD), "-D", "-e", "-f", str(config), "-p", str(self._port)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    env={"PATH": os.environ.get("PATH", os.defpath)},
                )
            try:
                self._wait_listening()
                return
            except RuntimeError as exc:
                if attempt == START_ATTEMPTS or not port_taken(str(exc)):
                    raise

    def stop(self) -> None:
        """Stop sshd and remove its state directory."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for path in sorted(self._state.rglob("*"), reverse=True):
            with contextlib.suppress(OSError):
                path.rmdir() if path.is_dir() else path.unlink()
        with contextlib.suppress(OSError):
            self._state.rmdir()

    def __enter__(self) -> SSHGitServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _write_state(self) -> Path:
        state = self._state
        state.chmod(0o700)
        host_key = state / "host_ed25519"
        _write_private(host_key, self._host_key)
        forced = state / "git-only"
        forced.write_text(_FORCED_COMMAND)
        forced.chmod(0o700)
        command = f"GIT_ROOT={shlex.quote(str(self._root))} exec {shlex.quote(str(forced))}"
        options = f'command="{command}",restrict'
        authorized = state / "authorized_keys"
        _write_private(authorized, f"{options} {self._client_public}\n".encode())
        config = state / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    "ListenAddress 127.0.0.1",
                    f"HostKey {host_key}",
                    f"PidFile {state / 'sshd.pid'}",
                    f"AuthorizedKeysFile {authorized}",
                    f"AllowUsers {self.user}",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    # Root may log in with the key alone when the tests run as root.
                    "PermitRootLogin prohibit-password",
                    "UsePAM no",
                    # The state directory lives under the system temporary directory.
                    "StrictModes no",
                    "AllowTcpForwarding no",
                    "AllowAgentForwarding no",
                    "X11Forwarding no",
                    "PermitTTY no",
                    "PrintMotd no",
                    "AcceptEnv GIT_PROTOCOL",
                    "LogLevel ERROR",
                    f"Subsystem sftp {sys.executable} -c 'raise SystemExit(1)'",
                    "",
                ]
            )
        )
        return config

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                log = (self._state / "sshd.log").read_text(errors="replace")
                self._proc = None
                raise RuntimeError(f"sshd exited at start: {log.strip()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self._port), timeout=1) as probe,
            ):
                if probe.recv(4).startswith(b"SSH-"):
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd did not listen on 127.0.0.1:{self._port} in time")


def _write_private(path: Path, content: bytes) -> None:
    path.touch(mode=0o600)
    path.write_bytes(content)
