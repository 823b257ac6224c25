"""The live adapter's lean HTTPS transport: on the control plane, and on a TLS server of our own.

The control plane shows that the adapter's requests no longer go through the Kubernetes
client's request path and still carry its credentials and impersonation. A loopback TLS server
that closes every connection after one answer shows the resend on a closed kept-alive
connection, and the bearer token taken through the client's own refresh hook.
"""

from __future__ import annotations

import json
import ssl
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from kubernetes import client as k8s

from core.cluster.live import LiveCluster, service_account_user
from core.cluster.port import Forbidden, NotFound
from core.cluster.transport import Transport
from devenv.pki import CertificateAuthority

TIMEOUTS = (10.0, 60.0)


@pytest.mark.cluster
def test_the_adapter_talks_to_the_apiserver_without_the_clients_request_path(
    kube_client: Any, namespace: str
) -> None:
    port = LiveCluster(kube_client)
    calls: list[str] = []
    original = kube_client.call_api

    def record(*args: Any, **kwargs: Any) -> Any:
        calls.append(str(args[0]))
        return original(*args, **kwargs)

    kube_client.call_api = record
    try:
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "lean", "namespace": namespace},
            "data": {"a": "1"},
        }
        created = port.apply(body)
        assert created["metadata"]["resourceVersion"]
        assert port.get("v1", "ConfigMap", namespace, "lean")["data"] == {"a": "1"}
        with pytest.raises(NotFound, match=f"ConfigMap/{namespace}/gone"):
            port.get("v1", "ConfigMap", namespace, "gone")
        # Impersonation still goes with every request: a ServiceAccount without RBAC is refused.
        view = port.impersonating(service_account_user(namespace, "nobody"))
        with pytest.raises(Forbidden):
            view.get("v1", "ConfigMap", namespace, "lean")
    finally:
        kube_client.call_api = original
        port.close()
    assert calls == []


class _Recorder(BaseHTTPRequestHandler):
    """Answers every request with a JSON object and then closes the connection (`keep` keeps it).

    Records each request's headers, and each connection's client port.
    """

    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[dict[str, str]]] = []
    ports: ClassVar[set[int]] = set()
    keep: ClassVar[bool] = False

    def do_GET(self) -> None:
        type(self).seen.append(dict(self.headers))
        type(self).ports.add(int(self.client_address[1]))
        data = json.dumps({"kind": "Status", "ok": True}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        # Close without saying so (no "Connection: close"): the client finds out on its next
        # request over this connection, as with an apiserver that dropped an idle one.
        self.close_connection = not type(self).keep

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def tls_server() -> Iterator[tuple[str, Path]]:
    authority = CertificateAuthority.create()
    with tempfile.TemporaryDirectory(prefix="transport-") as scratch:
        directory = Path(scratch)
        ca_path, _ = authority.write(directory)
        cert, key = authority.serving("loopback", ips=["127.0.0.1"]).write(directory, "serving")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        _Recorder.seen.clear()
        _Recorder.ports.clear()
        _Recorder.keep = False
        try:
            yield f"https://127.0.0.1:{server.server_address[1]}", ca_path
        finally:
            server.shutdown()
            server.server_close()


def _client(host: str, ca: Path, token: str) -> Any:
    configuration = k8s.Configuration()
    configuration.host = host
    configuration.ssl_ca_cert = str(ca)
    configuration.api_key = {"authorization": "stale"}
    configuration.api_key_prefix = {"authorization": "Bearer"}

    def refresh(config: Any) -> None:
        # What the kubeconfig loader's hook does for an exec plugin or a rotated token file.
        config.api_key["authorization"] = token

    configuration.refresh_api_key_hook = refresh
    return k8s.ApiClient(configuration, "Impersonate-User", "someone")


def test_a_connection_the_server_closed_is_replaced_and_the_request_sent_again(
    tls_server: tuple[str, Path],
) -> None:
    host, ca = tls_server
    transport = Transport.for_client(_client(host, ca, "fresh"), TIMEOUTS)
    assert transport is not None

    answers = [
        transport.request("GET", f"/api/v1/thing-{i}", headers={"Accept": "application/json"})
        for i in range(3)
    ]

    assert [json.loads(a.body)["ok"] for a in answers] == [True, True, True]
    assert len(_Recorder.seen) == 3
    for headers in _Recorder.seen:
        assert headers["authorization"] == "Bearer fresh"
        assert headers["Impersonate-User"] == "someone"
    transport.close()


def test_a_configuration_the_transport_does_not_cover_keeps_the_clients_path(
    tls_server: tuple[str, Path],
) -> None:
    host, ca = tls_server
    assert Transport.for_client(_client(host, ca, "t"), TIMEOUTS) is not None
    for change in (
        {"proxy": "http://127.0.0.1:3128"},
        {"verify_ssl": False},
        {"ssl_ca_cert": None},
        {"tls_server_name": "elsewhere"},
        {"host": host.replace("https://", "http://")},
    ):
        api = _client(host, ca, "t")
        for name, value in change.items():
            setattr(api.configuration, name, value)
        assert Transport.for_client(api, TIMEOUTS) is None, change


def test_threads_one_after_another_share_one_kept_alive_connection(
    tls_server: tuple[str, Path],
) -> None:
    # Each apply stage runs its requests on new threads: connections must not pile up per thread.
    host, ca = tls_server
    _Recorder.keep = True
    transport = Transport.for_client(_client(host, ca, "t"), TIMEOUTS)
    assert transport is not None

    for i in range(10):
        thread = threading.Thread(
            target=transport.request, args=("GET", f"/api/v1/thing-{i}"), kwargs={"headers": {}}
        )
        thread.start()
        thread.join()

    assert len(_Recorder.seen) == 10
    assert len(_Recorder.ports) == 1
    transport.close()
