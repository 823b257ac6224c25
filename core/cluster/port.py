"""The cluster as the rest of the code sees it: small protocols and the errors they raise.

Applying, pruning, planning against a live cluster and waiting all go through these protocols,
so they can run against the real adapter (`core.cluster.live`) or a test double of our own, and
never import the Kubernetes client. Objects cross this seam as plain JSON-shaped dicts.

The errors are typed so callers decide by type, never by parsing text: `Forbidden` is Flux's
`AccessDenied`, `Invalid` carries the field paths the apiserver named, `ImmutableField` is the
one kind of `Invalid` that a forced apply may answer by recreating the object. Their messages
name the object and quote the apiserver's reason, never a request or response body.

This module holds no I/O and no policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from core.errors import Failure, TidegateError

__all__ = [
    "FIELD_MANAGER",
    "ApiKind",
    "Applier",
    "ClusterError",
    "ClusterPort",
    "Conflict",
    "Deleter",
    "Discovery",
    "Forbidden",
    "ImmutableField",
    "Invalid",
    "NotFound",
    "Propagation",
    "Reader",
    "UnknownKind",
]

FIELD_MANAGER = "kustomize-controller"
"""The field manager Flux's kustomize-controller applies as; `flux diff` dry-runs as it too."""

Propagation = str
"""A deletion propagation policy: `Background`, `Foreground` or `Orphan`."""


class ClusterError(TidegateError):
    """The apiserver refused or failed a request; the message names the object."""

    failure = Failure.INTERNAL
    status: int = 0
    """The HTTP status of the refusal (0 when none was received)."""
    reason: str = ""
    """The apiserver's `Status.reason` (`Invalid`, `Forbidden`, ...), when it sent one."""
    detail: str = ""
    """The apiserver's own message, without the object's name in front."""

    def __init__(
        self, message: str, *, status: int = 0, reason: str = "", detail: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.detail = detail or message


class NotFound(ClusterError):  # noqa: N818 - reads as the apiserver's own status
    """The named object does not exist."""


class UnknownKind(NotFound):
    """The apiserver serves no such kind in that API version (a CRD not installed, a typo)."""

    failure = Failure.INPUT


class Forbidden(ClusterError):  # noqa: N818
    """RBAC denied the request: Flux reports it as `AccessDenied`."""


class Conflict(ClusterError):  # noqa: N818
    """An update lost a race (HTTP 409) or ownership was contested."""


class Invalid(ClusterError):  # noqa: N818
    """The apiserver rejected the object (HTTP 422); `fields` are the paths it named."""

    failure = Failure.INPUT
    fields: tuple[str, ...] = ()

    def __init__(
        self,
        message: str,
        *,
        status: int = 422,
        reason: str = "Invalid",
        detail: str = "",
        fields: Sequence[str] = (),
    ) -> None:
        super().__init__(message, status=status, reason=reason, detail=detail)
        self.fields = tuple(fields)


class ImmutableField(Invalid):
    """The object cannot be changed in place: a field that may only be set at creation changed."""


@dataclass(frozen=True)
class ApiKind:
    """Where a kind is served: its resource name and whether its objects live in a namespace."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool


class Reader(Protocol):
    """Reads objects as the apiserver returns them (managedFields included)."""

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
        """The object, or `NotFound` (`UnknownKind` when the kind is not served)."""
        ...

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str = ""
    ) -> list[dict[str, Any]]:
        """Objects of a kind in `namespace`, or in every namespace when it is None."""
        ...


class Applier(Protocol):
    """Server-side apply, for real or as a dry run, and JSON patches of metadata."""

    def apply(
        self,
        body: Mapping[str, Any],
        *,
        field_manager: str = FIELD_MANAGER,
        force: bool = True,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Server-side apply `body`; return the object the apiserver made (or would make)."""
        ...

    def json_patch(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        operations: Sequence[Mapping[str, Any]],
    ) -> dict[str, Any]:
        """Apply an RFC 6902 JSON patch; return the patched object."""
        ...


class Deleter(Protocol):
    """Deletes objects."""

    def delete(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        *,
        propagation: Propagation = "Background",
    ) -> bool:
        """Delete the object; False when it was already gone."""
        ...


class Discovery(Protocol):
    """What the apiserver serves, cached."""

    def kind(self, api_version: str, kind: str) -> ApiKind:
        """Where `kind` is served, or `UnknownKind`; a miss refreshes the cache once."""
        ...

    def serves(self, api_version: str, kind: str) -> bool:
        """Whether the kind is served (for a CRD: installed and established)."""
        ...


class ClusterPort(Reader, Applier, Deleter, Discovery, Protocol):
    """Everything the apply engine, prune and the live plan need from one cluster."""
