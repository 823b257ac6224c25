"""The frames spoken on the preview server's socket: one message, a dict of plain values, each.

A frame is its body's length (4 bytes, big-endian), then the body: the message in `marshal`'s
format 4, which is built into the interpreter. The client speaks it on every warm preview, and
`json` would cost it ~8 ms of imports (`re`, `enum`, ...) for a few short messages.

Both ends are the same user's processes, each checks the other's credentials before it reads a
frame, and the hello names the code the server runs; still, a frame longer than `MAX_FRAME` is
refused unread and a body that is not a dict is refused. Nothing here is ever executed.

This module must import nothing beyond the interpreter's built-in modules.
"""

from __future__ import annotations

import marshal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["MAX_FRAME", "FrameError", "encode", "read"]

MAX_FRAME = 64 << 20
_FORMAT = 4
_LENGTH = 4


class FrameError(ValueError):
    """The bytes on the socket are not a frame of this protocol."""


def encode(message: dict[str, Any]) -> bytes:
    """One frame holding `message` (strings, numbers, booleans, None, lists and dicts of them)."""
    body = marshal.dumps(message, _FORMAT)
    return len(body).to_bytes(_LENGTH, "big") + body


def read(recv: Callable[[int], bytes]) -> dict[str, Any] | None:
    """The next message from `recv` (a socket's), or None when the peer closed between frames.

    Raises:
        FrameError: the peer closed inside a frame, or sent something that is not a message.
        OSError: the socket failed (or timed out).
    """
    head = _exactly(recv, _LENGTH, may_end=True)
    if not head:
        return None
    size = int.from_bytes(head, "big")
    if size > MAX_FRAME:
        raise FrameError(f"a frame of {size} bytes is over the limit of {MAX_FRAME}")
    body = _exactly(recv, size)
    try:
        # Both ends are this user's (checked first); marshal builds data, never runs code.
        message = marshal.loads(body)  # noqa: S302
    except (EOFError, ValueError, TypeError) as exc:
        raise FrameError(f"a frame that is not a message ({type(exc).__name__})") from None
    if not isinstance(message, dict):
        raise FrameError("a frame that is not a message (not a dict)")
    return message


def _exactly(recv: Callable[[int], bytes], size: int, *, may_end: bool = False) -> bytes:
    """`size` bytes; with `may_end`, none at all when the peer closed before the first."""
    parts: list[bytes] = []
    got = 0
    while got < size:
        part = recv(min(size - got, 1 << 20))
        if not part:
            if got == 0 and may_end:
                return b""
            raise FrameError("the peer closed inside a frame")
        parts.append(part)
        got += len(part)
    return b"".join(parts)
