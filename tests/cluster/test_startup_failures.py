"""A component that cannot start fails `ControlPlane.start` with its name and its log tail,
and leaves nothing running behind; a port another process took after it was chosen costs one
more try on new ports.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from devenv.controlplane import ControlPlane, ControlPlaneError, Ports

pytestmark = pytest.mark.cluster


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port something else already listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize(
    ("component", "field"), [("etcd", "etcd"), ("kube-apiserver", "apiserver")]
)
def test_a_component_that_cannot_listen_fails_the_start_by_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, taken_port: int, component: str, field: str
) -> None:
    allocate = Ports.allocate
    monkeypatch.setattr(
        Ports,
        "allocate",
        classmethod(lambda cls: dataclasses.replace(allocate(), **{field: taken_port})),
    )
    plane = ControlPlane(tmp_path / "plane", timeout=120)

    with pytest.raises(ControlPlaneError) as failure:
        plane.start()

    message = str(failure.value)
    assert message.startswith(f"{component} exited with code"), message
    assert f"logs/{component}.log" in message
    assert "address already in use" in message
    assert plane.pids == {}
    assert not (tmp_path / "plane" / "state.json").exists()


def test_a_port_taken_after_it_was_chosen_costs_one_more_try_on_new_ports(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, taken_port: int
) -> None:
    allocate = Ports.allocate
    chosen: list[Ports] = []

    def first_taken(cls: type[Ports]) -> Ports:
        ports = allocate()
        chosen.append(dataclasses.replace(ports, etcd=taken_port) if not chosen else ports)
        return chosen[-1]

    monkeypatch.setattr(Ports, "allocate", classmethod(first_taken))
    with ControlPlane(tmp_path / "plane", fake_nodes=1, timeout=120) as plane:
        assert chosen[0].etcd == taken_port
        assert len(chosen) == 2
        assert plane.ports == chosen[1]
        assert plane.ready()
