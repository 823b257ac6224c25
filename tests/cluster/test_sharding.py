"""Shard selectors split Kustomizations between replicas on the real apiserver."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from core.cluster.fluxobjects import KUSTOMIZATION, LiveCluster
from reconciler.sharding import SHARD_LABEL, selector
from tests.cluster.fluxcrds import install_flux_crds

pytestmark = pytest.mark.cluster


def test_each_kustomization_is_watched_by_exactly_one_replica(
    admin_kubeconfig: Path, dynamic_client: Any, kube_client: Any, namespace: str
) -> None:
    install_flux_crds(dynamic_client)
    api = k8s.CustomObjectsApi(kube_client)
    for name, shard in (("main", None), ("one", "shard1"), ("two", "shard2")):
        labels = {} if shard is None else {SHARD_LABEL: shard}
        api.create_namespaced_custom_object(
            "kustomize.toolkit.fluxcd.io",
            "v1",
            namespace,
            "kustomizations",
            {
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                "kind": "Kustomization",
                "metadata": {"name": name, "labels": labels},
                "spec": {"path": "./"},
            },
        )
    cluster = LiveCluster.from_kubeconfig(admin_kubeconfig)
    try:
        seen = {
            shard: sorted(
                o["metadata"]["name"]
                for o in cluster.list(KUSTOMIZATION, namespace, selector(shard))
            )
            for shard in (None, "shard1", "shard2")
        }
    finally:
        cluster.close()
    assert seen == {None: ["main"], "shard1": ["one"], "shard2": ["two"]}
