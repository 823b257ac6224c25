"""Prune and the finalizer's deletion policies against the real control plane."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.cleartext import Clear
from core.cluster.live import LiveCluster
from core.inventory import Inventory
from reconciler.apply import ApplyError, Owner, apply_objects
from reconciler.changeset import Action, ChangeSet
from reconciler.prune import PruneError, finalize, prune
from tests.cluster.kube import kubectl

pytestmark = pytest.mark.cluster

OWNER = Owner("apps", "flux-system")


@pytest.fixture
def port(kube_client: Any) -> LiveCluster:
    """The live adapter on the admin client."""
    return LiveCluster(kube_client)


def _config_map(namespace: str, name: str, **meta: Any) -> Clear:
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, **meta},
        "data": {"name": name},
    }
    return Clear(body, None)


def _names(kubeconfig: Path, namespace: str) -> set[str]:
    listed = kubectl(kubeconfig, "get", "configmaps", "-n", namespace, "-o", "name")
    return {line.removeprefix("configmap/") for line in listed.split()} - {"kube-root-ca.crt"}


def _first(port: LiveCluster, namespace: str, *names: str) -> Inventory:
    objects = [_config_map(namespace, name) for name in names]
    return apply_objects(port, objects, owner=OWNER).inventory()


def test_prune_deletes_what_left_the_set_and_keeps_the_rest(
    port: LiveCluster, namespace: str, admin_kubeconfig: Path
) -> None:
    old = _first(port, namespace, "keep", "drop")

    applied = apply_objects(port, [_config_map(namespace, "keep")], owner=OWNER)
    result = prune(port, old, applied, OWNER)

    assert result.change_set.summary() == f"ConfigMap/{namespace}/drop deleted"
    assert [e.id for e in result.inventory.entries] == [f"{namespace}_keep__ConfigMap"]
    assert not result.failed
    assert _names(admin_kubeconfig, namespace) == {"keep"}


def test_prune_skips_objects_another_owner_took_or_marked_to_keep(
    port: LiveCluster, namespace: str, admin_kubeconfig: Path
) -> None:
    old = _first(port, namespace, "adopted", "protected", "unlabelled", "gone")
    cm = ("-n", namespace)
    kubectl(
        admin_kubeconfig,
        "label",
        "configmap/adopted",
        *cm,
        "--overwrite",
        "kustomize.toolkit.fluxcd.io/name=other",
    )
    kubectl(
        admin_kubeconfig,
        "annotate",
        "configmap/protected",
        *cm,
        "kustomize.toolkit.fluxcd.io/prune=Disabled",
    )
    kubectl(
        admin_kubeconfig,
        "label",
        "configmap/unlabelled",
        *cm,
        "kustomize.toolkit.fluxcd.io/namespace-",
    )
    kubectl(admin_kubeconfig, "delete", "configmap/gone", *cm)

    applied = apply_objects(port, [], owner=OWNER)
    result = prune(port, old, applied, OWNER)

    assert result.change_set.actions() == {
        f"ConfigMap/{namespace}/adopted": Action.SKIPPED,
        f"ConfigMap/{namespace}/protected": Action.SKIPPED,
        f"ConfigMap/{namespace}/unlabelled": Action.SKIPPED,
        f"ConfigMap/{namespace}/gone": Action.DELETED,
    }
    assert _names(admin_kubeconfig, namespace) == {"adopted", "protected", "unlabelled"}
    assert len(result.inventory) == 0


def test_nothing_is_pruned_after_a_failed_apply(
    port: LiveCluster, namespace: str, admin_kubeconfig: Path
) -> None:
    old = _first(port, namespace, "stays")
    broken = Clear(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "Not_Valid", "namespace": namespace},
        },
        None,
    )

    with pytest.raises(ApplyError) as refused:
        apply_objects(port, [broken], owner=OWNER)
    with pytest.raises(PruneError, match="apply did not complete"):
        prune(port, old, refused.value.change_set, OWNER)
    with pytest.raises(PruneError):
        prune(port, old, ChangeSet(), OWNER)

    assert "metadata.name" in refused.value.fields
    assert _names(admin_kubeconfig, namespace) == {"stays"}


def test_a_refused_delete_keeps_the_object_in_the_inventory(
    port: LiveCluster, namespace: str, admin_kubeconfig: Path
) -> None:
    old = _first(port, namespace, "kept", "doomed")
    # Only the Kustomization's own objects may be read and deleted by a ServiceAccount that
    # cannot delete ConfigMaps: the refusal must keep the object tracked.
    kubectl(admin_kubeconfig, "create", "serviceaccount", "pruner", "-n", namespace)
    kubectl(
        admin_kubeconfig,
        "create",
        "role",
        "reader",
        "-n",
        namespace,
        "--verb=get,list,patch",
        "--resource=configmaps",
    )
    kubectl(
        admin_kubeconfig,
        "create",
        "rolebinding",
        "pruner-reads",
        "-n",
        namespace,
        "--role=reader",
        f"--serviceaccount={namespace}:pruner",
    )
    view = port.impersonating(f"system:serviceaccount:{namespace}:pruner")
    try:
        applied = apply_objects(view, [_config_map(namespace, "kept")], owner=OWNER)
        result = prune(view, old, applied, OWNER)
    finally:
        view.close()

    assert result.failed
    assert result.message.startswith(f"delete failed, errors: ConfigMap/{namespace}/doomed: ")
    assert "forbidden" in result.message
    assert [e.id for e in result.inventory.entries] == [
        f"{namespace}_kept__ConfigMap",
        f"{namespace}_doomed__ConfigMap",
    ]
    assert _names(admin_kubeconfig, namespace) == {"kept", "doomed"}


@pytest.mark.parametrize(
    ("policy", "prune_enabled", "suspended", "deleted"),
    [
        ("MirrorPrune", True, False, True),
        ("MirrorPrune", False, False, False),
        ("Delete", False, False, True),
        ("Orphan", True, False, False),
        ("Delete", True, True, False),
    ],
)
def test_the_finalizer_follows_the_deletion_policy(
    port: LiveCluster,
    namespace: str,
    admin_kubeconfig: Path,
    policy: str,
    prune_enabled: bool,
    suspended: bool,
    deleted: bool,
) -> None:
    inventory = _first(port, namespace, "one", "two")

    result = finalize(
        port,
        inventory,
        OWNER,
        policy=policy,
        prune_enabled=prune_enabled,
        suspended=suspended,
    )

    assert _names(admin_kubeconfig, namespace) == (set() if deleted else {"one", "two"})
    assert len(result.change_set.changed) == (2 if deleted else 0)


def test_wait_for_termination_waits_for_objects_held_by_a_finalizer(
    port: LiveCluster, namespace: str, admin_kubeconfig: Path
) -> None:
    held = _config_map(namespace, "held", finalizers=["engine.tidegate.dev/hold"])
    inventory = apply_objects(port, [held], owner=OWNER).inventory()

    with pytest.raises(PruneError, match=f"termination of: ConfigMap/{namespace}/held"):
        finalize(
            port,
            inventory,
            OWNER,
            policy="WaitForTermination",
            prune_enabled=False,
            timeout=1.0,
            poll=0.2,
        )
    # Delete does not wait: it returns while the object is still terminating.
    result = finalize(port, inventory, OWNER, policy="Delete", prune_enabled=False)

    assert result.change_set.summary() == f"ConfigMap/{namespace}/held deleted"
    kubectl(
        admin_kubeconfig,
        "patch",
        "configmap/held",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"metadata":{"finalizers":null}}',
    )
    finalize(port, inventory, OWNER, policy="WaitForTermination", prune_enabled=False, timeout=60.0)
    assert _names(admin_kubeconfig, namespace) == set()
