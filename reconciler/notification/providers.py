"""The outbound request each Provider type makes for one event, as notification-controller makes it.

- `generic`: POST of the event JSON, header `gotk-component: <reportingController>` and the
  Secret's `headers`.
- `generic-hmac`: the same, plus `X-Signature: sha256=<hex HMAC-SHA256 of the body, keyed by the
  Secret's token>`, so a receiver can verify it.
- `slack`: Flux's Slack payload (channel, username defaulting to the reporting controller, one
  attachment coloured `good`/`danger` with author `<kind>/<name>.<namespace>`, the message as
  text and the metadata as fields, sorted by key where Flux's order is random), with
  `Authorization: Bearer <token>` when the Secret has a token. A response of Slack's Web API
  (`/api/chat.postMessage`) must say `"ok": true`; incoming webhooks answer by status.
The address is the Secret's `address` when set, else `spec.address`. This module builds requests
and sends nothing; the token appears only in the header or signature that needs it.
"""

from __future__ import annotations

import hashlib
import hmac
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

from core.errors import InputError
from reconciler.notification.event import ERROR, Event, go_json
from reconciler.notification.objects import Credentials, Provider

__all__ = ["SUPPORTED", "OutboundRequest", "build_request"]

SUPPORTED = frozenset({"generic", "generic-hmac", "slack"})
SLACK_API_PATH = "/api/chat.postMessage"


@dataclass(frozen=True)
class OutboundRequest:
    """One POST; `repr` leaves out the address and headers, which may hold credentials."""

    url: str = field(repr=False)
    body: bytes = field(repr=False)
    headers: Mapping[str, str] = field(repr=False)
    provider: str = ""
    """`namespace/name`, for logs."""
    timeout: float = 15.0
    """Seconds for one attempt (the Provider's `spec.timeout`)."""
    slack_api: bool = False
    """The response is Slack Web API JSON whose `ok` must be true."""


def build_request(provider: Provider, credentials: Credentials, event: Event) -> OutboundRequest:
    """The request `provider` sends for `event`; an InputError names what is missing."""
    where = f"Provider {provider.namespace}/{provider.name}"
    if provider.type not in SUPPORTED:
        raise InputError(
            f"provider type {provider.type!r} is not supported", obj=where, field="spec.type"
        )
    address = credentials.address or provider.address
    if not address:
        raise InputError("no address in the spec or the Secret", obj=where, field="spec.address")
    if provider.type == "slack":
        return _slack(provider, credentials, event, address)
    body = event.to_json()
    headers = {"Content-Type": "application/json", "gotk-component": event.reporting_controller}
    headers.update(credentials.headers)
    if provider.type == "generic-hmac":
        if not credentials.token:
            raise InputError(
                "generic-hmac needs a token in its Secret", obj=where, field="spec.secretRef"
            )
        headers["X-Signature"] = "sha256=" + sign(body, credentials.token.encode())
    return OutboundRequest(
        address, body, headers, f"{provider.namespace}/{provider.name}", provider.timeout
    )


def _slack(
    provider: Provider, credentials: Credentials, event: Event, address: str
) -> OutboundRequest:
    involved = event.involved_object
    attachment = {
        "color": "danger" if event.severity == ERROR else "good",
        "author_name": f"{involved.kind.lower()}/{involved.name}.{involved.namespace}",
        "text": event.message,
        "mrkdwn_in": ["text"],
        "fields": [
            {"title": key, "value": value, "short": False}
            for key, value in sorted(event.metadata.items())
        ],
    }
    payload = {
        "channel": provider.channel,
        "username": provider.username or event.reporting_controller,
        "icon_url": "",
        "icon_emoji": "",
        "attachments": [attachment],
    }
    headers = {"Content-Type": "application/json"}
    if credentials.token:
        headers["Authorization"] = f"Bearer {credentials.token}"
    return OutboundRequest(
        address,
        go_json(payload),
        headers,
        f"{provider.namespace}/{provider.name}",
        provider.timeout,
        slack_api=urllib.parse.urlsplit(address).path == SLACK_API_PATH,
    )


def sign(payload: bytes, key: bytes) -> str:
    """Hex HMAC-SHA256, as Flux's generic-hmac signature."""
    return hmac.new(key, payload, hashlib.sha256).hexdigest()
