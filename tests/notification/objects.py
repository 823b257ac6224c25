"""Builders of Provider, Alert and event test objects."""

from __future__ import annotations

from typing import Any

from reconciler.notification.event import Event, ObjectReference
from reconciler.notification.manifests import crds
from tests.cluster.kube import apply, eventually

API = "notification.toolkit.fluxcd.io/v1beta3"
KS_API = "kustomize.toolkit.fluxcd.io/v1"


def install_notification_crds(dynamic_client: Any) -> None:
    """Apply the Provider and Alert CRDs to the control plane and wait until they are served."""
    definitions = dynamic_client.resources.get(
        api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition"
    )
    for crd in crds():
        apply(dynamic_client, crd)

        def established(name: str = crd["metadata"]["name"]) -> bool:
            conditions = definitions.get(name=name).to_dict().get("status", {}).get("conditions")
            return any(
                c["type"] == "Established" and c["status"] == "True" for c in conditions or []
            )

        eventually(established, f"{crd['metadata']['name']} to be established")
    dynamic_client.resources.invalidate_cache()


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
