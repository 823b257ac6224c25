"""A local git server over smart HTTP, for development and tests.

It serves the bare repositories under one root directory through `git http-backend` run as CGI,
so clones, fetches (protocol v0 and v2) and pushes behave as against a real git host. Anyone may
fetch unless the server is private; pushing needs HTTP Basic credentials from the configured
users, and a bearer token stands for its user as a git host's access token does. With a serving
certificate (from `devenv.pki`) it speaks HTTPS. It runs on `core.host.serving`, the artifact
server's serving helper too. It binds to loopback only and is not meant to
face a network: no rate limits, passwords and tokens kept in memory.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import re
import socket
import ssl
import subprocess
import tempfile
import threading
from base64 import b64decode
from binascii import Error as Base64Error
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler
from io import BufferedIOBase, BufferedReader
from pathlib import Path
from types import TracebackType
from typing import IO, cast
from urllib.parse import parse_qs, quote, unquote, urlsplit

from core.host.serving import Serving, ThreadedServer
from devenv.pki import KeyPair

__all__ = ["GitServer"]

_log = logging.getLogger(__name__)

# Repository names: path segments of safe characters, so a name can never climb out of the root.
_REPO_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*(?:/[A-Za-z0-9_][A-Za-z0-9._-]*)*")

# What a client may ask git for in the Git-Protocol header (`version=2`, `key=value:...`).
_GIT_PROTOCOL = re.compile(r"[A-Za-z0-9=:._-]{1,256}")

_CHUNK = 1 << 16
_REALM = "tidegate-dev"

# The environment git http-backend runs in: nothing of the user's or the machine's git config.
_BASE_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_HTTP_EXPORT_ALL": "1",
}


class GitServer:
    """Serve bare repositories under `root` over smart HTTP on 127.0.0.1.

    Use it as a context manager (or `start`/`stop`). Repositories are `<root>/<name>.git`.
    """

    def __init__(
        self,
        root: Path,
        users: Mapping[str, str],
        *,
        tokens: Mapping[str, str] | None = None,
        tls: KeyPair | None = None,
        private: bool = False,
    ) -> None:
        """Prepare a server; nothing listens until `start`.

        Args:
            root: Directory holding the bare repositories; created if missing.
            users: User name -> password of those allowed to push.
            tokens: Bearer token -> the user it authenticates.
            tls: Serving certificate and key: serve HTTPS instead of HTTP.
            private: Whether fetching needs credentials too.
        """
        self._root = root.resolve()
        self._users = dict(users)
        self._tokens = dict(tokens or {})
        self._tls = tls
        self._private = private
        self._serving = Serving(
            self._make_server, name="git-server", scheme="https" if tls is not None else "http"
        )

    @property
    def root(self) -> Path:
        """The directory holding the bare repositories."""
        return self._root

    @property
    def url(self) -> str:
        """Base URL, such as `http://127.0.0.1:41234`."""
        return self._serving.url

    def start(self) -> None:
        """Bind a free loopback port and serve in a background thread."""
        self._serving.start()

    def stop(self) -> None:
        """Stop serving, cut open connections and wait for their handlers to finish."""
        self._serving.stop()

    def __enter__(self) -> GitServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _make_server(self) -> _Server:
        self._root.mkdir(parents=True, exist_ok=True)
        backend = Path(_git("--exec-path").strip()) / "git-http-backend"
        return _Server(
            self._root, _Access(self._users, self._tokens, self._private), backend, self._tls
        )

    def create_repo(self, name: str, *, default_branch: str = "main") -> Path:
        """Create an empty bare repository that authenticated users may push to.

        Args:
            name: Repository name, optionally with `/` segments and a `.git` suffix.
            default_branch: The branch its HEAD points to.

        Returns:
            The path of the bare repository.
        """
        path = self._root / _repo_path(name)
        _git("init", "--quiet", "--bare", f"--initial-branch={default_branch}", str(path))
        _git("config", "--file", str(path / "config"), "http.receivepack", "true")
        return path

    def repo_url(self, name: str, user: str | None = None) -> str:
        """Return the clone URL of a repository, with `user`'s credentials embedded if given."""
        path = _repo_path(name)
        if user is None:
            return f"{self.url}/{path}"
        if user not in self._users:
            raise KeyError(f"unknown git server user {user!r}")
        credentials = f"{quote(user, safe='')}:{quote(self._users[user], safe='')}"
        return f"{self.url.replace('://', f'://{credentials}@', 1)}/{path}"


def _repo_path(name: str) -> str:
    """Return `<name>.git` after checking the name stays inside the root."""
    bare = name.removesuffix(".git")
    if not _REPO_NAME.fullmatch(bare):
        raise ValueError(f"invalid repository name {name!r}")
    return f"{bare}.git"


def _git(*args: str) -> str:
    env = {"PATH": os.environ.get("PATH", os.defpath), **_BASE_ENV}
    done = subprocess.run(["git", *args], capture_output=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"git {args[0]} failed: {done.stderr.decode(errors='replace')}")
    return done.stdout.decode()


class _Access:
    """Who may do what: users' passwords, bearer tokens, and whether fetching is open."""

    def __init__(self, users: Mapping[str, str], tokens: Mapping[str, str], private: bool) -> None:
        self.users = users
        self.tokens = tokens
        self.private = private


class _Server(ThreadedServer):
    """The HTTP server, holding what handlers need."""

    # Handler threads are joined on close, after `Serving.stop` has cut their connections.
    daemon_threads = False
    block_on_close = True

    def __init__(self, root: Path, access: _Access, backend: Path, tls: KeyPair | None) -> None:
        self.repo_root = root
        self.access = access
        self.backend = backend
        self._tls = _server_context(tls) if tls is not None else None
        super().__init__(("127.0.0.1", 0), _Handler)

    def get_request(self) -> tuple[socket.socket, object]:
        """Accept a connection; with TLS, its handshake runs later in the handler's thread."""
        connection, address = super().get_request()
        if self._tls is None:
            return connection, address
        # Not here: a client that never finishes its handshake would block every other accept.
        wrapped = self._tls.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        return wrapped, address


class _Handler(BaseHTTPRequestHandler):
    """One HTTP connection: authenticate, then hand each request to git http-backend."""

    server: _Server
    # HTTP/1.1 for keep-alive, chunked request bodies (large pushes) and 100-continue.
    protocol_version = "HTTP/1.1"
    # Seconds a read from the client may block, so a stalled client cannot hold a thread.
    timeout = 60

    def setup(self) -> None:
        """Finish the TLS handshake in this connection's thread."""
        self.handshake_failed = False
        self.request.settimeout(self.timeout)
        if isinstance(self.request, ssl.SSLSocket):
            try:
                self.request.do_handshake()
            except OSError:  # ssl.SSLError included: a client that distrusts our CA
                _log.debug("TLS handshake with %s failed", self.client_address[0])
                self.handshake_failed = True
        super().setup()

    def handle(self) -> None:
        """Serve requests unless the TLS handshake failed (then there is nobody to answer)."""
        if not self.handshake_failed:
            super().handle()

    def do_GET(self) -> None:
        """Serve ref advertisements and other reads."""
        self._serve()

    def do_POST(self) -> None:
        """Serve upload-pack and receive-pack exchanges."""
        self._serve()

    def log_message(self, format: str, *args: object) -> None:
        """Send access logs to logging instead of stderr."""
        _log.debug("%s %s", self.address_string(), format % args)

    def _serve(self) -> None:
        url = urlsplit(self.path)
        path_info = unquote(url.path)
        if ".." in path_info.split("/"):
            self._reply(404, "Not Found")
            return
        user = self._authenticate(path_info, url.query)
        if user is None:
            return
        self._run_backend(self._cgi_env(path_info, url.query, user))

    def _authenticate(self, path_info: str, query: str) -> str | None:
        """Return the user ("" if anonymous), or answer 401 and return None.

        Anonymous requests may fetch; pushes and any wrong credentials are challenged.
        """
        header = self.headers.get("Authorization")
        if header is None:
            if not _is_push(path_info, query) and not self.server.access.private:
                return ""
        else:
            user = self._check_credentials(header)
            if user is not None:
                return user
        self._reply(401, "Unauthorized", {"WWW-Authenticate": f'Basic realm="{_REALM}"'})
        return None

    def _check_credentials(self, header: str) -> str | None:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() == "bearer":
            return _token_user(self.server.access.tokens, encoded.strip())
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = b64decode(encoded, validate=True).decode().partition(":")
        except (Base64Error, UnicodeDecodeError):
            return None
        expected = self.server.access.users.get(user)
        # Compare in constant time so that timing does not reveal a password.
        if expected is None or not hmac.compare_digest(password.encode(), expected.encode()):
            return None
        return user

    def _cgi_env(self, path_info: str, query: str, user: str) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            **_BASE_ENV,
            "GIT_PROJECT_ROOT": str(self.server.repo_root),
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": self.request_version,
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path_info,
            "QUERY_STRING": query,
            "REMOTE_ADDR": self.client_address[0],
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
        }
        if (length := self.headers.get("Content-Length")) is not None:
            env["CONTENT_LENGTH"] = length
        if encoding := self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = encoding  # git inflates gzip request bodies itself
        if user:
            env["REMOTE_USER"] = user
            env["AUTH_TYPE"] = self.headers.get("Authorization", "").partition(" ")[0]
        protocol = self.headers.get("Git-Protocol", "")
        if _GIT_PROTOCOL.fullmatch(protocol):
            env["GIT_PROTOCOL"] = protocol
        return env

    def _run_backend(self, env: dict[str, str]) -> None:
        with tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen(
                [str(self.server.backend)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                env=env,
                cwd=self.server.repo_root,
            )
            try:
                self._exchange(proc)
            finally:
                _finish(proc)
                if proc.returncode:
                    errors.seek(0)
                    _log.warning("git http-backend failed: %s", errors.read().decode("replace"))

    def _exchange(self, proc: subprocess.Popen[bytes]) -> None:
        """Stream the request body in and the response out at the same time."""
        if proc.stdin is None or proc.stdout is None:  # never with PIPE; narrows the types
            raise RuntimeError("git http-backend has no pipes")
        # A separate thread feeds the body: git may answer before reading all of it, and
        # neither side may block on a full pipe.
        feeder = _BodyFeeder(self, proc.stdin)
        feeder.start()
        try:
            self._relay(cast(BufferedReader, proc.stdout))
        except ConnectionError:
            self.close_connection = True  # the client went away mid-response
        finally:
            feeder.join()
        if not feeder.complete:
            self.close_connection = True  # the rest of the body is still on the socket

    def _relay(self, stdout: BufferedReader) -> None:
        status, headers = _read_cgi_headers(stdout)
        code, _, reason = status.partition(" ")
        self.send_response(int(code), reason or None)
        for name, value in headers:
            self.send_header(name, value)
        chunked = not any(name.lower() == "content-length" for name, _ in headers)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while data := stdout.read1(_CHUNK):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            self.wfile.flush()  # pack data and progress go out as git produces them
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _reply(self, code: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        body = f"{message}\n".encode()
        self.send_response(code)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        # An unread request body would be taken for the next request.
        if self.headers.get("Content-Length") or self.headers.get("Transfer-Encoding"):
            self.close_connection = True


class _BodyFeeder(threading.Thread):
    """Copies a request body (sized or chunked) into the CGI process's stdin, then closes it."""

    def __init__(self, handler: _Handler, stdin: IO[bytes]) -> None:
        super().__init__(name="git-server-body", daemon=True)
        self._handler = handler
        self._stdin = stdin
        self.complete = False

    def run(self) -> None:
        try:
            for data in _request_body(self._handler):
                self._stdin.write(data)
            self.complete = True
        except (OSError, ValueError):
            # git stopped reading (it answered an error) or the client went away.
            _log.debug("request body not fully delivered to git http-backend")
        finally:
            with contextlib.suppress(BrokenPipeError):
                self._stdin.close()


def _server_context(tls: KeyPair) -> ssl.SSLContext:
    """A TLS 1.2+ server context for the certificate; its files live only while loading."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory(prefix="git-server-tls-") as directory:
        cert, key = tls.write(Path(directory), "serving")
        context.load_cert_chain(cert, key)
    return context


def _token_user(tokens: Mapping[str, str], presented: str) -> str | None:
    """The user a bearer token stands for, compared in constant time against each token."""
    found = None
    for token, user in tokens.items():
        if hmac.compare_digest(presented.encode(), token.encode()):
            found = user
    return found


def _is_push(path_info: str, query: str) -> bool:
    """Whether a request is part of a push: its ref advertisement or its pack upload."""
    service = parse_qs(query).get("service", [])
    return path_info.endswith("/git-receive-pack") or "git-receive-pack" in service


def _request_body(handler: _Handler) -> Iterator[bytes]:
    """Yield the request body in pieces, decoding chunked transfer encoding."""
    rfile = handler.rfile
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        yield from _chunked(rfile)
        return
    remaining = int(handler.headers.get("Content-Length") or 0)
    while remaining > 0:
        data = rfile.read(min(_CHUNK, remaining))
        if not data:
            raise ConnectionError("request body ended early")
        remaining -= len(data)
        yield data


def _chunked(rfile: BufferedIOBase) -> Iterator[bytes]:
    while True:
        line = rfile.readline(1024)
        if not line:
            raise ConnectionError("chunked request body ended early")
        size = int(line.split(b";", 1)[0].strip(), 16)  # a chunk extension may follow `;`
        if size == 0:
            # Skip trailers up to the blank line that ends the body.
            while rfile.readline(1024).strip():
                pass
            return
        while size > 0:
            data = rfile.read(min(_CHUNK, size))
            if not data:
                raise ConnectionError("chunked request body ended early")
            size -= len(data)
            yield data
        rfile.readline(3)  # the CRLF after each chunk


def _read_cgi_headers(stdout: IO[bytes]) -> tuple[str, list[tuple[str, str]]]:
    """Read CGI response headers; `Status:` becomes the HTTP status, 200 by default."""
    status = "200 OK"
    headers: list[tuple[str, str]] = []
    while line := stdout.readline(8192).rstrip(b"\r\n"):
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "status":
            status = value.strip()
        else:
            headers.append((name.strip(), value.strip()))
    if not headers and status == "200 OK":
        return "502 Bad Gateway", [("Content-Length", "0")]  # the backend printed nothing
    return status, headers


def _finish(proc: subprocess.Popen[bytes]) -> None:
    """Reap the CGI process, killing it if the exchange was cut short."""
    # Closed first: if the client went away, git's next write fails instead of blocking.
    if proc.stdout is not None:
        proc.stdout.close()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
