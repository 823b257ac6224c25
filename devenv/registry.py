"""A local OCI registry for development and tests: the CNCF distribution registry on loopback.

`Registry` runs the pinned `registry` binary (github.com/distribution/distribution/v3, built from
tools/registry/go.mod) on a free 127.0.0.1 port with filesystem storage in a directory of its own.
With `token_auth=True` it also runs a small token service and configures the registry's `token`
authentication against it, so clients meet the same anonymous `WWW-Authenticate: Bearer` challenge
as on ghcr.io or Docker Hub: the service grants every scope asked for to anyone, with a JWT signed
by a throwaway key whose certificate the registry trusts. No TLS, loopback only, never for a
network.
"""

from __future__ import annotations

import base64
import datetime
import json
import secrets
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from core.errors import TidegateError
from devenv.ports import START_ATTEMPTS, free_port, port_taken

__all__ = ["Registry", "RegistryStartError"]

_LOOPBACK = "127.0.0.1"
_SERVICE = "tidegate-dev-registry"
_ISSUER = "tidegate-dev-token-service"
_START_TIMEOUT = 120.0  # generous: the machine may be busy


class RegistryStartError(TidegateError):
    """The registry did not come up."""


class Registry:
    """The distribution registry on a free loopback port, storing under `root`.

    Use it as a context manager (or `start`/`stop`). `host` is `127.0.0.1:PORT`.
    """

    def __init__(self, binary: Path, root: Path, *, token_auth: bool = False) -> None:
        self.binary = binary
        self.root = root
        self.token_auth = token_auth
        self.port = 0
        self.tokens_issued = 0
        """How many tokens the token service handed out (tests check the challenge was met)."""
        self._process: subprocess.Popen[bytes] | None = None
        self._tokens: _TokenServer | None = None

    @property
    def host(self) -> str:
        """`127.0.0.1:PORT`, as used in `oci://` URLs."""
        return f"{_LOOPBACK}:{self.port}"

    def start(self) -> None:
        """Write the configuration, start the registry and wait until it answers.

        A port another process took between choosing and binding it costs one more try.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        if self.token_auth:
            self._tokens = _TokenServer(self)
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self._launch(free_port())
                return
            except RegistryStartError as exc:
                if attempt == START_ATTEMPTS or not port_taken(str(exc)):
                    self.stop()
                    raise

    def _launch(self, port: int) -> None:
        self.port = port
        config = [
            "version: 0.1",
            "log: {level: warn, accesslog: {disabled: true}}",
            "storage:",
            f"  filesystem: {{rootdirectory: {json.dumps(str(self.root / 'data'))}}}",
            "  delete: {enabled: true}",
            "http:",
            f"  addr: {self.host}",
            f"  secret: {secrets.token_hex(16)}",
        ]
        if self._tokens is not None:
            cert = self.root / "token-signer.crt"
            cert.write_bytes(self._tokens.cert_pem)
            config += [
                "auth:",
                "  token:",
                f"    realm: http://{_LOOPBACK}:{self._tokens.port}/token",
                f"    service: {_SERVICE}",
                f"    issuer: {_ISSUER}",
                f"    rootcertbundle: {json.dumps(str(cert))}",
            ]
        (self.root / "config.yml").write_text("\n".join(config) + "\n")
        log = (self.root / "registry.log").open("wb")
        self._process = subprocess.Popen(
            [str(self.binary), "serve", str(self.root / "config.yml")],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        self._wait()

    def _wait(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RegistryStartError(f"registry exited: {self._log_tail()}")
            try:
                with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2):
                    return
            except urllib.error.HTTPError as exc:
                if exc.code == 401:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RegistryStartError(f"registry did not answer in {_START_TIMEOUT:.0f}s")

    def _log_tail(self) -> str:
        log = self.root / "registry.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else ""

    def stop(self) -> None:
        """Stop the registry and the token service."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._tokens is not None:
            self._tokens.close()
            self._tokens = None

    def __enter__(self) -> Registry:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class _TokenServer:
    """Issues ES256 JWTs granting the requested scopes, as a registry token service does."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _ISSUER)])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.cert_pem = self.cert.public_bytes(serialization.Encoding.PEM)
        self.server = ThreadingHTTPServer((_LOOPBACK, 0), _token_handler(self))
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def issue(self, service: str, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind and name:
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {
            "alg": "ES256",
            "typ": "JWT",
            "x5c": [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()],
        }
        claims = {
            "iss": _ISSUER,
            "sub": "",
            "aud": service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = ".".join(
            _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        self.registry.tokens_issued += 1
        return f"{signing_input}.{_b64url(signature)}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _token_handler(tokens: _TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path != "/token":
                self.send_error(404)
                return
            query = parse_qs(url.query)
            token = tokens.issue((query.get("service") or [_SERVICE])[0], query.get("scope") or [])
            body = json.dumps({"token": token, "access_token": token}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler
