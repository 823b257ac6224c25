"""The `fetch:` section of `.tidegate.yaml` and of the operator's configuration file."""

from __future__ import annotations

import pytest

from core.config import FetchConfig, UnavailableSources, parse_fetch_config
from core.errors import InputError


def test_a_repository_file_sets_hosts_and_the_unavailable_mode() -> None:
    text = """
policies: {rules: {GP001: {severity: error}}}   # another part's section: left alone
fetch:
  allowHosts: [Charts.Example.com, "registry.example.com:5000"]
  unavailableSources: skip
"""
    config = parse_fetch_config(text, file=".tidegate.yaml")
    assert config == FetchConfig(
        allow_hosts=("charts.example.com", "registry.example.com:5000"),
        unavailable_sources=UnavailableSources.SKIP,
    )


@pytest.mark.parametrize("text", ["", "policies: {}\n", "fetch:\n"])
def test_missing_sections_are_empty(text: str) -> None:
    assert parse_fetch_config(text, file=".tidegate.yaml") == FetchConfig()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fetch: [a]", "file .tidegate.yaml, field fetch: must be a mapping"),
        ("fetch: {allowHost: [a]}", "field fetch: unknown setting 'allowHost'"),
        ("fetch: {allowHosts: a}", "field fetch.allowHosts: must be a list"),
        (
            "fetch: {allowHosts: ['https://a/b']}",
            "field fetch.allowHosts[0]: must be a host or host:port",
        ),
        ("fetch: {unavailableSources: maybe}", "field fetch.unavailableSources: must be fail or"),
        (
            "fetch: {allowLoopback: true}",
            "field fetch.allowLoopback: may only be set in the operator's configuration",
        ),
        (
            "fetch: {allowPrivate: true}",
            "field fetch.allowPrivate: may only be set in the operator's configuration",
        ),
        ("fetch: {", "file .tidegate.yaml: invalid YAML"),
        ("- a", "file .tidegate.yaml: must be a mapping of sections"),
    ],
)
def test_mistakes_name_the_file_and_field(text: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_fetch_config(text, file=".tidegate.yaml")
    assert message in str(caught.value)


def test_the_operator_may_opt_into_addresses() -> None:
    config = parse_fetch_config(
        "fetch: {allowLoopback: true, allowPrivate: false}", file="op.yaml", operator=True
    )
    assert (config.allow_loopback, config.allow_private) == (True, False)
    with pytest.raises(InputError, match=r"field fetch\.allowLoopback: must be true or false"):
        parse_fetch_config("fetch: {allowLoopback: 'yes'}", file="op.yaml", operator=True)


def test_merging_adds_hosts_and_lets_the_upper_file_decide() -> None:
    lower = FetchConfig(allow_hosts=("a",), unavailable_sources=UnavailableSources.SKIP)
    upper = FetchConfig(allow_hosts=("b", "a"), allow_loopback=True)
    merged = upper.over(lower)
    assert merged.allow_hosts == ("a", "b")
    assert merged.unavailable_sources is UnavailableSources.SKIP
    assert merged.allow_loopback is True
    assert FetchConfig(unavailable_sources=UnavailableSources.FAIL).over(
        lower
    ).unavailable_sources == (UnavailableSources.FAIL)
