"""A Kustomization object read for reconciling: the build spec plus the reconcile-only fields.

`core.units.parse_unit` reads what changes the rendered objects; this adds what only the
reconciler uses (intervals, timeout, serviceAccountName, wait, force, the `ignore` drift rules,
the source's apiVersion, the trigger annotation; `reconciler.health` reads healthChecks) with
Flux's defaults: `retryInterval` = `interval`, `timeout` = `interval - 30s` with a 30s floor.
Bad fields raise `InputError` naming the object and field, and so do fields this reconciler
does not implement (`kubeConfig`, `decryption`, `dependsOn[].readyExpr`) rather than being
ignored. Pure: no cluster access.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.errors import InputError
from core.units import KustomizationSpec, parse_unit
from reconciler.drift_ignore import IgnoreRule, parse_rules
from reconciler.kustomization.durations import parse_duration
from reconciler.kustomization.model import FINALIZER, REQUESTED_AT

__all__ = ["ReconcileSpec", "read_spec"]

_TIMEOUT_MARGIN = 30.0
_TIMEOUT_FLOOR = 30.0


@dataclass(frozen=True)
class ReconcileSpec:
    """Everything one reconcile reads from the Kustomization object."""

    build: KustomizationSpec
    uid: str
    generation: int
    interval: float
    retry_interval: float
    timeout: float
    source_api_version: str
    service_account: str | None
    wait: bool
    force: bool
    ignore: tuple[IgnoreRule, ...]
    requested_at: str | None
    deleting: bool
    has_finalizer: bool

    @property
    def namespace(self) -> str:
        """The Kustomization's namespace."""
        return self.build.unit.namespace

    @property
    def name(self) -> str:
        """The Kustomization's name."""
        return self.build.unit.name


def read_spec(obj: Mapping[str, Any]) -> ReconcileSpec:
    """Read `obj`; raise `InputError` naming the field when it is not a valid Kustomization."""
    build = parse_unit(obj)
    if not isinstance(build, KustomizationSpec):  # pragma: no cover - parse_unit reads the kind
        raise InputError("is not a Kustomization", obj=str(obj.get("kind")))
    label = str(build.unit)
    meta: Mapping[str, Any] = obj.get("metadata") or {}
    spec: Mapping[str, Any] = obj.get("spec") or {}
    interval = _duration(spec, "interval", label, required=True)
    retry = _duration(spec, "retryInterval", label) or interval
    timeout = _duration(spec, "timeout", label) or max(interval - _TIMEOUT_MARGIN, _TIMEOUT_FLOOR)
    source: Mapping[str, Any] = spec.get("sourceRef") or {}
    _refuse_ready_expr(spec, label)
    _refuse_unsupported(spec, label)
    annotations: Mapping[str, Any] = meta.get("annotations") or {}
    requested = annotations.get(REQUESTED_AT)
    return ReconcileSpec(
        build=build,
        uid=str(meta.get("uid") or ""),
        generation=int(meta.get("generation") or 0),
        interval=interval,
        retry_interval=retry,
        timeout=timeout,
        source_api_version=str(source.get("apiVersion") or ""),
        service_account=_string(spec, "serviceAccountName", label) or None,
        wait=spec.get("wait") is True,
        force=spec.get("force") is True,
        ignore=parse_rules(spec.get("ignore"), label),
        requested_at=None if requested is None else str(requested),
        deleting=bool(meta.get("deletionTimestamp")),
        has_finalizer=FINALIZER in (meta.get("finalizers") or []),
    )


def _string(spec: Mapping[str, Any], key: str, label: str) -> str:
    value = spec.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError(
            f"must be a string, not {type(value).__name__}", obj=label, field=f"spec.{key}"
        )
    return value


def _duration(spec: Mapping[str, Any], key: str, label: str, *, required: bool = False) -> float:
    text = _string(spec, key, label)
    if not text:
        if required:
            raise InputError("is required", obj=label, field=f"spec.{key}")
        return 0.0
    try:
        seconds = parse_duration(text)
    except ValueError:
        raise InputError(
            f"{text!r} is not a duration (like 30s, 5m, 1h30m)", obj=label, field=f"spec.{key}"
        ) from None
    if seconds <= 0:
        raise InputError(f"{text!r} must be positive", obj=label, field=f"spec.{key}")
    return seconds


def _refuse_ready_expr(spec: Mapping[str, Any], label: str) -> None:
    items = spec.get("dependsOn") or []
    for index, item in enumerate(items if isinstance(items, list) else []):
        if isinstance(item, Mapping) and item.get("readyExpr"):
            raise InputError(
                "is not supported by this reconciler yet; remove it to use Flux's built-in "
                "readiness check (Ready, observedGeneration and revision)",
                obj=label,
                field=f"spec.dependsOn[{index}].readyExpr",
            )


_UNSUPPORTED = {
    "kubeConfig": "applying to another cluster is not supported by this reconciler",
    "decryption": "SOPS decryption is not supported by this reconciler",
}


def _refuse_unsupported(spec: Mapping[str, Any], label: str) -> None:
    # Fail closed: ignoring kubeConfig would apply to this cluster instead of the one named, and
    # ignoring decryption would apply encrypted Secrets as they are.
    for key, why in _UNSUPPORTED.items():
        if spec.get(key):
            raise InputError(why, obj=label, field=f"spec.{key}")
