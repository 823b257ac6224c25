"""A loopback TCP port that is free right now, for the development servers and benchmarks.

The demo's stack, the benchmarks and the tests start servers (and child processes) that must be
told their address before they bind it. The port is free when this returns, not reserved: a
server that binds it later may, rarely, find it taken, and then fails as any bind would.
"""

from __future__ import annotations

import socket

__all__ = ["free_port"]


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on at this moment."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
