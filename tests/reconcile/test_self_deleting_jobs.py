"""A Job that deletes itself when finished passes the health checks of a `wait: true` run.

The control plane runs no TTL-after-finished controller, so the test plays it: as soon as the
apply has created the Job (`ttlSecondsAfterFinished: 0`), it deletes it, as that controller does
once the Job finishes. Flux counts such a Job, gone, as healthy; a Job without the TTL that
disappears is still NotFound and fails the wait.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.cluster.kube import eventually, status_of
from tests.reconcile.conftest import Flux

pytestmark = pytest.mark.cluster


def _job(namespace: str, ttl: bool) -> str:
    extra = "\n  ttlSecondsAfterFinished: 0" if ttl else ""
    return f"""
apiVersion: batch/v1
kind: Job
metadata: {{name: migrate, namespace: {namespace}}}
spec:{extra}
  template:
    spec:
      restartPolicy: Never
      containers: [{{name: run, image: registry.invalid/migrate:1}}]
"""


def _play_ttl_controller(kube_client: Any, namespace: str) -> threading.Thread:
    batch = k8s.BatchV1Api(kube_client)

    def delete_once_created() -> None:
        eventually(
            lambda: status_of(lambda: batch.read_namespaced_job("migrate", namespace)) == 200,
            "the Job to be applied",
        )
        batch.delete_namespaced_job("migrate", namespace, propagation_policy="Background")

    thread = threading.Thread(target=delete_once_created, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("ttl", [True, False])
def test_a_job_gone_after_its_ttl_is_healthy(flux: Flux, kube_client: Any, ttl: bool) -> None:
    flux.create_apps_namespace()
    flux.commit({"deploy/job.yaml": _job(flux.apps_namespace, ttl)})
    flux.kustomization("apps", path="./deploy", wait=True, timeout="20s")
    deleter = _play_ttl_controller(kube_client, flux.apps_namespace)

    outcome = flux.driver.reconcile(flux.namespace, "apps")
    deleter.join(60)

    if ttl:
        assert outcome.ready, outcome.message
        assert flux.condition("apps", "Healthy")["status"] == "True"
    else:
        assert not outcome.ready
        assert outcome.reason == "HealthCheckFailed"
        assert f"Job/{flux.apps_namespace}/migrate status: 'NotFound'" in outcome.message
