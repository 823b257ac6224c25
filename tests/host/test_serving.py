"""The serving helper on real loopback sockets: start, URL, stop that cuts idle connections."""

from __future__ import annotations

import http.client
import socket
from http.server import BaseHTTPRequestHandler

import pytest

from core.host.serving import Serving, ThreadedServer


class _Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the connection stays open after the answer

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, format: str, *args: object) -> None:
        pass


def _serving() -> Serving[ThreadedServer]:
    return Serving(lambda: ThreadedServer(("127.0.0.1", 0), _Hello), name="hello server")


def test_it_serves_at_its_url_until_stopped_and_stops_twice() -> None:
    serving = _serving()
    with pytest.raises(RuntimeError, match="the hello server is not running"):
        _ = serving.url
    with serving:
        serving.start()  # already serving: nothing changes
        host, port = serving.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        connection.request("GET", "/")
        assert connection.getresponse().read() == b"hello"
        connection.close()
    serving.stop()
    with socket.socket() as probe:
        assert probe.connect_ex((host, int(port))) != 0  # the port is released


def test_stop_cuts_an_idle_keep_alive_connection() -> None:
    serving = _serving()
    serving.start()
    host, port = serving.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while not answer.endswith(b"hello"):
            answer += client.recv(1024)
        serving.stop()  # the handler thread is blocked reading the next request
        assert client.recv(1024) == b""  # the server closed the connection
