"""The event as Flux's controllers post it (fluxcd/pkg event v1beta1), and its JSON encoding.

`Event.to_json()` yields the bytes Go's `json.Marshal` produces for the same event (field
order, omitted empty fields, sorted metadata keys, `<`, `>`, `&` escaped), because the
generic-hmac provider signs exactly these bytes and receivers verify them. This module does not
route or send anything.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ERROR", "INFO", "Event", "ObjectReference", "clean_metadata", "go_json"]

INFO = "info"
ERROR = "error"
# Keys notification-controller drops before alerting: they identify artifacts, not changes.
_UNUSED_KEYS = ("checksum", "digest")


@dataclass(frozen=True)
class ObjectReference:
    """The involved object (a Kubernetes ObjectReference)."""

    kind: str
    name: str
    namespace: str = ""
    uid: str = ""
    api_version: str = ""
    resource_version: str = ""
    field_path: str = ""

    @property
    def group(self) -> str:
        """The API group (`kustomize.toolkit.fluxcd.io`), "" for the core group."""
        return self.api_version.rpartition("/")[0]

    def to_wire(self) -> dict[str, str]:
        """The JSON object, in Go's field order, empty fields left out."""
        pairs = (
            ("kind", self.kind),
            ("namespace", self.namespace),
            ("name", self.name),
            ("uid", self.uid),
            ("apiVersion", self.api_version),
            ("resourceVersion", self.resource_version),
            ("fieldPath", self.field_path),
        )
        return {key: value for key, value in pairs if value}


@dataclass(frozen=True)
class Event:
    """One event about a reconciled object."""

    involved_object: ObjectReference
    severity: str
    timestamp: str
    """RFC 3339 in UTC, seconds precision (`2026-11-30T09:00:00Z`), as Go's metav1.Time."""
    message: str
    reason: str
    reporting_controller: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    reporting_instance: str = ""

    def to_wire(self) -> dict[str, Any]:
        """The JSON object, in Go's field order, empty optional fields left out."""
        wire: dict[str, Any] = {
            "involvedObject": self.involved_object.to_wire(),
            "severity": self.severity,
            "timestamp": self.timestamp,
            "message": self.message,
            "reason": self.reason,
        }
        if self.metadata:
            wire["metadata"] = dict(sorted(self.metadata.items()))
        wire["reportingController"] = self.reporting_controller
        if self.reporting_instance:
            wire["reportingInstance"] = self.reporting_instance
        return wire

    def to_json(self) -> bytes:
        """The bytes Go's `json.Marshal` writes for this event."""
        return go_json(self.to_wire())

    def with_metadata(self, metadata: Mapping[str, str]) -> Event:
        """The same event with other metadata."""
        return Event(
            self.involved_object,
            self.severity,
            self.timestamp,
            self.message,
            self.reason,
            self.reporting_controller,
            dict(metadata),
            self.reporting_instance,
        )


def go_json(value: Any) -> bytes:
    """`value` encoded as Go's `json.Marshal` encodes the same data (dict order kept)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    # Go escapes these for safe embedding in HTML; Python does not.
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text.encode()


def clean_metadata(event: Event) -> Event:
    """Keep only metadata under the involved object's group, without the group prefix.

    notification-controller does this on receipt: `kustomize.toolkit.fluxcd.io/revision`
    becomes `revision`; checksum and digest keys, and keys of other groups, are dropped.
    """
    group = event.involved_object.group
    prefix = f"{group}/"
    dropped = {f"{group}/{key}".lower() for key in _UNUSED_KEYS}
    kept = {
        key.removeprefix(prefix): value
        for key, value in event.metadata.items()
        if key.startswith(group) and key.lower() not in dropped
    }
    return event.with_metadata(kept)
