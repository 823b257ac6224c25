"""Builders of Provider, Alert and event test objects."""

from __future__ import annotations

from typing import Any

from reconciler.notification.event import Event, ObjectReference

API = "notification.toolkit.fluxcd.io/v1beta3"
KS_API = "kustomize.toolkit.fluxcd.io/v1"


def provider_obj(name: str, spec: dict[str, Any], namespace: str = "flux-system") -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Provider",
        "metadata": {"name": name, "namespace": namespace, "uid": "0c9c2e41-aaaa-bbbb"},
        "spec": spec,
    }


def alert_obj(name: str, spec: dict[str, Any], namespace: str = "flux-system") -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Alert",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def ks_event(
    name: str = "apps",
    *,
    severity: str = "info",
    message: str = "Reconciliation finished in 1s, next run in 10m",
    reason: str = "ReconciliationSucceeded",
    namespace: str = "flux-system",
    metadata: dict[str, str] | None = None,
) -> Event:
    return Event(
        involved_object=ObjectReference(
            kind="Kustomization", name=name, namespace=namespace, api_version=KS_API, uid="u-1"
        ),
        severity=severity,
        timestamp="2026-11-30T09:00:00Z",
        message=message,
        reason=reason,
        reporting_controller="kustomize-controller",
        metadata=metadata
        if metadata is not None
        else {"kustomize.toolkit.fluxcd.io/revision": "main@sha1:0123abcd"},
    )
