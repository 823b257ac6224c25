"""`tidegate reconcile`'s controller flags: Flux's names and defaults, and clear refusals.

The defaults are the ones kustomize-controller and source-controller ship and the ones
docs/reconciler.md quotes (`--requeue-dependency` 30s, `--interval-jitter-percentage` 5%).
A bad value is an argparse error naming the flag and the value, never a traceback.
"""

from __future__ import annotations

import argparse

import pytest

from cli.reconcile import add_controller_arguments

EVERY_ADDRESS = "0.0.0.0"  # noqa: S104 - what `:port` means, as Go's listeners take it


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tidegate reconcile")
    add_controller_arguments(parser)
    return parser


def test_the_defaults_are_fluxs() -> None:
    args = _parser().parse_args([])

    assert args.concurrent == 4
    assert args.requeue_dependency == 30.0
    assert args.interval_jitter_percentage == 5.0
    assert args.min_retry_delay == 0.75
    assert args.max_retry_delay == 900.0
    assert args.watch_all_namespaces is True
    assert args.enable_leader_election is False
    assert args.no_cross_namespace_refs is False
    assert args.default_service_account == ""
    assert args.artifact_allow_loopback is False
    assert (
        args.leader_election_lease_duration,
        args.leader_election_renew_deadline,
        args.leader_election_retry_period,
    ) == (35.0, 30.0, 5.0)
    assert args.metrics_addr == (EVERY_ADDRESS, 8080)
    assert args.health_addr == (EVERY_ADDRESS, 9440)
    assert args.storage_addr == (EVERY_ADDRESS, 9090)


def test_go_durations_booleans_and_addresses_parse_as_flux_writes_them() -> None:
    args = _parser().parse_args(
        [
            "--requeue-dependency=5s",
            "--min-retry-delay=250ms",
            "--max-retry-delay=1h",
            "--interval-jitter-percentage=0",
            "--watch-all-namespaces=false",
            "--no-cross-namespace-refs",
            "--storage-addr=:9999",
            "--metrics-addr=127.0.0.1:0",
        ]
    )

    assert args.requeue_dependency == 5.0
    assert args.min_retry_delay == 0.25
    assert args.max_retry_delay == 3600.0
    assert args.interval_jitter_percentage == 0.0
    assert args.watch_all_namespaces is False
    assert args.no_cross_namespace_refs is True
    assert args.storage_addr == (EVERY_ADDRESS, 9999)
    assert args.metrics_addr == ("127.0.0.1", 0)


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("--concurrent=0", "must be at least 1: '0'"),
        ("--requeue-dependency=30", "not a duration: '30'"),
        ("--requeue-dependency=0s", "must be positive: '0s'"),
        ("--interval-jitter-percentage=100", "must be in [0, 100): '100'"),
        ("--watch-all-namespaces=yes", "not a boolean: 'yes'"),
        ("--storage-addr=9090", "not an address: '9090'"),
    ],
)
def test_a_bad_value_is_refused_naming_the_flag(
    flag: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args([flag])

    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert flag.split("=")[0] in err
    assert message in err
    assert "Traceback" not in err
