"""`spec.ignore` drift rules in the apply engine, against the real control plane.

An autoscaler is played by `kubectl scale` (an update through the scale subresource, as the HPA
controller writes) and by a server-side apply under another field manager; the engine must leave
the ignored field as they set it, and count an object whose only differences are ignored as
unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.cleartext import Clear
from core.cluster.live import LiveCluster
from core.cluster.port import FIELD_MANAGER
from reconciler.apply import Options, Owner, apply_objects
from reconciler.changeset import Action
from reconciler.drift_ignore import parse_rules
from tests.cluster.kube import kubectl, kubectl_get

pytestmark = pytest.mark.cluster

OWNER = Owner("podinfo", "flux-system")
REPLICAS = Options(
    ignore=parse_rules([{"paths": ["/spec/replicas"], "target": {"kind": "Deployment"}}], "ks")
)


@pytest.fixture
def port(kube_client: Any) -> LiveCluster:
    return LiveCluster(kube_client)


def _deployment(namespace: str, image: str = "registry.test/app:1") -> Clear:
    labels = {"app": "web"}
    return Clear(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "app", "image": image}]},
                },
            },
        },
        None,
    )


def _live(kubeconfig: Path, namespace: str) -> Any:
    return kubectl_get(kubeconfig, "deployment", "web", "-n", namespace)


def _owns_replicas(live: Any, manager: str) -> bool:
    return any(
        m["manager"] == manager
        and m["operation"] == "Apply"
        and "f:replicas" in m.get("fieldsV1", {}).get("f:spec", {})
        for m in live["metadata"]["managedFields"]
    )


def _entries(live: Any, manager: str) -> list[Any]:
    return [m for m in live["metadata"]["managedFields"] if m["manager"] == manager]


def test_a_scaled_deployment_is_unchanged_when_its_replicas_are_ignored(
    port: LiveCluster, namespace: str, admin_kubeconfig: Path
) -> None:
    created = apply_objects(port, [_deployment(namespace)], owner=OWNER, options=REPLICAS)
    assert created.actions() == {f"Deployment/{namespace}/web": Action.CREATED}
    assert _live(admin_kubeconfig, namespace)["spec"]["replicas"] == 1  # created whole
    kubectl(admin_kubeconfig, "scale", "deployment/web", "-n", namespace, "--replicas=3")
    before = _live(admin_kubeconfig, namespace)

    result = apply_objects(port, [_deployment(namespace)], owner=OWNER, options=REPLICAS)

    assert result.actions() == {f"Deployment/{namespace}/web": Action.UNCHANGED}
    live = _live(admin_kubeconfig, namespace)
    assert live["spec"]["replicas"] == 3
    # Nothing was written: the spec's generation and our manager's entry are as they were. (The
    # resourceVersion is no witness: the Deployment controller keeps writing status.)
    assert live["metadata"]["generation"] == before["metadata"]["generation"]
    assert _entries(live, FIELD_MANAGER) == _entries(before, FIELD_MANAGER)


def test_other_drift_is_corrected_while_the_scaled_replicas_are_kept(
    port: LiveCluster, namespace: str, admin_kubeconfig: Path
) -> None:
    apply_objects(port, [_deployment(namespace)], owner=OWNER, options=REPLICAS)
    kubectl(admin_kubeconfig, "scale", "deployment/web", "-n", namespace, "--replicas=3")

    result = apply_objects(
        port, [_deployment(namespace, "registry.test/app:2")], owner=OWNER, options=REPLICAS
    )

    assert result.actions() == {f"Deployment/{namespace}/web": Action.CONFIGURED}
    live = _live(admin_kubeconfig, namespace)
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.test/app:2"
    assert live["spec"]["replicas"] == 3
    # Nobody else applies replicas, so the engine keeps them by sending the live value.
    assert _owns_replicas(live, FIELD_MANAGER)


def test_a_field_another_manager_applies_is_released_to_it(
    port: LiveCluster, namespace: str, admin_kubeconfig: Path, tmp_path: Path
) -> None:
    apply_objects(port, [_deployment(namespace)], owner=OWNER, options=REPLICAS)
    scale = tmp_path / "scale.yaml"
    scale.write_text(
        "apiVersion: apps/v1\nkind: Deployment\n"
        f"metadata: {{name: web, namespace: {namespace}}}\nspec: {{replicas: 4}}\n"
    )
    kubectl(
        admin_kubeconfig,
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=autoscaler",
        "-f",
        str(scale),
    )

    result = apply_objects(
        port, [_deployment(namespace, "registry.test/app:2")], owner=OWNER, options=REPLICAS
    )

    assert result.actions() == {f"Deployment/{namespace}/web": Action.CONFIGURED}
    live = _live(admin_kubeconfig, namespace)
    assert live["spec"]["replicas"] == 4
    assert _owns_replicas(live, "autoscaler")
    assert not _owns_replicas(live, FIELD_MANAGER)


def test_without_a_matching_rule_the_drift_is_reverted(
    port: LiveCluster, namespace: str, admin_kubeconfig: Path
) -> None:
    # The rule selects ConfigMaps only, so the Deployment's replicas are Flux's again.
    options = Options(
        ignore=parse_rules([{"paths": ["/spec/replicas"], "target": {"kind": "ConfigMap"}}], "ks")
    )
    apply_objects(port, [_deployment(namespace)], owner=OWNER, options=options)
    kubectl(admin_kubeconfig, "scale", "deployment/web", "-n", namespace, "--replicas=3")

    result = apply_objects(port, [_deployment(namespace)], owner=OWNER, options=options)

    assert result.actions() == {f"Deployment/{namespace}/web": Action.CONFIGURED}
    assert _live(admin_kubeconfig, namespace)["spec"]["replicas"] == 1
