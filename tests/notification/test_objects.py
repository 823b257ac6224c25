"""Typed parsing of Provider and Alert objects; every error names the object and the field."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import InputError
from reconciler.notification.objects import Credentials, parse_alert, parse_provider
from tests.notification.objects import alert_obj, provider_obj

SOURCES = [{"kind": "Kustomization", "name": "apps"}]


def test_provider_fields_and_defaults() -> None:
    provider = parse_provider(
        provider_obj("hook", {"type": "generic", "address": "https://h.example/x"})
    )
    assert (provider.type, provider.address, provider.timeout, provider.suspend) == (
        "generic",
        "https://h.example/x",
        15.0,
        False,
    )
    timed = parse_provider(provider_obj("hook", {"type": "slack", "timeout": "1m30s"}))
    assert timed.timeout == 90.0
    assert parse_provider(provider_obj("h", {"type": "generic", "timeout": "500ms"})).timeout == 0.5


def test_alert_defaults_severity_and_source_namespace() -> None:
    alert = parse_alert(alert_obj("a", {"providerRef": {"name": "hook"}, "eventSources": SOURCES}))
    assert alert.event_severity == "info"
    assert alert.event_sources[0].namespace == "flux-system"
    assert alert.provider_name == "hook"


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        (provider_obj("p", {"type": "carrier-pigeon"}), "spec.type"),
        (provider_obj("p", {}), "spec.type"),
        (provider_obj("p", {"type": "generic", "timeout": "soon"}), "spec.timeout"),
        (provider_obj("p", {"type": "generic", "address": 5}), "spec.address"),
        (provider_obj("p", {"type": "generic", "suspend": "yes"}), "spec.suspend"),
        (provider_obj("p", {"type": "generic", "secretRef": {}}), "spec.secretRef.name"),
        (alert_obj("a", {"eventSources": SOURCES}), "spec.providerRef.name"),
        (alert_obj("a", {"providerRef": {"name": "p"}}), "spec.eventSources"),
        (
            alert_obj("a", {"providerRef": {"name": "p"}, "eventSources": [{"kind": "Pod"}]}),
            "spec.eventSources[0].kind",
        ),
        (
            alert_obj(
                "a",
                {"providerRef": {"name": "p"}, "eventSources": SOURCES, "eventSeverity": "warn"},
            ),
            "spec.eventSeverity",
        ),
        (
            alert_obj(
                "a",
                {"providerRef": {"name": "p"}, "eventSources": SOURCES, "exclusionList": ["(?=x)"]},
            ),
            "spec.exclusionList[0]",
        ),
        (
            alert_obj(
                "a",
                {
                    "providerRef": {"name": "p"},
                    "eventSources": [{"kind": "Kustomization", "name": "*", "matchLabels": []}],
                },
            ),
            "spec.eventSources[0].matchLabels",
        ),
    ],
)
def test_errors_name_object_and_field(obj: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError) as caught:
        (parse_provider if obj["kind"] == "Provider" else parse_alert)(obj)
    assert caught.value.field == field
    assert caught.value.obj == f"{obj['kind']} flux-system/{obj['metadata']['name']}"


def test_wrong_api_version_is_refused() -> None:
    obj = provider_obj("p", {"type": "generic"})
    obj["apiVersion"] = "notification.toolkit.fluxcd.io/v1beta2"
    with pytest.raises(InputError, match="apiVersion"):
        parse_provider(obj)


def test_credentials_never_show_values() -> None:
    credentials = Credentials.from_secret_data(
        {"token": b"CANARY-token", "headers": b"X-Key: CANARY-header\n", "address": b"https://a"},
        secret="Secret flux-system/s",
    )
    assert credentials.headers == {"X-Key": "CANARY-header"}
    assert "CANARY" not in repr(credentials)
    with pytest.raises(InputError) as caught:
        Credentials.from_secret_data({"headers": b"- CANARY-list"}, secret="Secret ns/s")
    assert "CANARY" not in str(caught.value)
    assert caught.value.field == "data.headers"


def test_token_is_kept_byte_for_byte_as_flux_keys_the_hmac_with_it() -> None:
    credentials = Credentials.from_secret_data({"token": b"key\n"}, secret="Secret ns/s")
    assert credentials.token == "key\n"


def test_github_app_credentials_need_all_three_keys_and_never_show_the_key() -> None:
    credentials = Credentials.from_secret_data(
        {
            "githubAppID": b"4242\n",
            "githubAppInstallationID": b"7",
            "githubAppPrivateKey": b"-----BEGIN PRIVATE KEY-----CANARY",
        },
        secret="Secret ns/s",
    )
    assert credentials.github_app
    assert (credentials.github_app_id, credentials.github_app_installation_id) == ("4242", 7)
    assert "CANARY" not in repr(credentials)
    assert not Credentials.from_secret_data({"token": b"t"}, secret="Secret ns/s").github_app
    with pytest.raises(InputError) as caught:
        Credentials.from_secret_data(
            {"githubAppID": b"4242", "githubAppPrivateKey": b"CANARY"}, secret="Secret ns/s"
        )
    assert caught.value.field == "data.githubAppInstallationID"
    assert "CANARY" not in str(caught.value)
    with pytest.raises(InputError) as caught:
        Credentials.from_secret_data(
            {
                "githubAppID": b"my-app",
                "githubAppInstallationID": b"7",
                "githubAppPrivateKey": b"CANARY",
            },
            secret="Secret ns/s",
        )
    assert caught.value.field == "data.githubAppID"
