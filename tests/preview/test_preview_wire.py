"""The preview server's frames, on a real socket pair: what goes in comes out, anything else is
refused without being read whole."""

from __future__ import annotations

import marshal
import socket
import threading
from collections.abc import Iterator

import pytest

from cli import preview_wire


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    ours.settimeout(5)
    with ours, theirs:
        yield ours, theirs


def test_messages_arrive_whole_and_in_order(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    request = {
        "argv": ["--format", "json", "ümlaut \udcff"],  # a lone surrogate: a non-UTF-8 path
        "env": {"HOME": "/home/someone"},
        "umask": 0o022,
        "tty": [True, False],
        "columns": None,
    }
    big = {"out": "x" * (3 << 20)}  # more than one recv

    def send() -> None:  # from another thread: the frames are larger than the socket's buffer
        theirs.sendall(preview_wire.encode(request) + preview_wire.encode(big))
        theirs.shutdown(socket.SHUT_WR)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        assert preview_wire.read(ours.recv) == request
        assert preview_wire.read(ours.recv) == big
        assert preview_wire.read(ours.recv) is None  # closed between frames
    finally:
        sender.join(10)


def test_a_peer_that_closes_inside_a_frame_is_an_error(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    theirs.sendall(preview_wire.encode({"code": 0})[:-1])
    theirs.shutdown(socket.SHUT_WR)

    with pytest.raises(preview_wire.FrameError, match="closed inside a frame"):
        preview_wire.read(ours.recv)


def test_an_oversized_frame_is_refused_by_its_length(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    theirs.sendall((preview_wire.MAX_FRAME + 1).to_bytes(4, "big"))  # and no body at all

    with pytest.raises(preview_wire.FrameError, match="over the limit"):
        preview_wire.read(ours.recv)


@pytest.mark.parametrize(
    "body", [marshal.dumps(["not", "a", "dict"]), b"\xff garbage"], ids=["list", "garbage"]
)
def test_a_body_that_is_not_a_message_is_refused(
    pair: tuple[socket.socket, socket.socket], body: bytes
) -> None:
    ours, theirs = pair
    theirs.sendall(len(body).to_bytes(4, "big") + body)

    with pytest.raises(preview_wire.FrameError, match="not a message"):
        preview_wire.read(ours.recv)
