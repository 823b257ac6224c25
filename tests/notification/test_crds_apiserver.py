"""The CRDs apply to the real control plane, and what the router uses is what it reads back.

Alerts, Providers and Secrets are read through `ClusterStore`, the store the controller uses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from core.cluster.fluxobjects import LiveCluster as FluxObjects
from core.cluster.live import LiveCluster
from core.fetch import FetchPolicy
from reconciler.notification.delivery import Dispatcher
from reconciler.notification.manifests import crds
from reconciler.notification.service import Notifier
from reconciler.notification.store import ClusterStore
from tests.cluster.kube import apply, unique_name
from tests.notification.objects import (
    API,
    alert_obj,
    install_notification_crds,
    ks_event,
    provider_obj,
)
from tests.notification.receivers import receiver

TOKEN = "CANARY-cluster-token-5d1e"


@pytest.fixture(scope="module")
def notification_crds(dynamic_client: Any) -> None:
    install_notification_crds(dynamic_client)


@pytest.fixture
def namespace(kube_client: Any) -> Iterator[str]:
    name = unique_name("notify")
    core = k8s.CoreV1Api(kube_client)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def test_flux_names_and_printer_columns() -> None:
    by_kind = {crd["spec"]["names"]["kind"]: crd for crd in crds()}
    assert by_kind["Provider"]["metadata"]["name"] == "providers.notification.toolkit.fluxcd.io"
    assert by_kind["Alert"]["metadata"]["name"] == "alerts.notification.toolkit.fluxcd.io"
    for crd in by_kind.values():
        (version,) = crd["spec"]["versions"]
        assert version["name"] == "v1beta3"
        assert [c["name"] for c in version["additionalPrinterColumns"]] == ["Age"]


def test_objects_read_back_from_the_api_server_route_and_deliver(
    notification_crds: None, dynamic_client: Any, kube_client: Any, namespace: str
) -> None:
    with receiver() as hook:
        k8s.CoreV1Api(kube_client).create_namespaced_secret(
            namespace,
            {
                "metadata": {"name": "hmac"},
                "stringData": {"token": TOKEN, "address": hook.url},
            },
        )
        provider = provider_obj(
            "signed", {"type": "generic-hmac", "secretRef": {"name": "hmac"}}, namespace
        )
        del provider["metadata"]["uid"]
        apply(dynamic_client, provider)
        apply(
            dynamic_client,
            alert_obj(
                "errors",
                {
                    "providerRef": {"name": "signed"},
                    "eventSeverity": "error",
                    "eventSources": [{"kind": "Kustomization", "name": "*"}],
                    "exclusionList": ["ignored"],
                },
                namespace,
            ),
        )
        alerts = dynamic_client.resources.get(api_version=API, kind="Alert")
        live = alerts.get(name="errors", namespace=namespace).to_dict()
        assert live["spec"]["eventSeverity"] == "error"

        dispatcher = Dispatcher(
            FetchPolicy(allowed_hosts=frozenset({hook.host}), allow_loopback=True)
        )
        dispatcher.start()
        store = ClusterStore(LiveCluster(kube_client), FluxObjects(kube_client))
        notifier = Notifier(store, dispatcher)
        assert notifier.notify(ks_event("apps", namespace=namespace)) == 0
        assert (
            notifier.notify(
                ks_event("apps", namespace=namespace, severity="error", message="ignored")
            )
            == 0
        )
        assert (
            notifier.notify(
                ks_event("apps", namespace=namespace, severity="error", message="failed")
            )
            == 1
        )
        dispatcher.drain()
        dispatcher.stop()
    assert [json.loads(r.body)["message"] for r in hook.received] == ["failed"]
    assert hook.received[0].headers["x-signature"].startswith("sha256=")
    assert TOKEN.encode() not in hook.received[0].body


def test_api_server_rejects_a_provider_type_flux_does_not_know(
    notification_crds: None, dynamic_client: Any, namespace: str
) -> None:
    from kubernetes.client.exceptions import ApiException

    bad = provider_obj("bad", {"type": "carrier-pigeon"}, namespace)
    del bad["metadata"]["uid"]
    with pytest.raises(ApiException) as caught:
        apply(dynamic_client, bad)
    assert caught.value.status == 422


def test_the_cluster_store_reads_none_for_what_does_not_exist(
    notification_crds: None, kube_client: Any
) -> None:
    store = ClusterStore(LiveCluster(kube_client), FluxObjects(kube_client))
    assert store.get_object(API, "Alert", "default", unique_name("missing")) is None
    assert store.secret_data("default", unique_name("missing")) is None
    assert store.list_objects("notification.example.dev/v1", "Alert") == []
