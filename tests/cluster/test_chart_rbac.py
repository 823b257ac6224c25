"""The chart's RBAC, used with a token of the ServiceAccount the chart creates (not the admin).

The chart is rendered with the pinned helm and applied with the pinned kubectl (server-side) into
the local control plane. With `rbac.clusterAdmin=false` the identity can do the reconciler's own
job (read and write Flux objects and their status, events, its Lease, impersonate a
ServiceAccount) and nothing else; with the default `true` it can also apply workloads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from core.cluster.fluxobjects import LiveCluster
from devenv.controlplane import ControlPlane
from reconciler.leader import LeaderElector, lease_name
from tests.cluster.chart import install_chart
from tests.cluster.fluxcrds import install_flux_crds
from tests.cluster.kube import status_of, unique_name
from tests.fixtures.controlplane import api_client

pytestmark = pytest.mark.cluster

KS = ("kustomize.toolkit.fluxcd.io", "v1")


def _install(
    helm: Path, kubeconfig: Path, release: str, namespace: str, tmp: Path, admin: bool
) -> None:
    install_chart(
        helm, kubeconfig, release, namespace, tmp, f"rbac.clusterAdmin={str(admin).lower()}"
    )


@pytest.fixture
def workload_namespace(kube_client: Any) -> Any:
    name = unique_name("work")
    k8s.CoreV1Api(kube_client).create_namespace({"metadata": {"name": name}})
    yield name
    k8s.CoreV1Api(kube_client).delete_namespace(name)


def test_the_chart_identity_can_do_the_reconcilers_job_and_no_more(
    helm_bin: Path,
    control_plane: ControlPlane,
    admin_kubeconfig: Path,
    dynamic_client: Any,
    kube_client: Any,
    namespace: str,
    workload_namespace: str,
    tmp_path: Path,
) -> None:
    install_flux_crds(dynamic_client)
    release = unique_name("tg")
    _install(helm_bin, admin_kubeconfig, release, namespace, tmp_path, admin=False)
    work = workload_namespace
    # A tenant ServiceAccount that may only manage ConfigMaps in its namespace.
    core = k8s.CoreV1Api(kube_client)
    core.create_namespaced_service_account(work, {"metadata": {"name": "deployer"}})
    rbac = k8s.RbacAuthorizationV1Api(kube_client)
    rbac.create_namespaced_role(
        work,
        {
            "metadata": {"name": "deployer"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        work,
        {
            "metadata": {"name": "deployer"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "deployer",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": work}],
        },
    )
    k8s.CustomObjectsApi(kube_client).create_namespaced_custom_object(
        *KS,
        work,
        "kustomizations",
        {
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": "apps"},
            "spec": {"path": "./", "serviceAccountName": "deployer"},
        },
    )
    token = control_plane.service_account_kubeconfig(
        namespace, f"{release}-reconciler", create=False
    )

    with api_client(token) as api:
        objects = k8s.CustomObjectsApi(api)
        # Its job: read Kustomizations, set the finalizer, write status, emit events, lead.
        assert status_of(lambda: objects.list_cluster_custom_object(*KS, "kustomizations")) == 200
        assert (
            status_of(
                lambda: objects.patch_namespaced_custom_object(
                    *KS,
                    work,
                    "kustomizations",
                    "apps",
                    {"metadata": {"finalizers": ["finalizers.fluxcd.io"]}},
                )
            )
            == 200
        )
        assert (
            status_of(
                lambda: objects.patch_namespaced_custom_object_status(
                    *KS, work, "kustomizations", "apps", {"status": {"observedGeneration": 1}}
                )
            )
            == 200
        )
        event = {
            "metadata": {"generateName": "apps-"},
            "involvedObject": {"kind": "Kustomization", "name": "apps", "namespace": work},
            "reason": "Progressing",
            "message": "x",
            "type": "Normal",
        }
        assert status_of(lambda: k8s.CoreV1Api(api).create_namespaced_event(work, event)) == 200
        elector = LeaderElector(LiveCluster(api), namespace, lease_name(), "replica-1")
        assert elector.try_acquire_or_renew() is True
        # Not its job: Leases elsewhere, workloads, namespaces, RBAC.
        elsewhere = LeaderElector(LiveCluster(api), work, lease_name(), "replica-1")
        with pytest.raises(Exception, match="HTTP 403"):
            elsewhere.try_acquire_or_renew()
        deployment = {
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"matchLabels": {"a": "b"}},
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]},
                },
            },
        }
        assert (
            status_of(lambda: k8s.AppsV1Api(api).create_namespaced_deployment(work, deployment))
            == 403
        )
        assert (
            status_of(
                lambda: k8s.CoreV1Api(api).create_namespaced_config_map(
                    work, {"metadata": {"name": "direct"}}
                )
            )
            == 403
        )
        assert status_of(lambda: k8s.CoreV1Api(api).delete_namespace(work)) == 403
        assert (
            status_of(
                lambda: k8s.RbacAuthorizationV1Api(api).create_cluster_role_binding(
                    {
                        "metadata": {"name": unique_name("escalate")},
                        "roleRef": {
                            "apiGroup": "rbac.authorization.k8s.io",
                            "kind": "ClusterRole",
                            "name": "cluster-admin",
                        },
                        "subjects": [{"kind": "ServiceAccount", "name": "x", "namespace": work}],
                    }
                )
            )
            == 403
        )

    # spec.serviceAccountName: it may act as the tenant's ServiceAccount, with its rights only.
    with api_client(token) as api:
        api.set_default_header("Impersonate-User", f"system:serviceaccount:{work}:deployer")
        core_as_tenant = k8s.CoreV1Api(api)
        assert (
            status_of(
                lambda: core_as_tenant.create_namespaced_config_map(
                    work, {"metadata": {"name": "via-sa"}}
                )
            )
            == 200
        )
        assert (
            status_of(lambda: k8s.AppsV1Api(api).create_namespaced_deployment(work, deployment))
            == 403
        )
    # ...but not as a user or a group: the apiserver refuses the impersonation itself.
    for header, value in (
        ("Impersonate-User", "kubernetes-admin"),
        ("Impersonate-Group", "system:masters"),
    ):
        with api_client(token) as api:
            api.set_default_header(header, value)
            if header == "Impersonate-Group":
                api.set_default_header("Impersonate-User", f"system:serviceaccount:{work}:deployer")
            with pytest.raises(ApiException) as refused:
                k8s.CoreV1Api(api).list_namespace()
            assert refused.value.status == 403
            assert "cannot impersonate resource" in str(refused.value.body)

    # The default (Flux's choice): cluster-admin, so it can apply any workload itself.
    _install(helm_bin, admin_kubeconfig, release, namespace, tmp_path, admin=True)
    with api_client(token) as api:
        assert (
            status_of(lambda: k8s.AppsV1Api(api).create_namespaced_deployment(work, deployment))
            == 200
        )
