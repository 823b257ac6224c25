"""HTTPS through the pinned connection: the name is verified, and https never goes back to http.

The server is real TLS on loopback with a certificate made for the test; the resolver seam maps
its made-up name to 127.0.0.1, because no DNS here knows the name.
"""

from __future__ import annotations

import datetime
import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.fetch import FetchError, FetchPolicy, fetch
from tests.fetch.servers import LEAKY_BODY, Handler, Server

NAME = "charts.test"


def _certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    cert_file, key_file = _certificate(tmp_path)
    state = Server("", 0, {})
    handler = type("BoundHandler", (Handler,), {"server_state": state})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    state.port = server.server_address[1]
    state.url = f"https://{NAME}:{state.port}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state, cert_file
    finally:
        server.shutdown()
        server.server_close()


def _policy(server: Server, ca_file: Path, *more: str) -> FetchPolicy:
    return FetchPolicy(
        allowed_hosts=frozenset({f"{NAME}:{server.port}", *more}),
        allow_loopback=True,
        resolver=lambda host, port: ["127.0.0.1"] if host == NAME else [],
        ca_file=str(ca_file),
    )


def test_https_connects_to_the_checked_address_and_verifies_the_name(
    tls: tuple[Server, Path],
) -> None:
    server, ca_file = tls
    server.routes["/index.yaml"] = lambda h: h.reply(200, b"entries: {}\n")
    got = fetch(f"{server.url}/index.yaml", policy=_policy(server, ca_file), max_bytes=100)
    assert got.body == b"entries: {}\n"
    assert server.seen[0][1]["host"] == f"{NAME}:{server.port}"


def test_a_certificate_for_another_name_is_refused(tls: tuple[Server, Path]) -> None:
    server, ca_file = tls
    policy = FetchPolicy(
        allowed_hosts=frozenset({f"127.0.0.1:{server.port}"}),
        allow_loopback=True,
        ca_file=str(ca_file),
    )
    with pytest.raises(FetchError) as caught:
        fetch(f"https://127.0.0.1:{server.port}/", policy=policy, max_bytes=100)
    assert caught.value.reason == "TLS certificate verification failed"
    assert server.seen == []


def test_a_redirect_from_https_to_http_is_refused(tls: tuple[Server, Path]) -> None:
    server, ca_file = tls
    server.routes["/index.yaml"] = lambda h: h.redirect(f"http://{NAME}:{server.port}/plain")
    with pytest.raises(FetchError) as caught:
        fetch(
            f"{server.url}/index.yaml",
            policy=_policy(server, ca_file),
            max_bytes=100,
        )
    assert caught.value.reason == "refused: redirect from https to http"
    assert LEAKY_BODY.decode() not in str(caught.value)
    assert [path for path, _ in server.seen] == ["/index.yaml"]


def test_the_documented_defaults() -> None:
    policy = FetchPolicy()
    assert policy.allowed_hosts == frozenset()
    assert (policy.allow_loopback, policy.allow_private) == (False, False)
    assert (policy.connect_timeout, policy.total_timeout, policy.max_redirects) == (5.0, 60.0, 3)
