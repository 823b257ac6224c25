"""Typed parsing of Provider and Alert objects (notification.toolkit.fluxcd.io/v1beta3).

Objects come from the API server or from a repository; both are checked here field by field and
every error names the object and the field. The credentials a Provider's Secret holds are parsed
into `Credentials`, whose repr never shows a value. This module does no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from core.errors import InputError
from reconciler.notification.event import ERROR, INFO
from reconciler.notification.patterns import compile_regex

__all__ = ["Alert", "Credentials", "EventSource", "Provider", "parse_alert", "parse_provider"]

API_VERSION = "notification.toolkit.fluxcd.io/v1beta3"
DEFAULT_TIMEOUT = 15.0
"""Seconds, Flux's default Provider timeout."""
PROVIDER_TYPES = frozenset(
    [
        "slack",
        "discord",
        "msteams",
        "rocket",
        "generic",
        "generic-hmac",
        "github",
        "gitlab",
        "gitea",
        "bitbucketserver",
        "bitbucket",
        "azuredevops",
        "googlechat",
        "googlepubsub",
        "webex",
        "sentry",
        "azureeventhub",
        "telegram",
        "lark",
        "matrix",
        "opsgenie",
        "alertmanager",
        "grafana",
        "githubdispatch",
        "pagerduty",
        "datadog",
        "nats",
        "zulip",
    ]
)
SOURCE_KINDS = frozenset(
    [
        "Bucket",
        "GitRepository",
        "Kustomization",
        "HelmRelease",
        "HelmChart",
        "HelmRepository",
        "ImageRepository",
        "ImagePolicy",
        "ImageUpdateAutomation",
        "OCIRepository",
        "ArtifactGenerator",
        "ExternalArtifact",
    ]
)
_DURATION = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m))+$")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0}


@dataclass(frozen=True)
class Provider:
    """A Provider: where and how notifications are sent (credentials live in its Secret)."""

    namespace: str
    name: str
    uid: str
    type: str
    address: str = ""
    channel: str = ""
    username: str = ""
    timeout: float = DEFAULT_TIMEOUT
    secret_name: str = ""
    commit_status_expr: str = ""
    suspend: bool = False


@dataclass(frozen=True)
class EventSource:
    """One `spec.eventSources` entry of an Alert."""

    kind: str
    name: str
    namespace: str
    """Defaulted to the Alert's namespace, as Flux does."""
    api_version: str = ""
    match_labels: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Alert:
    """An Alert: which events go to which Provider."""

    namespace: str
    name: str
    provider_name: str
    event_sources: tuple[EventSource, ...]
    event_severity: str = INFO
    inclusion_list: tuple[str, ...] = ()
    exclusion_list: tuple[str, ...] = ()
    event_metadata: Mapping[str, str] = field(default_factory=dict)
    summary: str = ""
    suspend: bool = False


_GITHUB_APP_KEYS = ("githubAppID", "githubAppInstallationID", "githubAppPrivateKey")


@dataclass(frozen=True)
class Credentials:
    """What a Provider's Secret may hold: address, token, headers, or a GitHub App.

    The keys are Flux's: `address`, `token`, `headers` (a YAML map), and `githubAppID`,
    `githubAppInstallationID`, `githubAppPrivateKey` for a GitHub App installation.
    """

    address: str = ""
    token: str = field(default="", repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    github_app_id: str = ""
    github_app_installation_id: int = 0
    github_app_private_key: str = field(default="", repr=False)

    @property
    def github_app(self) -> bool:
        """Whether the Secret holds GitHub App credentials (an installation, not a token)."""
        return bool(self.github_app_id)

    @classmethod
    def from_secret_data(cls, data: Mapping[str, bytes], *, secret: str) -> Credentials:
        """Read the keys Flux reads; errors name the Secret and key, never a value."""
        headers: dict[str, str] = {}
        if "headers" in data:
            try:
                loaded = yaml.safe_load(data["headers"].decode())
            except (yaml.YAMLError, UnicodeDecodeError):
                loaded = None
            if not isinstance(loaded, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in loaded.items()
            ):
                raise InputError("must be a YAML map of strings", obj=secret, field="data.headers")
            headers = dict(loaded)
        try:
            app_id, installation, private_key = _github_app(data, secret)
            return cls(
                address=data.get("address", b"").decode().strip(),
                # Not trimmed: Flux keys the HMAC with the bytes as stored.
                token=data.get("token", b"").decode(),
                headers=headers,
                github_app_id=app_id,
                github_app_installation_id=installation,
                github_app_private_key=private_key,
            )
        except UnicodeDecodeError:
            raise InputError("must be UTF-8 text", obj=secret, field="data") from None


def _github_app(data: Mapping[str, bytes], secret: str) -> tuple[str, int, str]:
    """The GitHub App keys: none of them, or all three with a numeric ID and installation."""
    present = [key for key in _GITHUB_APP_KEYS if key in data]
    if not present:
        return "", 0, ""
    for key in _GITHUB_APP_KEYS:
        if not data.get(key, b"").strip():
            raise InputError(
                "is required with the other GitHub App keys", obj=secret, field=f"data.{key}"
            )
    values = {key: data[key].decode().strip() for key in _GITHUB_APP_KEYS}
    for key in ("githubAppID", "githubAppInstallationID"):
        if not values[key].isdigit():
            raise InputError("must be a number", obj=secret, field=f"data.{key}")
    return (
        values["githubAppID"],
        int(values["githubAppInstallationID"]),
        values["githubAppPrivateKey"],
    )


class _Reader:
    """Field access on one object whose errors name the object and the field."""

    def __init__(self, obj: Any, kind: str) -> None:
        if not isinstance(obj, Mapping):
            raise InputError("must be a mapping", obj=kind)
        meta = obj.get("metadata")
        meta = meta if isinstance(meta, Mapping) else {}
        self.namespace = str(meta.get("namespace") or "default")
        self.name = str(meta.get("name") or "")
        self.uid = str(meta.get("uid") or "")
        self.where = f"{kind} {self.namespace}/{self.name}"
        if not self.name:
            raise InputError("is required", obj=self.where, field="metadata.name")
        if obj.get("apiVersion") != API_VERSION:
            raise InputError(f"must be {API_VERSION}", obj=self.where, field="apiVersion")
        spec = obj.get("spec")
        if not isinstance(spec, Mapping):
            raise InputError("is required", obj=self.where, field="spec")
        self.spec = spec

    def fail(self, path: str, message: str) -> InputError:
        return InputError(message, obj=self.where, field=path)

    def string(self, key: str, *, required: bool = False, max_length: int = 2048) -> str:
        value = self.spec.get(key, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise self.fail(f"spec.{key}", "must be a string")
        if required and not value:
            raise self.fail(f"spec.{key}", "is required")
        if len(value) > max_length:
            raise self.fail(f"spec.{key}", f"must be at most {max_length} characters")
        return value

    def flag(self, key: str) -> bool:
        value = self.spec.get(key, False)
        if not isinstance(value, bool):
            raise self.fail(f"spec.{key}", "must be true or false")
        return value

    def ref_name(self, key: str, *, required: bool = False) -> str:
        ref = self.spec.get(key)
        if ref is None and not required:
            return ""
        if not isinstance(ref, Mapping) or not isinstance(ref.get("name"), str) or not ref["name"]:
            raise self.fail(f"spec.{key}.name", "is required")
        return str(ref["name"])

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.spec.get(key) or []
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.fail(f"spec.{key}", "must be a list of strings")
        return tuple(value)

    def string_map(self, value: Any, path: str) -> dict[str, str]:
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise self.fail(path, "must be a map of strings")
        return dict(value)


def parse_provider(obj: Any) -> Provider:
    """A Provider from its object (as the API server returns it, or from YAML)."""
    read = _Reader(obj, "Provider")
    kind = read.string("type", required=True)
    if kind not in PROVIDER_TYPES:
        raise read.fail("spec.type", f"unsupported provider type {kind!r}")
    timeout = read.string("timeout")
    return Provider(
        namespace=read.namespace,
        name=read.name,
        uid=read.uid,
        type=kind,
        address=read.string("address"),
        channel=read.string("channel"),
        username=read.string("username"),
        timeout=_seconds(timeout, read) if timeout else DEFAULT_TIMEOUT,
        secret_name=read.ref_name("secretRef"),
        commit_status_expr=read.string("commitStatusExpr", max_length=10_000),
        suspend=read.flag("suspend"),
    )


def parse_alert(obj: Any) -> Alert:
    """An Alert from its object; event sources get the Alert's namespace when they have none."""
    read = _Reader(obj, "Alert")
    severity = read.string("eventSeverity") or INFO
    if severity not in (INFO, ERROR):
        raise read.fail("spec.eventSeverity", "must be info or error")
    sources = read.spec.get("eventSources")
    if not isinstance(sources, list) or not sources:
        raise read.fail("spec.eventSources", "must be a non-empty list")
    inclusion = read.strings("inclusionList")
    exclusion = read.strings("exclusionList")
    for key, patterns in (("inclusionList", inclusion), ("exclusionList", exclusion)):
        for index, pattern in enumerate(patterns):
            _check_regex(pattern, read, f"spec.{key}[{index}]")
    metadata = read.spec.get("eventMetadata") or {}
    return Alert(
        namespace=read.namespace,
        name=read.name,
        provider_name=read.ref_name("providerRef", required=True),
        event_sources=tuple(
            _source(item, read, f"spec.eventSources[{i}]") for i, item in enumerate(sources)
        ),
        event_severity=severity,
        inclusion_list=inclusion,
        exclusion_list=exclusion,
        event_metadata=read.string_map(metadata, "spec.eventMetadata"),
        summary=read.string("summary", max_length=255),
        suspend=read.flag("suspend"),
    )


def _source(item: Any, read: _Reader, path: str) -> EventSource:
    if not isinstance(item, Mapping):
        raise read.fail(path, "must be a mapping")
    kind, name = item.get("kind"), item.get("name")
    if kind not in SOURCE_KINDS:
        raise read.fail(f"{path}.kind", f"unsupported kind {kind!r}")
    if not isinstance(name, str) or not name or len(name) > 253:
        raise read.fail(f"{path}.name", "must be a name of 1 to 253 characters, or *")
    namespace = item.get("namespace") or read.namespace
    if not isinstance(namespace, str) or len(namespace) > 253:
        raise read.fail(f"{path}.namespace", "must be a namespace name")
    labels = item.get("matchLabels")
    return EventSource(
        kind=str(kind),
        name=name,
        namespace=namespace,
        api_version=str(item.get("apiVersion") or ""),
        match_labels=None if labels is None else read.string_map(labels, f"{path}.matchLabels"),
    )


def _check_regex(pattern: str, read: _Reader, path: str) -> None:
    # Flux compiles these with Go's regexp (RE2); a pattern RE2 refuses is refused here.
    if compile_regex(pattern) is None:
        raise read.fail(path, "is not a valid RE2 regular expression")


def _seconds(text: str, read: _Reader) -> float:
    if not _DURATION.match(text):
        raise read.fail("spec.timeout", "must be a duration such as 30s, 1m or 500ms")
    total = sum(
        float(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION_PART.findall(text)
    )
    if total <= 0:
        raise read.fail("spec.timeout", "must be longer than zero")
    return total
