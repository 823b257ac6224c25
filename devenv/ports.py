"""Loopback TCP ports for the development servers, the benchmarks and the tests.

The demo's stack, the benchmarks and the tests start servers (and child processes) that must be
told their address before they bind it. `free_port`'s port is free when it returns, not reserved:
a server that binds it later may, rarely, find it taken, and then fails as any bind would; its
starter tries again on another port (`port_taken` recognises that failure in a log).

`refusing_port` is the other need: an address where nothing answers. Its port stays bound (not
listening) while the context is open, so connections to it are refused and no other process can
start listening on it in the meantime.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

__all__ = ["START_ATTEMPTS", "free_port", "port_taken", "refusing_port"]

START_ATTEMPTS = 5
"""Ports a starter tries before it gives up: each try loses only to a rare race."""


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on at this moment."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_taken(log: str) -> bool:
    """Whether a server's output says it could not bind its port because another holds it."""
    return "address already in use" in log.lower()


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses every connection until the context ends."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield int(held.getsockname()[1])
