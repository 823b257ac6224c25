"""Hand-built renders for planning and report tests.

`ClusterRender` is our own seam between rendering and planning, so tests build it directly: a few
objects, units that render them, and clusters of units. Secrets go through `core.secrets.Masker`
exactly as a renderer would pass them, so canary values can be planted and searched for.
"""

from __future__ import annotations

from typing import Any

from core.errors import Failure
from core.model import (
    FLUX_HELM_GROUP,
    FLUX_KUSTOMIZE_GROUP,
    Manifest,
    ObjectRef,
    RawObject,
    UnitKind,
    UnitRef,
)
from core.secrets import Masker
from core.units import ClusterRender, RenderedUnit

__all__ = [
    "CLUSTER",
    "ROOT",
    "cluster",
    "configmap",
    "deployment",
    "flux_object",
    "hr",
    "hr_ref",
    "ks",
    "ks_ref",
    "manifest",
    "secret",
]

CLUSTER = "clusters/production"


def ks_ref(name: str, namespace: str = "flux-system") -> UnitRef:
    return UnitRef(UnitKind.KUSTOMIZATION, namespace, name)


def hr_ref(name: str, namespace: str = "flux-system") -> UnitRef:
    return UnitRef(UnitKind.HELM_RELEASE, namespace, name)


ROOT = ks_ref("flux-system")
"""The cluster's root Kustomization, which renders the others."""


def _metadata(
    name: str,
    namespace: str | None,
    labels: dict[str, str] | None,
    annotations: dict[str, str] | None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def manifest(body: RawObject) -> Manifest:
    return Manifest(str(body["apiVersion"]), body)


def configmap(
    name: str,
    namespace: str = "web",
    data: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> Manifest:
    return manifest(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _metadata(name, namespace, labels, annotations),
            "data": dict(data or {"key": "value"}),
        }
    )


def deployment(
    name: str = "api",
    namespace: str = "web",
    *,
    replicas: int = 1,
    image: str = "ghcr.io/example/api:1.0.0",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    template_labels: dict[str, str] | None = None,
    template_annotations: dict[str, str] | None = None,
    status: dict[str, Any] | None = None,
) -> Manifest:
    template_meta: dict[str, Any] = {"labels": {"app": name, **(template_labels or {})}}
    if template_annotations:
        template_meta["annotations"] = dict(template_annotations)
    body: RawObject = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(name, namespace, labels, annotations),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": template_meta,
                "spec": {"containers": [{"name": name, "image": image}]},
            },
        },
    }
    if status is not None:
        body["status"] = status
    return manifest(body)


def secret(
    masker: Masker,
    name: str,
    values: dict[str, str],
    namespace: str = "web",
    *,
    sops: dict[str, Any] | None = None,
) -> Manifest:
    """A Secret masked the way a renderer hands it over (stringData in cleartext, then masked)."""
    body: RawObject = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(name, namespace, None, None),
        "type": "Opaque",
        "stringData": dict(values),
    }
    if sops is not None:
        body["sops"] = sops
    return manifest(masker.mask_object(body))


def flux_object(unit: UnitRef, annotations: dict[str, str] | None = None) -> Manifest:
    """The Flux object of a unit, as its parent renders it."""
    if unit.kind is UnitKind.HELM_RELEASE:
        api_version = f"{FLUX_HELM_GROUP}/v2"
        spec: dict[str, Any] = {"chart": {"spec": {"chart": unit.name}}}
    else:
        api_version = f"{FLUX_KUSTOMIZE_GROUP}/v1"
        spec = {"path": f"./apps/{unit.name}", "prune": True}
    return manifest(
        {
            "apiVersion": api_version,
            "kind": unit.kind.value,
            "metadata": _metadata(unit.name, unit.namespace, None, annotations),
            "spec": spec,
        }
    )


def _objects(manifests: tuple[Manifest, ...]) -> dict[ObjectRef, Manifest]:
    return {m.ref: m for m in manifests}


def ks(
    name: str,
    *manifests: Manifest,
    prune: bool = True,
    parent: UnitRef | None = ROOT,
    suspend: bool = False,
    deletion_policy: str = "MirrorPrune",
    error: str | None = None,
    failure: Failure | None = None,
) -> RenderedUnit:
    """A Kustomization render; `error` makes it a failed render (its objects are unknown)."""
    unit = ks_ref(name)
    return RenderedUnit(
        unit=unit,
        prune=prune,
        objects=None if error else _objects(manifests),
        error=error,
        failure=failure,
        parent=None if unit == ROOT else parent,
        suspend=suspend,
        deletion_policy=deletion_policy,
        path=f"./apps/{name}",
    )


def hr(
    name: str,
    *manifests: Manifest,
    parent: UnitRef | None = ROOT,
    suspend: bool = False,
    error: str | None = None,
) -> RenderedUnit:
    """A HelmRelease render: HelmReleases always prune what leaves the chart."""
    return RenderedUnit(
        unit=hr_ref(name),
        prune=True,
        objects=None if error else _objects(manifests),
        error=error,
        parent=parent,
        suspend=suspend,
        path=name,
    )


def cluster(
    *units: RenderedUnit, path: str = CLUSTER, errors: tuple[str, ...] = ()
) -> ClusterRender:
    return ClusterRender(path=path, units={u.unit: u for u in units}, errors=errors)
