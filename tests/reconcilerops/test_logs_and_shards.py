"""JSON log lines flux logs can read, and shard selectors."""

from __future__ import annotations

import argparse
import json
import logging
import sys

import pytest

from cli.reconcile import add_controller_arguments
from reconciler.logs import JsonFormatter
from reconciler.sharding import ShardError, selector


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("kustomization", logging.ERROR, "f.py", 1, "apply failed", (), None)
    record.__dict__.update(extra)
    return record


def test_a_log_line_is_one_json_object_with_flux_keys() -> None:
    line = JsonFormatter().format(
        _record(
            objectName="apps",
            objectNamespace="flux-system",
            controllerKind="Kustomization",
            other="x",
        )
    )
    parsed = json.loads(line)
    assert parsed["level"] == "error"
    assert parsed["msg"] == "apply failed"
    assert parsed["logger"] == "kustomization"
    assert parsed["ts"].endswith("Z")
    assert (parsed["name"], parsed["namespace"], parsed["controllerKind"]) == (
        "apps",
        "flux-system",
        "Kustomization",
    )
    assert "other" not in parsed


def test_an_exception_is_its_message_not_a_traceback() -> None:
    record = _record()
    try:
        raise RuntimeError("dry-run failed (Invalid): spec.replicas")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert json.loads(line)["error"] == "dry-run failed (Invalid): spec.replicas"
    assert "Traceback" not in line


def test_shard_selectors_match_flux() -> None:
    assert selector(None) == "!sharding.fluxcd.io/key"
    assert selector("shard1") == "sharding.fluxcd.io/key in (shard1)"


@pytest.mark.parametrize("bad", ["", "-x", "a b", "x" * 64, "a),(b"])
def test_a_shard_that_is_not_a_label_value_is_refused(bad: str) -> None:
    with pytest.raises(ShardError, match="not a label value"):
        selector(bad)


def test_a_watch_label_selector_is_checked_when_parsed() -> None:
    parser = argparse.ArgumentParser()
    add_controller_arguments(parser)
    shard = "sharding.fluxcd.io/key in (shard1)"
    assert parser.parse_args(["--watch-label-selector", shard]).watch_label_selector == shard
    with pytest.raises(SystemExit):
        parser.parse_args(["--watch-label-selector", "key in shard1"])
