"""Loopback ports: a refusing port stays refused, and each development server started on a free
port tries another when a different process took the first one before the server bound it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from devenv import ports, postgres, registry, sshgit
from devenv.postgres import PostgresServer
from devenv.registry import Registry
from devenv.sshgit import SSHGitServer


@pytest.fixture
def taken() -> Iterator[int]:
    """A loopback port another socket listens on for the whole test."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def _first_taken(monkeypatch: pytest.MonkeyPatch, module: object, taken: int) -> list[int]:
    """Make `module.free_port` return `taken` once, then real free ports; return all it gave."""
    given: list[int] = []

    def port() -> int:
        given.append(taken if not given else ports.free_port())
        return given[-1]

    monkeypatch.setattr(module, "free_port", port)
    return given


def test_a_refusing_port_refuses_connections_and_no_one_else_can_listen_on_it() -> None:
    with ports.refusing_port() as port:
        with socket.socket() as client, pytest.raises(ConnectionRefusedError):
            client.connect(("127.0.0.1", port))
        with socket.socket() as other:
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with pytest.raises(OSError, match="Address already in use"):
                other.bind(("127.0.0.1", port))


def test_sshd_starts_on_another_port_when_its_first_is_taken(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, taken: int
) -> None:
    given = _first_taken(monkeypatch, sshgit, taken)
    with SSHGitServer(tmp_path) as server:
        assert given[0] == taken
        assert server.port == given[-1] != taken
        with socket.create_connection(("127.0.0.1", server.port), timeout=60) as probe:
            assert probe.recv(4) == b"SSH-"


def test_sshd_gives_up_naming_the_port_conflict_when_every_port_is_taken(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, taken: int
) -> None:
    monkeypatch.setattr(sshgit, "free_port", lambda: taken)
    server = SSHGitServer(tmp_path)
    try:
        with pytest.raises(RuntimeError, match=r"(?i)address already in use"):
            server.start()
    finally:
        server.stop()


def test_postgres_starts_on_another_port_when_its_first_is_taken(
    monkeypatch: pytest.MonkeyPatch, taken: int
) -> None:
    given = _first_taken(monkeypatch, postgres, taken)
    with PostgresServer() as server:
        assert given[0] == taken
        assert server.port == given[-1] != taken
        url = server.url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url) as connection:
            assert connection.execute("select 1").fetchone() == (1,)


def test_the_registry_starts_on_another_port_when_its_first_is_taken(
    monkeypatch: pytest.MonkeyPatch, registry_bin: Path, tmp_path: Path, taken: int
) -> None:
    given = _first_taken(monkeypatch, registry, taken)
    with Registry(registry_bin, tmp_path / "registry") as started:
        assert given[0] == taken
        assert started.port == given[-1] != taken
        assert started.host == f"127.0.0.1:{started.port}"
