"""Long-lived preview processes compile the policy gate's common schemas before the first request.

The first pull request a server previews should cost what the next ones cost: the shared schema
definitions and the validators of the kinds nearly every change touches are compiled at start,
not inside that request. Each test empties the per-process caches first, so that what it finds
compiled was compiled by the code under test.
"""

from __future__ import annotations

import io
import signal
import socket
from pathlib import Path

import pytest

from cli import policy_gate, preview, preview_daemon, preview_server
from policies.input import DEFAULT_KUBE_VERSION
from policies.rules import schemas
from policies.rules.api_versions import parse_minor


@pytest.fixture
def cold_schemas() -> None:
    schemas.builtin_validator.cache_clear()
    schemas._registry.cache_clear()


def _compiled() -> int:
    return schemas.builtin_validator.cache_info().currsize


def test_preload_compiles_every_common_kind_of_the_release(cold_schemas: None) -> None:
    release = schemas.schema_release(parse_minor(DEFAULT_KUBE_VERSION))
    assert release is not None

    # Every listed kind is packaged: a misspelt one would be compiled as "no validator".
    assert schemas.preload(parse_minor(DEFAULT_KUBE_VERSION)) == len(schemas.COMMON_KINDS)

    before = schemas.builtin_validator.cache_info()
    validator = schemas.builtin_validator(release, "apps/v1", "Deployment")
    after = schemas.builtin_validator.cache_info()
    assert validator is not None
    assert (after.hits, after.misses) == (before.hits + 1, before.misses)


def test_preload_for_a_release_older_than_any_packaged_compiles_nothing(cold_schemas: None) -> None:
    assert schemas.preload(1) == 0
    assert _compiled() == 0


def test_the_app_preview_server_warms_up_before_its_first_request(cold_schemas: None) -> None:
    answers = io.StringIO()

    assert preview_server.serve(io.StringIO(""), answers) == 0

    assert answers.getvalue() == ""
    assert _compiled() == len(schemas.COMMON_KINDS)


def test_the_cli_preview_server_warms_up_before_it_accepts(
    cold_schemas: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real serving loop on a real socket, left idle: it warms up, times out and exits.
    monkeypatch.setenv("TIDEGATE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(preview, "warm_caches", None)  # restored after the test
    monkeypatch.setattr(signal, "signal", lambda *_: None)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "socket"))
    listener.listen()
    server = preview_daemon.PreviewServer(
        listener, -1, cache_dir=tmp_path, idle_timeout=0.05, recycle_after=1
    )

    assert server.serve() == 0

    assert _compiled() == len(schemas.COMMON_KINDS)


def test_warm_up_is_what_the_gate_would_compile_for_its_default_target(cold_schemas: None) -> None:
    policy_gate.warm_up()
    release = schemas.schema_release(parse_minor(DEFAULT_KUBE_VERSION))
    assert release is not None
    before = schemas.builtin_validator.cache_info().misses
    for api_version, kind in schemas.COMMON_KINDS:
        schemas.builtin_validator(release, api_version, kind)
    assert schemas.builtin_validator.cache_info().misses == before
