"""Metrics under Flux's names, served with the probes over real HTTP on loopback."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.metrics import Metrics, MetricsServer, flux_buckets

KS = {
    "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
    "kind": "Kustomization",
    "metadata": {"name": "apps", "namespace": "flux-system"},
    "spec": {"sourceRef": {"kind": "GitRepository", "name": "fleet"}},
    "status": {
        "lastAppliedRevision": "main@sha1:abc",
        "conditions": [{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded"}],
    },
}


@pytest.fixture
def served() -> Iterator[tuple[Metrics, MetricsServer, list[bool]]]:
    metrics = Metrics()
    readiness = [False]
    server = MetricsServer(metrics, lambda: readiness[0], host="127.0.0.1", port=0)
    server.start()
    yield metrics, server, readiness
    server.stop()


def _get(server: MetricsServer, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=60) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_buckets_are_go_exponential_buckets_range() -> None:
    buckets = flux_buckets()
    assert len(buckets) == 10
    assert buckets[0] == pytest.approx(0.01)
    assert buckets[-1] == pytest.approx(1800.0)
    assert buckets[1] / buckets[0] == pytest.approx(buckets[9] / buckets[8])


def test_probes_and_metrics_over_http(served: tuple[Metrics, MetricsServer, list[bool]]) -> None:
    metrics, server, readiness = served
    assert _get(server, "/healthz") == (200, "ok")
    assert _get(server, "/readyz")[0] == 503
    readiness[0] = True
    assert _get(server, "/readyz") == (200, "ok")
    assert _get(server, "/nope")[0] == 404

    metrics.observe("Kustomization", "flux-system", "apps", 0.2)
    metrics.record_state(KS)
    metrics.count_apply("Kustomization", "flux-system", "apps", "created")
    metrics.count_prune("Kustomization", "flux-system", "apps", "deleted")
    status, text = _get(server, "/metrics")
    assert status == 200
    samples = _samples(text)
    obj = (("kind", "Kustomization"), ("name", "apps"), ("namespace", "flux-system"))
    assert samples[("gotk_reconcile_duration_seconds_count", obj)] == 1
    assert (
        samples[("gotk_reconcile_duration_seconds_bucket", tuple(sorted((*obj, ("le", "0.01")))))]
        == 0
    )
    info = {
        "customresource_group": "kustomize.toolkit.fluxcd.io",
        "customresource_kind": "Kustomization",
        "customresource_version": "v1",
        "exported_namespace": "flux-system",
        "name": "apps",
        "ready": "True",
        "reason": "ReconciliationSucceeded",
        "revision": "main@sha1:abc",
        "source_name": "fleet",
        "suspended": "false",
    }
    assert samples[("gotk_resource_info", tuple(sorted(info.items())))] == 1
    assert (
        samples[("tidegate_applied_objects_total", tuple(sorted((*obj, ("action", "created")))))]
        == 1
    )
    assert (
        samples[("tidegate_pruned_objects_total", tuple(sorted((*obj, ("action", "deleted")))))]
        == 1
    )


def test_a_new_state_replaces_the_info_series_and_forget_drops_everything() -> None:
    metrics = Metrics()
    metrics.record_state(KS)
    suspended = {**KS, "spec": {**KS["spec"], "suspend": True}}  # type: ignore[dict-item]
    metrics.record_state(suspended)
    infos = [k for k in _samples(metrics.exposition().decode()) if k[0] == "gotk_resource_info"]
    assert len(infos) == 1
    assert ("suspended", "true") in infos[0][1]

    metrics.observe("Kustomization", "flux-system", "apps", 1.0)
    metrics.count_apply("Kustomization", "flux-system", "apps", "configured")
    metrics.forget("Kustomization", "flux-system", "apps")
    left = [k for k in _samples(metrics.exposition().decode()) if ("name", "apps") in k[1]]
    assert left == []
