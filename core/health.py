"""kstatus: the status of one Kubernetes object, computed from the object alone.

A port of sigs.k8s.io/cli-utils `pkg/kstatus/status` (the rules Flux's health checks, `flux`
and kstatus-based tools use), as pure functions on the object as a plain dict, as the API returns
it. The order of the rules is kstatus's:

1. `metadata.deletionTimestamp` set: Terminating.
2. `status.observedGeneration` present and not `metadata.generation`: InProgress
   (`LatestGenerationNotObserved`).
3. A `Reconciling=True` condition: InProgress; a `Stalled=True` condition: Failed (the first
   of the two in the list wins), with the condition's reason and message.
4. The rules of a built-in kind (Deployment, StatefulSet, DaemonSet, ReplicaSet, Pod, Job,
   PodDisruptionBudget, PersistentVolumeClaim, Service, CustomResourceDefinition; ConfigMap,
   Secret and CronJob are always Current).
5. A `Ready` condition: True is Current, False or Unknown is InProgress.
6. Otherwise Current ("Resource is current"): a custom resource with none of these conditions
   is taken as it is.

Results carry kstatus's status, message and the Reconciling/Stalled condition kstatus would
add, with kstatus's reasons (`LessReplicas`, `ProgressDeadlineExceeded`, ...), so messages read
exactly as Flux prints them. NotFound and Unknown are never computed here: the caller that reads
the cluster uses them for a missing object and an unreadable one.

The only input besides the object is `now`, for the one time-dependent rule (a Pod is given 15
seconds to be scheduled before it counts as unschedulable). Nothing here reads the cluster,
logs, or raises on a malformed object: a value of the wrong type counts as absent, as kstatus's
field helpers do.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "SCHEDULE_WINDOW",
    "Condition",
    "Result",
    "Status",
    "compute",
]

SCHEDULE_WINDOW = datetime.timedelta(seconds=15)
"""How long a Pod may stay unscheduled before kstatus reports it as Failed."""

_NO_DEADLINE = 2**31 - 1  # the Deployment controller's "no progress deadline" (math.MaxInt32)


class Status(enum.StrEnum):
    """kstatus's statuses, spelled as kstatus prints them."""

    IN_PROGRESS = "InProgress"
    FAILED = "Failed"
    CURRENT = "Current"
    TERMINATING = "Terminating"
    NOT_FOUND = "NotFound"
    UNKNOWN = "Unknown"


@dataclass(frozen=True)
class Condition:
    """A standard condition kstatus adds to its result (Reconciling or Stalled, always True)."""

    type: str
    reason: str
    message: str
    status: str = "True"


@dataclass(frozen=True)
class Result:
    """The status of one object, a human message, and the standard conditions it implies."""

    status: Status
    message: str
    conditions: tuple[Condition, ...] = field(default=())


def _in_progress(reason: str, message: str) -> Result:
    return Result(Status.IN_PROGRESS, message, (Condition("Reconciling", reason, message),))


def _failed(reason: str, message: str) -> Result:
    return Result(Status.FAILED, message, (Condition("Stalled", reason, message),))


def _current(message: str) -> Result:
    return Result(Status.CURRENT, message)


# --- field access, lenient like kstatus's GetIntField / GetStringField ------------------------


def _path(obj: Mapping[str, Any], dotted: str) -> Any:
    value: Any = obj
    for key in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _int(obj: Mapping[str, Any], dotted: str, default: int) -> int:
    value = _path(obj, dotted)
    # bool is an int in Python but never in JSON's integer fields.
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _str(obj: Mapping[str, Any], dotted: str, default: str) -> str:
    value = _path(obj, dotted)
    return value if isinstance(value, str) else default


def _conditions(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = _path(obj, "status.conditions")
    if not isinstance(found, Sequence) or isinstance(found, str):
        return []
    return [c for c in found if isinstance(c, Mapping)]


def _text(condition: Mapping[str, Any], key: str) -> str:
    value = condition.get(key)
    return value if isinstance(value, str) else ""


def _has(conditions: Sequence[Mapping[str, Any]], type_: str, status: str) -> bool:
    return any(c.get("type") == type_ and c.get("status") == status for c in conditions)


# --- the generic rules -------------------------------------------------------------------------


def _generic(obj: Mapping[str, Any]) -> Result | None:
    """Deletion, the observed generation, and the Reconciling / Stalled conditions."""
    if _str(obj, "metadata.deletionTimestamp", ""):
        return Result(Status.TERMINATING, "Resource scheduled for deletion")
    generation = _path(obj, "metadata.generation")
    observed = _path(obj, "status.observedGeneration")
    if isinstance(generation, int) and isinstance(observed, int) and observed != generation:
        kind = _str(obj, "kind", "")
        message = f"{kind} generation is {generation}, but latest observed generation is {observed}"
        return _in_progress("LatestGenerationNotObserved", message)
    for condition in _conditions(obj):
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Reconciling":
            return _in_progress(_text(condition, "reason"), _text(condition, "message"))
        if condition.get("type") == "Stalled":
            return _failed(_text(condition, "reason"), _text(condition, "message"))
    return None


def _ready_condition(obj: Mapping[str, Any]) -> Result | None:
    """The widely used `Ready` condition, kstatus's last resort before "current"."""
    for condition in _conditions(obj):
        if condition.get("type") != "Ready":
            continue
        if condition.get("status") == "True":
            return _current("Resource is Ready")
        if condition.get("status") in ("False", "Unknown"):
            return _in_progress(_text(condition, "reason"), _text(condition, "message"))
    return None


# --- built-in kinds ----------------------------------------------------------------------------


def _always_ready(obj: Mapping[str, Any], now: datetime.datetime) -> Result:
    return _current("Resource is always ready")


def _replicas(obj: Mapping[str, Any]) -> int:
    return _int(obj, "spec.replicas", 1)  # the controllers' default


def _deployment(obj: Mapping[str, Any], now: datetime.datetime) -> Result:
    # Without a progress deadline the controller never sets Progressing, so kstatus cannot
    # wait for it.
    progressing = _int(obj, "spec.progressDeadlineSeconds", _NO_DEADLINE) == _NO_DEADLINE
    available = False
    for condition in _conditions(obj):
        if condition.get("type") == "Progressing":
            if condition.get("reason") == "ProgressDeadlineExceeded":
                stalled = Condition(
                    "Stalled", "ProgressDeadlineExceeded", _text(condition, "message")
                )
                return Result(Status.FAILED, "Progress deadline exceeded", (stalled,))
            if condition.get("status") == "True" and condition.get("reason") == (
                "NewReplicaSetAvailable"
            ):
                progressing = True
        elif condition.get("type") == "Available" and condition.get("status") == "True":
            available = True
    spec = _replicas(obj)
    replicas = _int(obj, "status.replicas", 0)
    updated = _int(obj, "status.updatedReplicas", 0)
    ready = _int(obj, "status.readyReplicas", 0)
    available_replicas = _int(obj, "status.availableReplicas", 0)
    if spec > replicas:
        return _in_progress("LessReplicas", f"Replicas: {replicas}/{spec}")
    if spec > updated:
        return _in_progress("LessUpdated", f"Updated: {updated}/{spec}")
    if replicas > spec:
        return _in_progress("ExtraPods", f"Pending termination: {replicas - spec}")
    if updated > available_replicas:
        return _in_progress("LessAvailable", f"Available: {available_replicas}/{updated}")
    if spec > ready:
        return _in_progress("LessReady", f"Ready: {ready}/{spec}")
    if not progressing:
        return _in_progress("ReplicaSetNotAvailable", "ReplicaSet not Available")
    if not available:
        return _in_progress("DeploymentNotAvailable", "Deployment not Available")
    return _current(f"Deployment is available. Replicas: {replicas}")


def _statefulset(obj: Mapping[str, Any], now: datetime.datetime) -> Result:
    # The StatefulSet controller sets no conditions: only the counts tell.
    if _str(obj, "spec.updateStrategy.type", "") == "OnDelete":
        return _current("StatefulSet is using the ondelete update strategy")
    spec = _replicas(obj)
    ready = _int(obj, "status.readyReplicas", 0)
    current = _int(obj, "status.currentReplicas", 0)
    updated = _int(obj, "status.updatedReplicas", 0)
    replicas = _int(obj, "status.replicas", 0)
    partition = _int(obj, "spec.updateStrategy.rollingUpdate.partition", -1)
    if spec > replicas:
        return _in_progress("LessReplicas", f"Replicas: {replicas}/{spec}")
    if spec > ready:
        return _in_progress("LessReady", f"Ready: {ready}/{spec}")
    if replicas > spec:
        return _in_progress("ExtraPods", f"Pending termination: {replicas - spec}")
    if partition != -1:
        if updated < spec - partition:
            return _in_progress("PartitionRollout", f"updated: {updated}/{spec - partition}")
        return _current(f"Partition rollout complete. updated: {updated}")
    if spec > current:
        return _in_progress("LessCurrent", f"current: {current}/{spec}")
    if _str(obj, "status.currentRevision", "") != _str(obj, "status.updateRevision", ""):
        return _in_progress("RevisionMismatch", "Waiting for updated revision to match current")
    return _current(f"All replicas scheduled as expected. Replicas: {replicas}")


def _daemonset(obj: Mapping[str, Any], now: datetime.datetime) -> Result:
    # The generic rule skips a missing generation; a DaemonSet the controller has seen always
    # has both, so their absence means "not observed yet".
    kind = _str(obj, "kind", "")
    if not isinstance(_path(obj, "metadata.generation"), int):
        return _in_progress("NoGeneration", f"{kind} metadata.generation not found")
    if not isinstance(_path(obj, "status.observedGeneration"), int):
        return _in_progress("NoObservedGeneration", f"{kind} status.observedGeneration not found")
    desired = _int(obj, "status.desiredNumberScheduled", -1)
    current = _int(obj, "status.currentNumberScheduled", 0)
    updated = _int(obj, "status.updatedNumberScheduled", 0)
    available = _int(obj, "status.numberAvailable", 0)
    ready = _int(obj, "status.numberReady", 0)
    if desired == -1:
        return _in_progress("NoDesiredNumber", "Missing .status.desiredNumberScheduled")
    if desired > current:
        return _in_progress("LessCurrent", f"Current: {current}/{desired}")
    if desired > updated:
        return _in_progress("LessUpdated", f"Updated: {updated}/{desired}")
    if desired > available:
        return _in_progress("LessAvailable", f"Available: {available}/{desired}")
    if desired > ready:
        return _in_progress("LessReady", f"Ready: {ready}/{desired}")
    return _current(f"All replicas scheduled as expected. Replicas: {desired}")


def _replicaset(obj: Mapping[str, Any], now: datetime.datetime) -> Result:
    if _has(_conditions(obj), "ReplicaFailure", "True"):
        return _in_progress("ReplicaFailure", "Replica Failure condition. Check Pods")
    spec = _replicas(obj)
    replicas = _int(obj, "status.replicas", 0)
    ready = _int(obj, "status.readyReplicas", 0)
    available = _int(obj, "status.availableReplicas", 0)
    labelled = _int(obj, "status.fullyLabeledReplicas", 0)
    if spec > labelled:
        return _in_progress("LessLabelled", f"Labelled: {labelled}/{spec}")
    if spec > available:
        return _in_progress("LessAvailable", f"Available: {available}/{spec}")
    if spec > ready:
        return _in_progress("LessReady", f"Ready: {ready}/{spec}")
    if replicas > spec:
        return _in_progress("ExtraPods", f"Pending termination: {replicas - spec}")
    return _current(f"ReplicaSet is available. Replicas: {replicas}")


def _pvc(obj: Mapping[str, Any], now: datetime.datetime) -> Result:
    phase = _str(obj, "status.phase", "unknown")
    if phase != "Bound":
        return _in_progress("NotBound", f"PVC is not Bound. phase: {phase}")
    return _current("PVC is Bound")


def _crash_looping(obj: Mapping[str, Any]) -> list[str]:
    statuses = _path(obj, "status.containerStatuses")
    if not isinstance(statuses, Sequence) or isinstance(statuses, str):
        return []
    return [
        str(status.get("name"))
        for status in statuses
        if isinstance(status, Mapping)
        and isinstance(status.get("name"), str)
        and _str(status, "state.waiting.reason", "") == "CrashLoopBackOff"
    ]


def _created(obj: Mapping[str, Any]) -> datetime.datetime | None:
    stamp = _str(obj, "metadata.creationTimestamp", "")
    try:
        return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None


def _pod(obj: Mapping[str, Any], now: datetime.datetime) -> Result:
    conditions = _conditions(obj)
    phase = _str(obj, "status.phase", "")
    if phase == "Succeeded":
        return _current("Pod has completed successfully")
    if phase == "Failed":
        return _current("Pod has completed, but not successfully")
    if phase == "Running":
        if _has(conditions, "Ready", "True"):
            return _current("Pod is Ready")
        looping = _crash_looping(obj)
        if looping:
            message = f"Containers in CrashLoop state: {','.join(looping)}"
            return _failed("ContainerCrashLooping", message)
        return _in_progress("PodRunningNotReady", "Pod is running but is not Ready")
    if phase == "Pending":
        unschedulable = any(
            c.get("type") == "PodScheduled"
            and c.get("status") == "False"
            and c.get("reason") == "Unschedulable"
            for c in conditions
        )
        if unschedulable:
            created = _created(obj)
            if created is not None and now - SCHEDULE_WINDOW < created:
                return _in_progress("PodNotScheduled", "Pod has not been scheduled")
            return _failed("PodUnschedulable", "Pod could not be scheduled")
        return _in_progress("PodPending", "Pod is in the Pending phase")
    if phase == "":
        return _in_progress("PodNotObserved", "Pod phase not available")
    # kstatus returns an error here; its pollers then report the object as Unknown.
    return Result(Status.UNKNOWN, f"unknown phase {phase}")


def _pdb(obj: Mapping[str, Any], now: datetime.datetime) -> Result:
    # Reaching this rule means the disruption controller observed the latest generation.
    return _current("AllowedDisruptions has been computed.")


def _job(obj: Mapping[str, Any], now: datetime.datetime) -> Result:
    parallelism = _int(obj, "spec.parallelism", 1)
    completions = _int(obj, "spec.completions", parallelism)
    succeeded = _int(obj, "status.succeeded", 0)
    active = _int(obj, "status.active", 0)
    failed = _int(obj, "status.failed", 0)
    for condition in _conditions(obj):
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return _current(f"Job Completed. succeeded: {succeeded}/{completions}")
        if condition.get("type") == "Failed":
            return _failed("JobFailed", f"Job Failed. failed: {failed}/{completions}")
        if condition.get("type") == "Suspended":
            return _current("Job is suspended")
    if not _str(obj, "status.startTime", ""):
        return _in_progress("JobNotStarted", "Job not started")
    return _current(f"Job in progress. success:{succeeded}, active: {active}, failed: {failed}")


def _service(obj: Mapping[str, Any], now: datetime.datetime) -> Result:
    if _str(obj, "spec.type", "ClusterIP") == "LoadBalancer" and not _str(
        obj, "spec.clusterIP", ""
    ):
        return _in_progress("NoIPAssigned", "ClusterIP not set. Service type: LoadBalancer")
    return _current("Service is ready")


def _crd(obj: Mapping[str, Any], now: datetime.datetime) -> Result:
    for condition in _conditions(obj):
        reason, message = _text(condition, "reason"), _text(condition, "message")
        if condition.get("type") == "NamesAccepted" and condition.get("status") == "False":
            return _failed(reason, message)
        if condition.get("type") == "Established":
            if condition.get("status") == "False" and reason != "Installing":
                return _failed(reason, message)
            if condition.get("status") == "True":
                return _current("CRD is established")
    return _in_progress("Installing", "Install in progress")


_Rule = Callable[[Mapping[str, Any], datetime.datetime], Result]

# Keyed by "group/Kind" ("Kind" for the core group), as kstatus keys its legacy rules.
_BUILT_IN: dict[str, _Rule] = {
    "Service": _service,
    "Pod": _pod,
    "Secret": _always_ready,
    "ConfigMap": _always_ready,
    "PersistentVolumeClaim": _pvc,
    "apps/StatefulSet": _statefulset,
    "apps/DaemonSet": _daemonset,
    "extensions/DaemonSet": _daemonset,
    "apps/Deployment": _deployment,
    "extensions/Deployment": _deployment,
    "apps/ReplicaSet": _replicaset,
    "extensions/ReplicaSet": _replicaset,
    "policy/PodDisruptionBudget": _pdb,
    "batch/CronJob": _always_ready,
    "batch/Job": _job,
    "apiextensions.k8s.io/CustomResourceDefinition": _crd,
}


def _group_kind(obj: Mapping[str, Any]) -> str:
    api_version = _str(obj, "apiVersion", "")
    group = api_version.rpartition("/")[0]
    kind = _str(obj, "kind", "")
    return f"{group}/{kind}" if group else kind


def compute(obj: Mapping[str, Any], now: datetime.datetime | None = None) -> Result:
    """The kstatus status of `obj` (a full object as read from the API, status included).

    `now` (timezone-aware, default the current time) only matters for Pods waiting to be
    scheduled.
    """
    generic = _generic(obj)
    if generic is not None:
        return generic
    rule = _BUILT_IN.get(_group_kind(obj))
    if rule is not None:
        return rule(obj, now or datetime.datetime.now(datetime.UTC))
    return _ready_condition(obj) or _current("Resource is current")
