"""A GitRepository object read into typed fields, with Flux's defaults and checks.

`url` must be `http://`, `https://` or `ssh://` (the CRD's pattern), `interval` is required,
`timeout` defaults to 60s, `ref` is read by `reconciler.source.refs`, `ignore` is kept verbatim
(it becomes `status.observedIgnore`), `secretRef.name` names a Secret in the object's namespace.
Fields Flux has and this controller does not implement (`include`, `verify`,
`recurseSubmodules`, `sparseCheckout`, `proxySecretRef`, a `provider` other than `generic`) are
refused by name rather than silently ignored, since ignoring them would build a different
artifact than Flux. Errors are `InputError`s naming the object and the field. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.errors import InputError
from reconciler.source.refs import GitReference

__all__ = ["GitRepositorySpec", "parse_duration"]

_URL = re.compile(r"^(http|https|ssh)://[^\s]+$")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_UNSUPPORTED = ("include", "verify", "recurseSubmodules", "sparseCheckout", "proxySecretRef")
DEFAULT_TIMEOUT = 60.0


def parse_duration(text: str) -> float:
    """Seconds of a Go duration (`1m30s`, `500ms`, `1.5h`); ValueError when it is not one."""
    if not text or _DURATION_PART.sub("", text) != "":
        raise ValueError(f"{text[:80]!r} is not a duration such as 1m or 30s")
    return sum(float(n) * _UNITS[unit] for n, unit in _DURATION_PART.findall(text))


@dataclass(frozen=True)
class GitRepositorySpec:
    """The fields of a GitRepository this controller acts on."""

    namespace: str
    name: str
    generation: int
    url: str
    interval: float
    timeout: float
    ref: GitReference
    ignore: str | None
    secret_name: str
    suspend: bool
    requested_at: str | None
    """The `reconcile.fluxcd.io/requestedAt` annotation."""

    @property
    def where(self) -> str:
        """The object, for messages."""
        return f"GitRepository {self.namespace}/{self.name}"

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> GitRepositorySpec:
        """Read an object as the API returns it.

        Raises:
            InputError: a field is missing or invalid; the message names it.
        """
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        where = f"GitRepository {namespace}/{name}"
        spec = obj.get("spec")
        if not isinstance(spec, Mapping):
            raise InputError("spec is missing", obj=where, field="spec")
        url = spec.get("url")
        if not isinstance(url, str) or not _URL.match(url):
            raise InputError(
                "must be an http://, https:// or ssh:// URL", obj=where, field="spec.url"
            )
        for field in _UNSUPPORTED:
            if spec.get(field) not in (None, False, [], {}):
                raise InputError(
                    "is not supported by this controller", obj=where, field=f"spec.{field}"
                )
        if spec.get("provider") not in (None, "generic"):
            raise InputError(
                "only the generic provider is supported", obj=where, field="spec.provider"
            )
        secret = spec.get("secretRef") or {}
        secret_name = secret.get("name") if isinstance(secret, Mapping) else None
        if secret and not isinstance(secret_name, str):
            raise InputError("must name a Secret", obj=where, field="spec.secretRef.name")
        ignore = spec.get("ignore")
        if ignore is not None and not isinstance(ignore, str):
            raise InputError("must be a string", obj=where, field="spec.ignore")
        annotations = meta.get("annotations") or {}
        requested = annotations.get("reconcile.fluxcd.io/requestedAt")
        return cls(
            namespace=namespace,
            name=name,
            generation=int(meta.get("generation") or 0),
            url=url,
            interval=_duration(spec.get("interval"), where, "spec.interval", required=True),
            timeout=_duration(spec.get("timeout"), where, "spec.timeout") or DEFAULT_TIMEOUT,
            ref=GitReference.from_spec(spec.get("ref"), where),
            ignore=ignore,
            secret_name=secret_name or "",
            suspend=spec.get("suspend") is True,
            requested_at=str(requested) if requested is not None else None,
        )


def _duration(value: Any, where: str, field: str, *, required: bool = False) -> float:
    if value is None and not required:
        return 0.0
    try:
        seconds = parse_duration(value if isinstance(value, str) else "")
    except ValueError as exc:
        raise InputError(str(exc) if value else "is required", obj=where, field=field) from None
    if seconds <= 0:
        raise InputError("must be longer than zero", obj=where, field=field)
    return seconds
