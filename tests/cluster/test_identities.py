"""RBAC applies to the identities tests mint: client certificates, ServiceAccount tokens and
impersonation through the admin all get exactly what a Role grants, and 403 for the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client as k8s

from devenv.controlplane import ControlPlane
from tests.cluster.kube import eventually, status_of
from tests.fixtures.controlplane import api_client

pytestmark = pytest.mark.cluster

READER_ROLE = {
    "metadata": {"name": "configmap-reader"},
    "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
}


def _grant(kube_client: Any, namespace: str, subject: dict[str, str]) -> None:
    rbac = k8s.RbacAuthorizationV1Api(kube_client)
    rbac.create_namespaced_role(namespace, READER_ROLE)
    binding = {
        "metadata": {"name": "configmap-reader"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "configmap-reader",
        },
        "subjects": [subject],
    }
    rbac.create_namespaced_role_binding(namespace, binding)


def _who_am_i(api: Any) -> tuple[str, list[str]]:
    review = k8s.AuthenticationV1Api(api).create_self_subject_review({"metadata": {}})
    info = review.status.user_info
    return info.username, list(info.groups or [])


def _checks(api: Any, namespace: str) -> dict[str, Callable[[], object]]:
    core = k8s.CoreV1Api(api)
    return {
        "list configmaps": lambda: core.list_namespaced_config_map(namespace),
        "get configmap": lambda: core.read_namespaced_config_map("seed", namespace),
        "create configmap": lambda: core.create_namespaced_config_map(
            namespace, {"metadata": {"name": "new"}}
        ),
        "list secrets": lambda: core.list_namespaced_secret(namespace),
        "list configmaps elsewhere": lambda: core.list_namespaced_config_map("default"),
    }


def _statuses(api: Any, namespace: str) -> dict[str, int]:
    return {what: status_of(call) for what, call in _checks(api, namespace).items()}


GRANTED = {
    "list configmaps": 200,
    "get configmap": 200,
    "create configmap": 403,
    "list secrets": 403,
    "list configmaps elsewhere": 403,
}
NOTHING = dict.fromkeys(GRANTED, 403)


def _eventually_granted(api: Any, namespace: str) -> None:
    # The RBAC authorizer reads bindings from an informer, so a grant takes effect shortly after.
    eventually(lambda: _statuses(api, namespace) == GRANTED, "the RoleBinding to take effect")


@pytest.fixture
def seeded(kube_client: Any, namespace: str) -> str:
    k8s.CoreV1Api(kube_client).create_namespaced_config_map(
        namespace, {"metadata": {"name": "seed"}}
    )
    return namespace


def test_a_client_certificate_user_gets_what_its_group_is_granted(
    control_plane: ControlPlane, kube_client: Any, seeded: str
) -> None:
    kubeconfig = control_plane.client_kubeconfig("alice", ["team-a", "readers"])

    with api_client(kubeconfig) as alice:
        assert _who_am_i(alice) == ("alice", ["team-a", "readers", "system:authenticated"])
        assert _statuses(alice, seeded) == NOTHING
        _grant(
            kube_client,
            seeded,
            {"kind": "Group", "name": "team-a", "apiGroup": "rbac.authorization.k8s.io"},
        )
        _eventually_granted(alice, seeded)


def test_a_service_account_token_gets_what_its_role_binding_grants(
    control_plane: ControlPlane, kube_client: Any, seeded: str
) -> None:
    kubeconfig = control_plane.service_account_kubeconfig(seeded, "reconciler")

    with api_client(kubeconfig) as account:
        user, groups = _who_am_i(account)
        assert user == f"system:serviceaccount:{seeded}:reconciler"
        assert f"system:serviceaccounts:{seeded}" in groups
        assert _statuses(account, seeded) == NOTHING
        _grant(
            kube_client,
            seeded,
            {"kind": "ServiceAccount", "name": "reconciler", "namespace": seeded},
        )
        _eventually_granted(account, seeded)


def test_impersonating_a_service_account_obeys_its_permissions(
    control_plane: ControlPlane, kube_client: Any, seeded: str
) -> None:
    core = k8s.CoreV1Api(kube_client)
    core.create_namespaced_service_account(seeded, {"metadata": {"name": "granted"}})
    core.create_namespaced_service_account(seeded, {"metadata": {"name": "bare"}})
    _grant(kube_client, seeded, {"kind": "ServiceAccount", "name": "granted", "namespace": seeded})

    with (
        api_client(control_plane.admin_kubeconfig) as granted,
        api_client(control_plane.admin_kubeconfig) as bare,
    ):
        granted.set_default_header("Impersonate-User", f"system:serviceaccount:{seeded}:granted")
        bare.set_default_header("Impersonate-User", f"system:serviceaccount:{seeded}:bare")

        assert _who_am_i(granted)[0] == f"system:serviceaccount:{seeded}:granted"
        _eventually_granted(granted, seeded)
        assert _statuses(bare, seeded) == NOTHING
