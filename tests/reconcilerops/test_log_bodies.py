"""Debug logging never prints API bodies: the Kubernetes client's body logger stays at INFO."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from reconciler import logs

CANARY = "canary-5c1d-secret-in-a-response-body"


@pytest.fixture
def restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in logs.BODY_LOGGERS}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


def test_debug_level_keeps_response_bodies_out(
    restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure(logging.DEBUG)

    logging.getLogger("kubernetes.client.rest").debug("response body: %s", CANARY)
    logging.getLogger("urllib3.connectionpool").debug("sent %s", CANARY)
    logging.getLogger("reconciler.pipeline").debug("our own debug line")

    err = capsys.readouterr().err
    assert CANARY not in err
    assert "our own debug line" in err
