"""kstatus's own table of cases (cli-utils `status_compute_test.go`), plus the messages it prints.

Each case is the object kstatus's tests use, in YAML, with the status and the standard condition
(type and reason) kstatus expects; the messages are checked where Flux prints them.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
import yaml

from core.health import Condition, Result, Status, compute

NOW = datetime.datetime(2026, 11, 30, 12, 0, 0, tzinfo=datetime.UTC)

# name -> (object, status, (condition type, reason) or None for no condition)
CASES: dict[str, tuple[str, Status, tuple[str, str] | None]] = {
    "podNoStatus": (
        "apiVersion: v1\nkind: Pod\nmetadata: {generation: 1, name: test}",
        Status.IN_PROGRESS,
        ("Reconciling", "PodNotObserved"),
    ),
    "podReady": (
        """
apiVersion: v1
kind: Pod
metadata: {generation: 1, name: test, namespace: qual}
status:
  conditions: [{type: Ready, status: "True"}]
  phase: Running
""",
        Status.CURRENT,
        None,
    ),
    "podCompletedSuccessfully": (
        """
apiVersion: v1
kind: Pod
metadata: {generation: 1, name: test, namespace: qual}
status:
  phase: Succeeded
  conditions: [{type: Ready, status: "False", reason: PodCompleted}]
""",
        Status.CURRENT,
        None,
    ),
    "podCompletedFailed": (
        """
apiVersion: v1
kind: Pod
metadata: {generation: 1, name: test, namespace: qual}
status:
  phase: Failed
  conditions: [{type: Ready, status: "False", reason: PodCompleted}]
""",
        Status.CURRENT,
        None,
    ),
    "podBeingScheduled": (
        """
apiVersion: v1
kind: Pod
metadata: {creationTimestamp: "2026-11-30T11:59:55Z", generation: 1, name: test}
status:
  phase: Pending
  conditions: [{type: PodScheduled, status: "False", reason: Unschedulable}]
""",
        Status.IN_PROGRESS,
        ("Reconciling", "PodNotScheduled"),
    ),
    "podUnschedulable": (
        """
apiVersion: v1
kind: Pod
metadata: {generation: 1, name: test, namespace: qual}
status:
  phase: Pending
  conditions: [{type: PodScheduled, status: "False", reason: Unschedulable}]
""",
        Status.FAILED,
        ("Stalled", "PodUnschedulable"),
    ),
    "podCrashLooping": (
        """
apiVersion: v1
kind: Pod
metadata: {generation: 1, name: test, namespace: qual}
status:
  phase: Running
  conditions: [{type: PodScheduled, status: "False", reason: Unschedulable}]
  containerStatuses:
  - name: nginx
    state: {waiting: {reason: CrashLoopBackOff}}
""",
        Status.FAILED,
        ("Stalled", "ContainerCrashLooping"),
    ),
    "pvcNoStatus": (
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {generation: 1, name: test}",
        Status.IN_PROGRESS,
        ("Reconciling", "NotBound"),
    ),
    "pvcBound": (
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {generation: 1, name: test}\n"
        "status: {phase: Bound}",
        Status.CURRENT,
        None,
    ),
    "stsNoStatus": (
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {generation: 1, name: test}",
        Status.IN_PROGRESS,
        ("Reconciling", "LessReplicas"),
    ),
    "stsBadStatus": (
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {generation: 1, name: test}\n"
        "status: {observedGeneration: 1, currentReplicas: 1}",
        Status.IN_PROGRESS,
        ("Reconciling", "LessReplicas"),
    ),
    "stsOK": (
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {generation: 1, name: test}\n"
        "spec: {replicas: 4}\n"
        "status: {observedGeneration: 1, currentReplicas: 4, readyReplicas: 4, replicas: 4}",
        Status.CURRENT,
        None,
    ),
    "stsLessReady": (
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {generation: 1, name: test}\n"
        "spec: {replicas: 4}\n"
        "status: {observedGeneration: 1, currentReplicas: 4, readyReplicas: 2, replicas: 4}",
        Status.IN_PROGRESS,
        ("Reconciling", "LessReady"),
    ),
    "stsLessCurrent": (
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {generation: 1, name: test}\n"
        "spec: {replicas: 4}\n"
        "status: {observedGeneration: 1, currentReplicas: 2, readyReplicas: 4, replicas: 4}",
        Status.IN_PROGRESS,
        ("Reconciling", "LessCurrent"),
    ),
    "stsExtraPods": (
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {generation: 1, name: test}\n"
        "spec: {replicas: 4}\n"
        "status: {observedGeneration: 1, currentReplicas: 4, readyReplicas: 4, replicas: 8}",
        Status.IN_PROGRESS,
        ("Reconciling", "ExtraPods"),
    ),
    "dsNoStatus": (
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {generation: 1, name: test}",
        Status.IN_PROGRESS,
        ("Reconciling", "NoObservedGeneration"),
    ),
    "dsBadStatus": (
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {generation: 1, name: test}\n"
        "status: {observedGeneration: 1, currentReplicas: 1}",
        Status.IN_PROGRESS,
        ("Reconciling", "NoDesiredNumber"),
    ),
    "dsOK": (
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {generation: 1, name: test}\n"
        "status: {desiredNumberScheduled: 4, currentNumberScheduled: 4,"
        " updatedNumberScheduled: 4, numberAvailable: 4, numberReady: 4, observedGeneration: 1}",
        Status.CURRENT,
        None,
    ),
    "dsDifferentGeneration": (
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {generation: 2, name: test}\n"
        "status: {desiredNumberScheduled: 4, currentNumberScheduled: 4,"
        " updatedNumberScheduled: 4, numberAvailable: 4, numberReady: 4, observedGeneration: 1}",
        Status.IN_PROGRESS,
        ("Reconciling", "LatestGenerationNotObserved"),
    ),
    "dsLessReady": (
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {generation: 1, name: test}\n"
        "status: {desiredNumberScheduled: 4, currentNumberScheduled: 4,"
        " updatedNumberScheduled: 4, numberAvailable: 4, numberReady: 2, observedGeneration: 1}",
        Status.IN_PROGRESS,
        ("Reconciling", "LessReady"),
    ),
    "dsLessAvailable": (
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {generation: 1, name: test}\n"
        "status: {desiredNumberScheduled: 4, currentNumberScheduled: 4,"
        " updatedNumberScheduled: 4, numberAvailable: 2, numberReady: 4, observedGeneration: 1}",
        Status.IN_PROGRESS,
        ("Reconciling", "LessAvailable"),
    ),
    "depNoStatus": (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {generation: 1, name: test}",
        Status.IN_PROGRESS,
        ("Reconciling", "LessReplicas"),
    ),
    "depOK": (
        """
apiVersion: apps/v1
kind: Deployment
metadata: {generation: 1, name: test}
status:
  observedGeneration: 1
  updatedReplicas: 1
  readyReplicas: 1
  availableReplicas: 1
  replicas: 1
  conditions:
  - {type: Progressing, status: "True", reason: NewReplicaSetAvailable}
  - {type: Available, status: "True"}
""",
        Status.CURRENT,
        None,
    ),
    "depNotProgressing": (
        """
apiVersion: apps/v1
kind: Deployment
metadata: {generation: 1, name: test}
spec: {progressDeadlineSeconds: 45}
status:
  observedGeneration: 1
  updatedReplicas: 1
  readyReplicas: 1
  availableReplicas: 1
  replicas: 1
  conditions:
  - {type: Progressing, status: "False", reason: Some reason}
  - {type: Available, status: "True"}
""",
        Status.IN_PROGRESS,
        ("Reconciling", "ReplicaSetNotAvailable"),
    ),
    "depNoProgressDeadlineSeconds": (
        """
apiVersion: apps/v1
kind: Deployment
metadata: {generation: 1, name: test}
status:
  observedGeneration: 1
  updatedReplicas: 1
  readyReplicas: 1
  availableReplicas: 1
  replicas: 1
  conditions:
  - {type: Available, status: "True"}
""",
        Status.CURRENT,
        None,
    ),
    "depNotAvailable": (
        """
apiVersion: apps/v1
kind: Deployment
metadata: {generation: 1, name: test}
status:
  observedGeneration: 1
  updatedReplicas: 1
  readyReplicas: 1
  availableReplicas: 1
  replicas: 1
  conditions:
  - {type: Progressing, status: "True", reason: NewReplicaSetAvailable}
  - {type: Available, status: "False"}
""",
        Status.IN_PROGRESS,
        ("Reconciling", "DeploymentNotAvailable"),
    ),
    "depProgressDeadlineExceeded": (
        """
apiVersion: apps/v1
kind: Deployment
metadata: {generation: 1, name: test}
spec: {progressDeadlineSeconds: 5}
status:
  observedGeneration: 1
  replicas: 1
  conditions:
  - type: Progressing
    status: "False"
    reason: ProgressDeadlineExceeded
    message: ReplicaSet "test-1" has timed out progressing.
""",
        Status.FAILED,
        ("Stalled", "ProgressDeadlineExceeded"),
    ),
    "rsNoStatus": (
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {generation: 1, name: test}",
        Status.IN_PROGRESS,
        ("Reconciling", "LessLabelled"),
    ),
    "rsOK1": (
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {generation: 1, name: test}\n"
        "spec: {replicas: 2}\n"
        "status: {observedGeneration: 1, replicas: 2, readyReplicas: 2, availableReplicas: 2,"
        ' fullyLabeledReplicas: 2, conditions: [{type: ReplicaFailure, status: "False"}]}',
        Status.CURRENT,
        None,
    ),
    "rsOK2": (
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {generation: 1, name: test}\n"
        "spec: {replicas: 2}\n"
        "status: {observedGeneration: 1, fullyLabeledReplicas: 2, replicas: 2,"
        " readyReplicas: 2, availableReplicas: 2}",
        Status.CURRENT,
        None,
    ),
    "rsLessAvailable": (
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {generation: 1, name: test}\n"
        "spec: {replicas: 4}\n"
        "status: {observedGeneration: 1, replicas: 4, readyReplicas: 4, availableReplicas: 2,"
        " fullyLabeledReplicas: 4}",
        Status.IN_PROGRESS,
        ("Reconciling", "LessAvailable"),
    ),
    "rsLessReady": (
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {generation: 1, name: test}\n"
        "spec: {replicas: 4}\n"
        "status: {observedGeneration: 1, replicas: 4, readyReplicas: 2, availableReplicas: 4,"
        " fullyLabeledReplicas: 4}",
        Status.IN_PROGRESS,
        ("Reconciling", "LessReady"),
    ),
    "rsReplicaFailure": (
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {generation: 1, name: test}\n"
        "spec: {replicas: 4}\n"
        "status: {observedGeneration: 1, replicas: 4, readyReplicas: 4, fullyLabeledReplicas: 4,"
        ' availableReplicas: 4, conditions: [{type: ReplicaFailure, status: "True"}]}',
        Status.IN_PROGRESS,
        ("Reconciling", "ReplicaFailure"),
    ),
    "pdbNotObserved": (
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\n"
        "metadata: {generation: 2, name: test}\nstatus: {observedGeneration: 1}",
        Status.IN_PROGRESS,
        ("Reconciling", "LatestGenerationNotObserved"),
    ),
    "pdbObserved": (
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\n"
        "metadata: {generation: 1, name: test}\nstatus: {observedGeneration: 1}",
        Status.CURRENT,
        None,
    ),
    "crNoStatus": (
        "apiVersion: something/v1\nkind: MyCR\nmetadata: {generation: 1, name: test}",
        Status.CURRENT,
        None,
    ),
    "crMismatchStatusGeneration": (
        "apiVersion: something/v1\nkind: MyCR\nmetadata: {generation: 2, name: test}\n"
        "status: {observedGeneration: 1}",
        Status.IN_PROGRESS,
        ("Reconciling", "LatestGenerationNotObserved"),
    ),
    "crReady": (
        "apiVersion: something/v1\nkind: MyCR\nmetadata: {generation: 1, name: test}\n"
        'status: {conditions: [{type: Ready, status: "True", message: All looks ok,'
        " reason: AllOk}]}",
        Status.CURRENT,
        None,
    ),
    "crNotReady": (
        "apiVersion: something/v1\nkind: MyCR\nmetadata: {generation: 1, name: test}\n"
        'status: {observedGeneration: 1, conditions: [{type: Ready, status: "False",'
        " reason: NotReadyYet}]}",
        Status.IN_PROGRESS,
        ("Reconciling", "NotReadyYet"),
    ),
    "crNoCondition": (
        "apiVersion: something/v1\nkind: MyCR\nmetadata: {generation: 1, name: test}\n"
        'status: {conditions: [{type: SomeCondition, status: "False"}]}',
        Status.CURRENT,
        None,
    ),
    "crReconciling": (
        "apiVersion: something/v1\nkind: MyCR\nmetadata: {generation: 1, name: test}\n"
        'status: {conditions: [{type: Reconciling, status: "True", reason: Progressing,'
        ' message: working}, {type: Ready, status: "True"}]}',
        Status.IN_PROGRESS,
        ("Reconciling", "Progressing"),
    ),
    "crStalled": (
        "apiVersion: something/v1\nkind: MyCR\nmetadata: {generation: 1, name: test}\n"
        'status: {conditions: [{type: Stalled, status: "True", reason: BadConfig,'
        ' message: no way}, {type: Ready, status: "False"}]}',
        Status.FAILED,
        ("Stalled", "BadConfig"),
    ),
    "jobNoStatus": (
        "apiVersion: batch/v1\nkind: Job\nmetadata: {generation: 1, name: test}",
        Status.IN_PROGRESS,
        ("Reconciling", "JobNotStarted"),
    ),
    "jobComplete": (
        "apiVersion: batch/v1\nkind: Job\nmetadata: {generation: 1, name: test}\n"
        'status: {succeeded: 1, active: 0, conditions: [{type: Complete, status: "True"}]}',
        Status.CURRENT,
        None,
    ),
    "jobFailed": (
        "apiVersion: batch/v1\nkind: Job\nmetadata: {generation: 1, name: test}\n"
        "spec: {completions: 4}\n"
        'status: {succeeded: 3, failed: 1, conditions: [{type: Failed, status: "True",'
        " reason: JobFailed}]}",
        Status.FAILED,
        ("Stalled", "JobFailed"),
    ),
    "jobInProgress": (
        "apiVersion: batch/v1\nkind: Job\nmetadata: {generation: 1, name: test}\n"
        "spec: {completions: 10, parallelism: 2}\n"
        'status: {startTime: "2019-06-04T01:17:13Z", succeeded: 3, failed: 1, active: 2,'
        ' conditions: [{type: Failed, status: "False"}, {type: Complete, status: "False"}]}',
        Status.CURRENT,
        None,
    ),
    "cronjobNoStatus": (
        "apiVersion: batch/v1\nkind: CronJob\nmetadata: {generation: 1, name: test}",
        Status.CURRENT,
        None,
    ),
    "serviceDefault": (
        "apiVersion: v1\nkind: Service\nmetadata: {generation: 1, name: test}",
        Status.CURRENT,
        None,
    ),
    "serviceNodePort": (
        "apiVersion: v1\nkind: Service\nmetadata: {generation: 1, name: test}\n"
        "spec: {type: NodePort}",
        Status.CURRENT,
        None,
    ),
    "serviceLBnok": (
        "apiVersion: v1\nkind: Service\nmetadata: {generation: 1, name: test}\n"
        "spec: {type: LoadBalancer}",
        Status.IN_PROGRESS,
        ("Reconciling", "NoIPAssigned"),
    ),
    "serviceLBok": (
        "apiVersion: v1\nkind: Service\nmetadata: {generation: 1, name: test}\n"
        'spec: {type: LoadBalancer, clusterIP: "1.2.3.4"}',
        Status.CURRENT,
        None,
    ),
    "crdNoConditions": (
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
        "metadata: {generation: 1}",
        Status.IN_PROGRESS,
        ("Reconciling", "Installing"),
    ),
    "crdInstalling": (
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
        "metadata: {generation: 1}\n"
        'status: {conditions: [{type: NamesAccepted, status: "True", reason: NoConflicts},'
        ' {type: Established, status: "False", reason: Installing}]}',
        Status.IN_PROGRESS,
        ("Reconciling", "Installing"),
    ),
    "crdNamesNotAccepted": (
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
        "metadata: {generation: 1}\n"
        'status: {conditions: [{type: NamesAccepted, status: "False", reason: SomeReason}]}',
        Status.FAILED,
        ("Stalled", "SomeReason"),
    ),
    "crdEstablished": (
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
        "metadata: {generation: 1}\n"
        'status: {conditions: [{type: NamesAccepted, status: "True", reason: NoConflicts},'
        ' {type: Established, status: "True", reason: InitialNamesAccepted}]}',
        Status.CURRENT,
        None,
    ),
    "terminating": (
        "apiVersion: apps/v1\nkind: Deployment\n"
        'metadata: {generation: 1, name: test, deletionTimestamp: "2026-11-30T11:00:00Z"}',
        Status.TERMINATING,
        None,
    ),
}


def _compute(text: str) -> Result:
    obj: dict[str, Any] = yaml.safe_load(text)
    return compute(obj, NOW)


@pytest.mark.parametrize("name", sorted(CASES))
def test_kstatus_case(name: str) -> None:
    text, status, condition = CASES[name]

    result = _compute(text)

    assert result.status is status
    found = [(c.type, c.reason) for c in result.conditions]
    assert found == ([condition] if condition else [])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {generation: 3, name: d}\n"
            "status: {observedGeneration: 2}",
            "Deployment generation is 3, but latest observed generation is 2",
        ),
        (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {generation: 1, name: d}\n"
            "spec: {replicas: 3}\nstatus: {observedGeneration: 1, replicas: 1}",
            "Replicas: 1/3",
        ),
        (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {generation: 1, name: d}\n"
            "spec: {replicas: 2}\nstatus: {observedGeneration: 1, replicas: 2, updatedReplicas: 2,"
            " availableReplicas: 1, readyReplicas: 1}",
            "Available: 1/2",
        ),
        (
            "apiVersion: batch/v1\nkind: Job\nmetadata: {generation: 1, name: j}\n"
            "spec: {completions: 4}\n"
            'status: {failed: 2, conditions: [{type: Failed, status: "True"}]}',
            "Job Failed. failed: 2/4",
        ),
        (
            "apiVersion: batch/v1\nkind: Job\nmetadata: {generation: 1, name: j}\n"
            'status: {succeeded: 1, conditions: [{type: Complete, status: "True"}]}',
            "Job Completed. succeeded: 1/1",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nstatus:\n  phase: Running\n"
            "  containerStatuses:\n  - {name: a, state: {waiting: {reason: CrashLoopBackOff}}}\n"
            "  - {name: b, state: {running: {}}}\n"
            "  - {name: c, state: {waiting: {reason: CrashLoopBackOff}}}",
            "Containers in CrashLoop state: a,c",
        ),
        (
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {generation: 1, name: s}\n"
            "spec: {replicas: 3, updateStrategy: {rollingUpdate: {partition: 1}}}\n"
            "status: {replicas: 3, readyReplicas: 3, updatedReplicas: 1}",
            "updated: 1/2",
        ),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}", "Resource is always ready"),
        ("apiVersion: example.com/v1\nkind: Thing\nmetadata: {name: t}", "Resource is current"),
        (
            "apiVersion: example.com/v1\nkind: Thing\nmetadata: {name: t}\n"
            'status: {conditions: [{type: Ready, status: "True"}]}',
            "Resource is Ready",
        ),
    ],
)
def test_messages_read_as_kstatus_prints_them(text: str, message: str) -> None:
    assert _compute(text).message == message


def test_a_deadline_exceeded_deployment_is_stalled_with_the_controllers_message() -> None:
    result = _compute(CASES["depProgressDeadlineExceeded"][0])

    assert result.message == "Progress deadline exceeded"
    assert result.conditions == (
        Condition(
            "Stalled", "ProgressDeadlineExceeded", 'ReplicaSet "test-1" has timed out progressing.'
        ),
    )


def test_a_pod_is_unschedulable_only_after_the_schedule_window() -> None:
    text = CASES["podBeingScheduled"][0]
    obj: dict[str, Any] = yaml.safe_load(text)

    early = compute(obj, NOW)
    late = compute(obj, NOW + datetime.timedelta(seconds=15))

    assert early.status is Status.IN_PROGRESS
    assert late.status is Status.FAILED
    assert late.message == "Pod could not be scheduled"


def test_flux_objects_are_read_through_their_conditions() -> None:
    retrying = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "apps", "generation": 2},
        "status": {
            "observedGeneration": 2,
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "BuildFailed", "message": "x"},
                {"type": "Reconciling", "status": "True", "reason": "ProgressingWithRetry"},
            ],
        },
    }
    ready = {
        **retrying,
        "status": {
            "observedGeneration": 2,
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded"}
            ],
        },
    }

    assert compute(retrying).status is Status.IN_PROGRESS
    assert compute(ready).status is Status.CURRENT


@pytest.mark.parametrize(
    "obj",
    [
        {},
        {"status": "nonsense"},
        {"kind": "Deployment", "apiVersion": "apps/v1", "spec": {"replicas": "3"}},
        {"kind": "Pod", "apiVersion": "v1", "status": {"conditions": ["x", 3], "phase": 7}},
        {"kind": "Thing", "apiVersion": "x/v1", "metadata": {"generation": True}},
    ],
)
def test_malformed_objects_never_raise(obj: dict[str, Any]) -> None:
    assert isinstance(compute(obj, NOW).status, Status)


def test_an_unknown_pod_phase_is_unknown() -> None:
    result = compute({"apiVersion": "v1", "kind": "Pod", "status": {"phase": "Weird"}}, NOW)

    assert result.status is Status.UNKNOWN
    assert result.message == "unknown phase Weird"
