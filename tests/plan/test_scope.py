"""Namespaced kinds without a namespace fail as Flux's apply does; unknown scopes are said."""

from __future__ import annotations

from core.changes import ClusterPlan, UnitPlan, UnitStatus
from core.model import Manifest, UnitRef
from core.plan import plan as planning
from core.units import RenderedUnit
from tests.plan.builders import cluster, flux_object, ks, ks_ref

APPS, INFRA = ks_ref("apps"), ks_ref("infra")


def certificate(namespace: str | None) -> Manifest:
    meta = {"name": "web", **({"namespace": namespace} if namespace else {})}
    body = {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": meta}
    return Manifest("cert-manager.io/v1", body)


def crd(scope: str) -> Manifest:
    body = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "certificates.cert-manager.io"},
        "spec": {"group": "cert-manager.io", "names": {"kind": "Certificate"}, "scope": scope},
    }
    return Manifest("apiextensions.k8s.io/v1", body)


def root() -> RenderedUnit:
    return ks("flux-system", flux_object(APPS), flux_object(INFRA), parent=None)


def plan_head(*apps: Manifest, infra: tuple[Manifest, ...] = ()) -> ClusterPlan:
    base = cluster(root(), ks("apps"), ks("infra", *infra))
    head = cluster(root(), ks("apps", *apps), ks("infra", *infra))
    return planning.plan_cluster(base, head)


def unit(plan: ClusterPlan, ref: UnitRef) -> UnitPlan:
    return next(u for u in plan.units if u.unit == ref)


def test_a_namespaced_custom_resource_without_a_namespace_fails_at_head() -> None:
    plan = plan_head(certificate(None), infra=(crd("Namespaced"),))

    apps = unit(plan, APPS)
    assert apps.status is UnitStatus.FAILED
    assert apps.error is not None
    assert apps.error.startswith("at head: Certificate/web namespace not specified")
    assert apps.changes == ()


def test_with_a_namespace_or_a_cluster_scoped_crd_it_is_created() -> None:
    namespaced = unit(plan_head(certificate("web"), infra=(crd("Namespaced"),)), APPS)
    assert namespaced.status is UnitStatus.RENDERED
    cluster_scoped = unit(plan_head(certificate(None), infra=(crd("Cluster"),)), APPS)
    assert cluster_scoped.status is UnitStatus.RENDERED
    assert cluster_scoped.notices == ()


def test_an_unknown_scope_is_said_without_failing() -> None:
    apps = unit(plan_head(certificate(None)), APPS)

    assert apps.status is UnitStatus.RENDERED
    [notice] = apps.notices
    assert notice.startswith("the scope of Certificate (cert-manager.io) is unknown")
    assert "Certificate/web has no namespace" in notice
