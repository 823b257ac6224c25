"""Health, status and events against the real control plane (controllers, scheduler, kwok).

Deployments really become Available or stall, Jobs really complete, a custom resource's Ready
condition is written through its status subresource; the health checker reads them all through
the API as the reconciler does. The Kustomization status written by `reconciler.status` is read
back with the pinned kubectl (printer columns, `kubectl wait`), and recorded events with
`kubectl get events`.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from core.cluster.fluxobjects import LiveCluster
from core.cluster.live import LiveCluster as PortCluster
from core.health import Status, compute
from reconciler import crds
from reconciler import status as st
from reconciler.events import ERROR, INFO, EventRecorder, finished_message
from reconciler.health import ClusterReader, ExprRules, HealthChecker, ObjectRef, targets
from reconciler.status_writer import write_status
from tests.cluster.kube import apply, eventually, kubectl, kubectl_json, unique_name

pytestmark = pytest.mark.cluster

POLL = datetime.timedelta(seconds=0.5)
LONG = datetime.timedelta(minutes=5)
REV = "main@sha1:" + "d" * 40
GROUP = "tidegate-test.dev"


def _reader(dynamic_client: Any) -> ClusterReader:
    """The production reader: the cluster port's live adapter, on the session's client."""
    return ClusterReader(PortCluster(dynamic_client.client))


def _checker(dynamic_client: Any, rules: ExprRules | None = None) -> HealthChecker:
    return HealthChecker(_reader(dynamic_client), rules or ExprRules.none(), interval=POLL)


def _deployment(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    labels = {"app": name}
    pod_spec: dict[str, Any] = {"containers": [{"name": "app", "image": "registry.invalid/a:1"}]}
    if "nodeSelector" in spec:
        pod_spec["nodeSelector"] = spec.pop("nodeSelector")
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
            **spec,
        },
    }


def test_a_deployment_that_becomes_available_is_current(
    dynamic_client: Any, namespace: str
) -> None:
    apply(dynamic_client, _deployment(namespace, "web"))
    ref = ObjectRef("apps/v1", "Deployment", "web", namespace)

    report = _checker(dynamic_client).wait([ref], LONG)

    assert report.passed, report.message
    live = _reader(dynamic_client).read(ref)
    assert live is not None
    assert compute(live).message == "Deployment is available. Replicas: 2"


def test_an_unschedulable_deployment_fails_fast(dynamic_client: Any, namespace: str) -> None:
    body = _deployment(
        namespace, "stuck", progressDeadlineSeconds=2, nodeSelector={"no-such-label": "x"}
    )
    apply(dynamic_client, body)
    ref = ObjectRef("apps/v1", "Deployment", "stuck", namespace)

    report = _checker(dynamic_client).wait([ref], LONG)

    assert not report.passed
    assert re.fullmatch(
        rf"health check failed after [0-9.]+(ms|s|m[0-9.]+s): failed early due to stalled "
        rf"resources: \[Deployment/{namespace}/stuck status: 'Failed'\]",
        report.message,
    ), report.message
    assert report.observed[0].result.conditions[0].reason == "ProgressDeadlineExceeded"


def test_a_pod_that_cannot_be_scheduled_is_failed_after_the_window(
    kube_client: Any, dynamic_client: Any, namespace: str
) -> None:
    apply(dynamic_client, _deployment(namespace, "nowhere", nodeSelector={"no-such": "x"}))
    core = k8s.CoreV1Api(kube_client)

    def unschedulable_pod() -> Any:
        pods = core.list_namespaced_pod(namespace, label_selector="app=nowhere").items
        for pod in pods:
            for condition in (pod.status and pod.status.conditions) or []:
                if condition.type == "PodScheduled" and condition.reason == "Unschedulable":
                    return pod.metadata.name
        return None

    name = eventually(unschedulable_pod, "an Unschedulable pod")
    pod = _reader(dynamic_client).read(ObjectRef("v1", "Pod", name, namespace))
    assert pod is not None
    created = datetime.datetime.fromisoformat(
        pod["metadata"]["creationTimestamp"].replace("Z", "+00:00")
    )

    early = compute(pod, created + datetime.timedelta(seconds=1))
    late = compute(pod, created + datetime.timedelta(seconds=16))

    assert (early.status, early.conditions[0].reason) == (Status.IN_PROGRESS, "PodNotScheduled")
    assert (late.status, late.message) == (Status.FAILED, "Pod could not be scheduled")


def test_a_job_that_completes_is_current(dynamic_client: Any, namespace: str) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "migrate", "namespace": namespace},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "m", "image": "registry.invalid/m:1"}],
                }
            }
        },
    }
    apply(dynamic_client, job)
    ref = ObjectRef("batch/v1", "Job", "migrate", namespace)

    report = _checker(dynamic_client).wait([ref], LONG)

    # Flux's Job rule: Current only once the Job has completed, not as soon as it started.
    assert report.passed, report.message
    assert report.observed[0].result.message == "Job Completed. succeeded: 1/1"


# --- a custom resource under its CRD ----------------------------------------------------------


@pytest.fixture(scope="module")
def widget_crd(dynamic_client: Any) -> ObjectRef:
    name = f"widgets.{GROUP}"
    apply(
        dynamic_client,
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": name},
            "spec": {
                "group": GROUP,
                "scope": "Namespaced",
                "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "subresources": {"status": {}},
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            }
                        },
                    }
                ],
            },
        },
    )
    ref = ObjectRef("apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
    report = _checker(dynamic_client).wait([ref], LONG)
    assert report.passed, report.message
    dynamic_client.resources.invalidate_cache()
    return ref


def _widget(dynamic_client: Any, kube_client: Any, namespace: str, status: dict[str, Any]) -> str:
    name = unique_name("w")
    apply(
        dynamic_client,
        {
            "apiVersion": f"{GROUP}/v1",
            "kind": "Widget",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"size": 1},
        },
    )
    _widget_status(kube_client, namespace, name, status)
    return name


def _widget_status(kube_client: Any, namespace: str, name: str, status: dict[str, Any]) -> None:
    k8s.CustomObjectsApi(kube_client).patch_namespaced_custom_object_status(
        GROUP, "v1", namespace, "widgets", name, {"status": status}
    )


def _condition(type_: str, value: str, reason: str) -> dict[str, Any]:
    return {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": f"{type_} is {value}",
        "lastTransitionTime": "2026-11-30T12:00:00Z",
    }


def test_a_custom_resource_is_judged_by_its_ready_condition(
    widget_crd: ObjectRef, dynamic_client: Any, kube_client: Any, namespace: str
) -> None:
    name = _widget(dynamic_client, kube_client, namespace, {
        "observedGeneration": 1, "conditions": [_condition("Ready", "False", "Provisioning")],
    })  # fmt: skip
    ref = ObjectRef(f"{GROUP}/v1", "Widget", name, namespace)
    reader = _reader(dynamic_client)

    class FlipsReadyAfterFirstRead:
        reads = 0

        def read(self, ref: ObjectRef) -> Mapping[str, Any] | None:
            found = reader.read(ref)
            self.reads += 1
            if self.reads == 1:
                _widget_status(kube_client, namespace, name, {
                    "conditions": [_condition("Ready", "True", "Provisioned")],
                })  # fmt: skip
            return found

    first = reader.read(ref)
    assert first is not None
    assert compute(first).status is Status.IN_PROGRESS
    assert compute(first).conditions[0].reason == "Provisioning"

    flipping = FlipsReadyAfterFirstRead()
    report = HealthChecker(flipping, interval=POLL).wait([ref], LONG)

    assert report.passed, report.message
    assert flipping.reads == 2
    assert report.observed[0].result.message == "Resource is Ready"


def test_a_stalled_custom_resource_fails_fast(
    widget_crd: ObjectRef, dynamic_client: Any, kube_client: Any, namespace: str
) -> None:
    name = _widget(dynamic_client, kube_client, namespace, {
        "conditions": [_condition("Stalled", "True", "BadSpec"),
                       _condition("Ready", "False", "BadSpec")],
    })  # fmt: skip
    ref = ObjectRef(f"{GROUP}/v1", "Widget", name, namespace)

    report = _checker(dynamic_client).wait([ref], LONG)

    assert "failed early due to stalled resources: " in report.message
    assert report.message.endswith(f"[Widget/{namespace}/{name} status: 'Failed']")


def test_health_check_exprs_judge_a_custom_resource(
    widget_crd: ObjectRef, dynamic_client: Any, kube_client: Any, namespace: str
) -> None:
    rules = ExprRules.compile(
        {
            "metadata": {"name": "apps", "namespace": namespace},
            "spec": {
                "wait": True,
                "healthCheckExprs": [
                    {
                        "apiVersion": f"{GROUP}/v1",
                        "kind": "Widget",
                        "failed": "status.phase == 'Broken'",
                        "current": "status.phase == 'Running'",
                    }
                ],
            },
        }
    )
    name = _widget(dynamic_client, kube_client, namespace, {"phase": "Starting"})
    ref = ObjectRef(f"{GROUP}/v1", "Widget", name, namespace)
    checker = _checker(dynamic_client, rules)

    waiting = checker.wait([ref], datetime.timedelta(seconds=1))
    _widget_status(kube_client, namespace, name, {"phase": "Broken"})
    broken = checker.wait([ref], LONG)
    _widget_status(kube_client, namespace, name, {"phase": "Running"})
    running = checker.wait([ref], LONG)

    # Without the rule, kstatus would call this Widget (no conditions) Current at once.
    assert waiting.message.endswith(
        f"timeout waiting for: [Widget/{namespace}/{name} status: 'InProgress']"
    )
    assert "failed early due to stalled resources" in broken.message
    assert running.passed


# --- the Kustomization's status and events, read back with kubectl --------------------------


@pytest.fixture(scope="module")
def flux_crds(dynamic_client: Any) -> None:
    for crd in crds.documents():
        apply(dynamic_client, crd)
        ref = ObjectRef(
            "apiextensions.k8s.io/v1", "CustomResourceDefinition", crd["metadata"]["name"]
        )
        report = _checker(dynamic_client).wait([ref], LONG)
        assert report.passed, report.message
    dynamic_client.resources.invalidate_cache()


@pytest.fixture
def cluster(admin_kubeconfig: Path) -> Any:
    live = LiveCluster.from_kubeconfig(admin_kubeconfig)
    yield live
    live.close()


def _kustomization(dynamic_client: Any, namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    applied = apply(
        dynamic_client,
        {
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "interval": "10m",
                "prune": True,
                "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
                **spec,
            },
        },
    )
    result: dict[str, Any] = applied.to_dict()
    return result


def test_the_status_reads_as_fluxs_in_kubectl_and_health_checks(
    flux_crds: None,
    cluster: Any,
    kube_client: Any,
    dynamic_client: Any,
    admin_kubeconfig: Path,
    namespace: str,
) -> None:
    obj = _kustomization(dynamic_client, namespace, "apps")
    run = st.Run(obj["metadata"]["generation"], datetime.datetime.now(datetime.UTC))

    progressing = st.started(obj["status"], run, st.fetching_message(REV, LONG))
    obj = write_status(cluster, obj, progressing, lock=True)
    row_while_progressing = kubectl(admin_kubeconfig, "get", "ks", "-n", namespace).splitlines()[1]
    done = st.finished(st.succeeded(obj["status"], run, REV), run, "now-1")
    obj = write_status(cluster, obj, done, lock=True)

    assert row_while_progressing.split()[2:] == ["Unknown", "Reconciliation", "in", "progress"]
    kubectl(admin_kubeconfig, "wait", "--for=condition=Ready", "ks/apps", "-n", namespace,
            "--timeout=300s")  # fmt: skip
    header, row = kubectl(admin_kubeconfig, "get", "ks", "-n", namespace).splitlines()
    assert header.split() == ["NAME", "AGE", "READY", "STATUS"]
    assert row.split()[2:] == ["True", "Applied", "revision:", REV]
    live = kubectl_json(admin_kubeconfig, "get", "ks", "apps", "-n", namespace)
    assert live["status"]["lastAppliedRevision"] == REV
    assert live["status"]["lastHandledReconcileAt"] == "now-1"
    assert live["status"]["observedGeneration"] == 1
    assert [c["type"] for c in live["status"]["conditions"]] == ["Ready"]

    # Another Kustomization, in another namespace, waits for this one by healthChecks.
    other_namespace = unique_name("t")
    k8s.CoreV1Api(kube_client).create_namespace({"metadata": {"name": other_namespace}})
    try:
        waiter = _kustomization(
            dynamic_client, other_namespace, "waiter",
            healthChecks=[{"apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                           "kind": "Kustomization", "name": "apps", "namespace": namespace}],
        )  # fmt: skip
        report = _checker(dynamic_client).wait(targets(waiter, []), LONG)
    finally:
        k8s.CoreV1Api(kube_client).delete_namespace(other_namespace)
    assert report.passed, report.message


def test_a_failed_run_is_in_progress_for_kstatus_and_kubectl_shows_the_reason(
    flux_crds: None, cluster: Any, dynamic_client: Any, admin_kubeconfig: Path, namespace: str
) -> None:
    obj = _kustomization(dynamic_client, namespace, "apps")
    run = st.Run(obj["metadata"]["generation"], datetime.datetime.now(datetime.UTC))
    status = st.started(obj["status"], run, st.building_message(REV, LONG))
    status = st.failed(status, run, st.Reason.BUILD_FAILED, "kustomize build failed: bad patch")
    obj = write_status(cluster, obj, st.finished(status, run, None))

    ref = ObjectRef("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "apps", namespace)
    report = _checker(dynamic_client).wait([ref], datetime.timedelta(seconds=1))

    assert report.observed[0].result.status is Status.IN_PROGRESS
    row = kubectl(admin_kubeconfig, "get", "ks", "-n", namespace).splitlines()[1]
    assert row.split()[2:4] == ["False", "kustomize"]
    reasons = kubectl(admin_kubeconfig, "get", "ks", "apps", "-n", namespace, "-o",
                      "jsonpath={.status.conditions[*].reason}")  # fmt: skip
    assert reasons.split() == ["ProgressingWithRetry", "BuildFailed"]


def test_events_are_visible_with_kubectl(
    flux_crds: None, cluster: Any, dynamic_client: Any, admin_kubeconfig: Path, namespace: str
) -> None:
    obj = _kustomization(dynamic_client, namespace, "apps")
    run = st.Run(1, datetime.datetime.now(datetime.UTC))
    failed = st.failed(obj["status"], run, st.Reason.HEALTH_CHECK_FAILED, "unhealthy")
    got: list[Any] = []
    recorder = EventRecorder(cluster, [got.append], instance="tidegate-0")

    for _ in range(3):
        recorder.record({**obj, "status": failed}, ERROR, "health check failed after 1s: x",
                        revision=REV)  # fmt: skip
    ready = st.succeeded(obj["status"], run, REV)
    recorder.record({**obj, "status": ready}, INFO,
                    finished_message(datetime.timedelta(seconds=2), datetime.timedelta(minutes=10)),
                    revision=REV, commit_status=True)  # fmt: skip

    events = kubectl_json(admin_kubeconfig, "get", "events", "-n", namespace)["items"]
    mine = {e["reason"]: e for e in events if e["involvedObject"].get("name") == "apps"}
    assert set(mine) == {"HealthCheckFailed", "ReconciliationSucceeded"}
    warning, normal = mine["HealthCheckFailed"], mine["ReconciliationSucceeded"]
    assert (warning["type"], warning["count"]) == ("Warning", 3)
    assert warning["source"]["component"] == "kustomize-controller"
    assert warning["reportingComponent"] == "kustomize-controller"
    assert warning["involvedObject"]["kind"] == "Kustomization"
    assert warning["involvedObject"]["uid"] == obj["metadata"]["uid"]
    assert warning["metadata"]["annotations"] == {"kustomize.toolkit.fluxcd.io/revision": REV}
    assert normal["type"] == "Normal"
    assert normal["message"] == "Reconciliation finished in 2s, next run in 10m0s"
    assert normal["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/commit_status"] == (
        "update"
    )
    assert len(got) == 4
    table = kubectl(admin_kubeconfig, "get", "events", "-n", namespace,
                    "--field-selector", "involvedObject.name=apps")  # fmt: skip
    assert "HealthCheckFailed" in table
    assert "kustomization/apps" in table


def test_secret_values_reach_no_status_or_event(
    flux_crds: None, cluster: Any, dynamic_client: Any, admin_kubeconfig: Path, namespace: str
) -> None:
    value = "hunter2-" + unique_name("s")
    apply(dynamic_client, {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "creds", "namespace": namespace},
        "stringData": {"password": value},
    })  # fmt: skip
    secret = ObjectRef("v1", "Secret", "creds", namespace)
    obj = _kustomization(dynamic_client, namespace, "apps", wait=True)
    run = st.Run(1, datetime.datetime.now(datetime.UTC))
    recorder = EventRecorder(cluster, instance="tidegate-0")

    report = _checker(dynamic_client).wait(targets(obj, [secret]), LONG)
    status = st.succeeded(obj["status"], run, REV, health_checked=report.elapsed)
    obj = write_status(cluster, obj, status)
    recorder.record(obj, INFO, "Secret/" + namespace + "/creds configured", revision=REV)

    assert report.passed
    assert report.observed[0].result.message == "Resource is always ready"
    written = json.dumps(kubectl_json(admin_kubeconfig, "get", "ks", "apps", "-n", namespace))
    events = json.dumps(kubectl_json(admin_kubeconfig, "get", "events", "-n", namespace))
    for leaked in (value, base64.b64encode(value.encode()).decode()):
        assert leaked not in written
        assert leaked not in events
        assert leaked not in json.dumps([o.result.__dict__ for o in report.observed], default=str)


# --- more built-in kinds, as their controllers leave them ---------------------------------


def _labels(name: str) -> dict[str, Any]:
    return {
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "c", "image": "registry.invalid/c:1"}]},
        },
    }


def test_statefulsets_daemonsets_and_services_become_current(
    dynamic_client: Any, namespace: str
) -> None:
    bodies = [
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": namespace},
            "spec": {"replicas": 2, "serviceName": "db", **_labels("db")},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": namespace},
            "spec": _labels("agent"),
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "db", "namespace": namespace},
            "spec": {"selector": {"app": "db"}, "ports": [{"port": 5432}]},
        },
    ]
    for body in bodies:
        apply(dynamic_client, body)
    refs = [ObjectRef(b["apiVersion"], b["kind"], b["metadata"]["name"], namespace) for b in bodies]

    report = _checker(dynamic_client).wait(refs, LONG)

    assert report.passed, report.message
    assert [o.result.message for o in report.observed] == [
        # The apiserver defaults rollingUpdate.partition to 0, so kstatus takes its partition
        # branch for every StatefulSet.
        "Partition rollout complete. updated: 2",
        "All replicas scheduled as expected. Replicas: 2",  # one Pod on each of the two Nodes
        "Service is ready",
    ]


def test_an_unbound_claim_times_out_in_progress(dynamic_client: Any, namespace: str) -> None:
    apply(dynamic_client, {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": namespace},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "none",
                 "resources": {"requests": {"storage": "1Gi"}}},
    })  # fmt: skip
    ref = ObjectRef("v1", "PersistentVolumeClaim", "data", namespace)

    report = _checker(dynamic_client).wait([ref], datetime.timedelta(seconds=1))

    assert report.error == (
        f"timeout waiting for: [PersistentVolumeClaim/{namespace}/data status: 'InProgress']"
    )
    assert report.observed[0].result.message == "PVC is not Bound. phase: Pending"
