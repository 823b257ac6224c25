"""Waiting for health with a scripted reader and clock (our own seams, faked).

The real control plane is exercised in tests/cluster/test_health.py.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Mapping
from typing import Any

import pytest

from core.cluster.port import NotFound, UnknownKind
from core.errors import InputError, TidegateError
from core.health import Status, compute
from reconciler.cancellation import CancelledError
from reconciler.health import (
    ClusterReader,
    ExprRules,
    HealthChecker,
    InvalidExpressionError,
    ObjectRef,
    job_status,
    jobs_with_ttl,
    status_of,
    targets,
)

DEPLOY = ObjectRef("apps/v1", "Deployment", "podinfo", "apps")
CRD = ObjectRef("apiextensions.k8s.io/v1", "CustomResourceDefinition", "things.example.com")


def _deployment(ready: int, *, deadline_exceeded: bool = False) -> dict[str, Any]:
    conditions = [{"type": "Available", "status": "True" if ready else "False"}]
    if deadline_exceeded:
        conditions.append(
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
        )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "podinfo", "namespace": "apps", "generation": 1},
        "spec": {"replicas": 1},
        "status": {
            "observedGeneration": 1,
            "replicas": 1,
            "updatedReplicas": 1,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "conditions": conditions,
        },
    }


class Script:
    """A reader that returns, per object, the next scripted state on each read."""

    def __init__(self, states: Mapping[ObjectRef, list[Any]]) -> None:
        self.states = {ref: list(seq) for ref, seq in states.items()}
        self.reads = 0

    def read(self, ref: ObjectRef) -> Mapping[str, Any] | None:
        self.reads += 1
        seq = self.states[ref]
        state = seq.pop(0) if len(seq) > 1 else seq[0]
        if isinstance(state, Exception):
            raise state
        return state  # type: ignore[no-any-return]


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def _checker(reader: Any, **kwargs: Any) -> HealthChecker:
    clock = Clock()
    return HealthChecker(reader, clock=clock, sleep=clock.sleep, **kwargs)


def test_passes_once_everything_is_current() -> None:
    reader = Script({DEPLOY: [_deployment(0), _deployment(0), _deployment(1)]})

    report = _checker(reader).wait([DEPLOY], datetime.timedelta(minutes=1))

    assert report.passed
    assert report.elapsed == datetime.timedelta(seconds=10)  # two 5s polls
    assert reader.reads == 3


def test_times_out_with_fluxs_message() -> None:
    reader = Script({DEPLOY: [_deployment(0)], CRD: [None]})

    report = _checker(reader).wait([DEPLOY, CRD], datetime.timedelta(seconds=30))

    assert not report.passed
    assert report.error == report.message.removeprefix("health check failed after 30s: ")
    assert report.message == (
        "health check failed after 30s: timeout waiting for: "
        "[Deployment/apps/podinfo status: 'InProgress', "
        "CustomResourceDefinition/things.example.com status: 'NotFound']"
    )


def test_a_failed_object_fails_fast() -> None:
    reader = Script({DEPLOY: [_deployment(0), _deployment(0, deadline_exceeded=True)]})

    report = _checker(reader).wait([DEPLOY], datetime.timedelta(minutes=10))

    assert not report.passed
    assert report.message == (
        "health check failed after 5s: failed early due to stalled resources: "
        "[Deployment/apps/podinfo status: 'Failed']"
    )


def test_without_fail_fast_a_failed_object_waits_for_the_others() -> None:
    other = ObjectRef("v1", "Pod", "p", "apps")
    pending = {"apiVersion": "v1", "kind": "Pod", "status": {"phase": "Pending"}}
    reader = Script({DEPLOY: [_deployment(0, deadline_exceeded=True)], other: [pending]})

    report = _checker(reader, fail_fast=False).wait([DEPLOY, other], datetime.timedelta(seconds=20))

    assert report.message == (
        "health check failed after 20s: timeout waiting for: "
        "[Deployment/apps/podinfo status: 'Failed', Pod/apps/p status: 'InProgress']"
    )


def test_without_fail_fast_only_current_and_failed_objects_end_the_wait() -> None:
    established = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "status": {"conditions": [{"type": "Established", "status": "True"}]},
    }
    reader = Script({DEPLOY: [_deployment(0, deadline_exceeded=True)], CRD: [established]})

    report = _checker(reader, fail_fast=False).wait([DEPLOY, CRD], datetime.timedelta(minutes=5))

    assert report.message == (
        "health check failed after 0s: failed early due to stalled resources: "
        "[Deployment/apps/podinfo status: 'Failed']"
    )


def test_fail_fast_ends_the_wait_at_the_first_failed_object() -> None:
    other = ObjectRef("v1", "Pod", "p", "apps")
    pending = {"apiVersion": "v1", "kind": "Pod", "status": {"phase": "Pending"}}
    reader = Script({DEPLOY: [_deployment(0, deadline_exceeded=True)], other: [pending]})

    report = _checker(reader).wait([DEPLOY, other], datetime.timedelta(minutes=10))

    assert report.message == (
        "health check failed after 0s: failed early due to stalled resources: "
        "[Deployment/apps/podinfo status: 'Failed']"
    )


def test_unjudgeable_objects_carry_their_error() -> None:
    reader = Script({DEPLOY: [TidegateError("Deployment apps/podinfo: HTTP 403: forbidden")]})

    report = _checker(reader).wait([DEPLOY], datetime.timedelta(seconds=5))

    assert report.error == (
        "timeout waiting for: [Deployment/apps/podinfo status: 'Unknown': "
        "Deployment apps/podinfo: HTTP 403: forbidden]"
    )


def test_unreadable_objects_are_unknown_until_readable() -> None:
    reader = Script({DEPLOY: [TidegateError("forbidden"), _deployment(1)]})

    report = _checker(reader).wait([DEPLOY], datetime.timedelta(seconds=30))

    assert report.passed


def test_a_finished_job_that_deleted_itself_counts_as_current() -> None:
    job = ObjectRef("batch/v1", "Job", "migrate", "apps")
    reader = Script({job: [None]})

    report = _checker(reader).wait([job], datetime.timedelta(seconds=5), gone_is_current={job})

    assert report.passed


def test_nothing_to_check_passes_at_once() -> None:
    assert _checker(Script({})).wait([], datetime.timedelta(seconds=5)).passed


# --- targets ----------------------------------------------------------------------------------


def _ks(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "apps", "namespace": "flux-system"},
        "spec": spec,
    }


def test_wait_checks_every_applied_object_but_the_kustomization_itself() -> None:
    itself = ObjectRef("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "apps", "flux-system")

    found = targets(
        _ks({"wait": True, "healthChecks": [{"kind": "X", "name": "y"}]}),
        [DEPLOY, itself, DEPLOY, CRD],
    )

    assert found == [DEPLOY, CRD]


def test_health_checks_reference_objects_in_other_namespaces() -> None:
    spec = {
        "healthChecks": [
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo", "namespace": "apps"},
            {
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                "kind": "Kustomization",
                "name": "infra",
                "namespace": "flux-system",
            },
        ]
    }

    found = targets(_ks(spec), [CRD])

    assert found == [
        DEPLOY,
        ObjectRef("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "infra", "flux-system"),
    ]


def test_no_wait_and_no_health_checks_is_nothing() -> None:
    assert targets(_ks({}), [DEPLOY]) == []


@pytest.mark.parametrize(
    ("checks", "field"),
    [
        ("nope", "spec.healthChecks"),
        (["nope"], "spec.healthChecks[0]"),
        ([{"kind": "Deployment"}], "spec.healthChecks[0].name"),
        ([{"kind": 3, "name": "x"}], "spec.healthChecks[0].kind"),
    ],
)
def test_malformed_health_checks_name_the_field(checks: Any, field: str) -> None:
    with pytest.raises(InputError) as caught:
        targets(_ks({"healthChecks": checks}), [])

    assert "object Kustomization flux-system/apps" in str(caught.value)
    assert f"field {field}" in str(caught.value)


# --- healthCheckExprs ---------------------------------------------------------------------------

SEALED = {
    "apiVersion": "bitnami.com/v1alpha1",
    "kind": "SealedSecret",
    "metadata": {"name": "s", "namespace": "apps", "generation": 2},
    "status": {"observedGeneration": 2, "conditions": [{"type": "Synced", "status": "True"}]},
}

RULES = ExprRules.compile(
    _ks(
        {
            "healthCheckExprs": [
                {
                    "apiVersion": "bitnami.com/v1alpha1",
                    "kind": "SealedSecret",
                    "inProgress": "!has(status.conditions)",
                    "failed": "status.conditions.exists(c, c.type == 'Synced' && "
                    "c.status == 'False')",
                    "current": "status.conditions.exists(c, c.type == 'Synced' && "
                    "c.status == 'True')",
                }
            ]
        }
    )
)


def _sealed(status: dict[str, Any], generation: int = 2) -> dict[str, Any]:
    return {
        **SEALED,
        "metadata": {**SEALED["metadata"], "generation": generation},
        "status": status,
    }


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (SEALED, Status.CURRENT),
        (
            _sealed(
                {"observedGeneration": 2, "conditions": [{"type": "Synced", "status": "False"}]}
            ),
            Status.FAILED,
        ),
        (_sealed({"observedGeneration": 2}), Status.IN_PROGRESS),
        (_sealed({"observedGeneration": 2, "conditions": []}), Status.IN_PROGRESS),
        (
            _sealed(
                {"observedGeneration": 1, "conditions": [{"type": "Synced", "status": "True"}]}
            ),
            Status.IN_PROGRESS,
        ),
        (_sealed({"observedGeneration": 2, "conditions": "oops"}), Status.UNKNOWN),
    ],
)
def test_expressions_judge_the_objects_they_match(obj: dict[str, Any], expected: Status) -> None:
    assert status_of(obj, RULES).status is expected


def test_expressions_match_by_group_and_kind_in_any_version() -> None:
    other_version = {**SEALED, "apiVersion": "bitnami.com/v1"}
    no_rule = {
        **SEALED,
        "kind": "Other",
        "status": {"conditions": [{"type": "Synced", "status": "False"}]},
    }

    assert status_of(other_version, RULES).status is Status.CURRENT
    # No rule: kstatus, which finds no standard condition and calls it Current.
    assert status_of(no_rule, RULES).status is Status.CURRENT


def test_expressions_decide_even_where_kstatus_would_not() -> None:
    rules = ExprRules.compile(
        _ks(
            {
                "healthCheckExprs": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "current": "status.readyReplicas >= 0",
                    }
                ]
            }
        )
    )

    assert status_of(_deployment(0), rules).status is Status.CURRENT


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"apiVersion": "x/v1", "kind": "K", "current": "status.("}, "healthCheckExprs[0].current"),
        (
            {"apiVersion": "x/v1", "kind": "K", "current": "true", "failed": "nope("},
            "healthCheckExprs[0].failed",
        ),
        ({"apiVersion": "x/v1", "kind": "K"}, "healthCheckExprs[0].current"),
        ({"apiVersion": "x/v1", "current": "true"}, "healthCheckExprs[0].kind"),
        ({"kind": "K", "current": "true"}, "healthCheckExprs[0].apiVersion"),
        (
            {"apiVersion": "x/v1", "kind": "K", "current": "self.ready"},
            "healthCheckExprs[0].current",
        ),
    ],
)
def test_bad_expressions_are_refused_naming_the_field(entry: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidExpressionError) as caught:
        ExprRules.compile(_ks({"healthCheckExprs": [entry]}))

    assert f"field spec.{field}" in str(caught.value)
    assert "Kustomization flux-system/apps" in str(caught.value)


def test_the_wait_uses_the_expressions() -> None:
    ref = ObjectRef("bitnami.com/v1alpha1", "SealedSecret", "s", "apps")
    failing = _sealed(
        {"observedGeneration": 2, "conditions": [{"type": "Synced", "status": "False"}]}
    )
    reader = Script({ref: [failing]})

    report = _checker(reader, rules=RULES).wait([ref], datetime.timedelta(minutes=1))

    assert report.message == (
        "health check failed after 0s: failed early due to stalled resources: "
        "[SealedSecret/apps/s status: 'Failed']"
    )


# --- the reader over the cluster port -------------------------------------------------------


class Port:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
        if self.error is not None:
            raise self.error
        return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}}

    def list(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return []


def test_the_cluster_reader_reads_missing_objects_as_none_and_unknown_kinds_as_errors() -> None:
    assert ClusterReader(Port()).read(DEPLOY) == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "podinfo"},
    }
    assert ClusterReader(Port(NotFound("Deployment/apps/podinfo not found"))).read(DEPLOY) is None
    with pytest.raises(UnknownKind):
        ClusterReader(Port(UnknownKind("no matches for kind"))).read(DEPLOY)


def test_an_uninstalled_kind_is_unknown_not_missing() -> None:
    reader = ClusterReader(Port(UnknownKind('no matches for kind "Widget"')))

    report = _checker(reader).wait([DEPLOY], datetime.timedelta(seconds=5))

    assert report.message.endswith(
        "[Deployment/apps/podinfo status: 'Unknown': no matches for kind \"Widget\"]"
    )


# --- Jobs: kustomize-controller's own rule -------------------------------------------------


def _job(conditions: list[dict[str, str]], **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "migrate", "namespace": "apps", "generation": 1},
        "spec": {"completions": 2},
        "status": {"startTime": "2026-11-30T12:00:00Z", "conditions": conditions, **status},
    }


def test_a_running_job_is_in_progress_for_flux_though_current_for_kstatus() -> None:
    running = _job([], active=1)

    assert compute(running).status is Status.CURRENT
    assert status_of(running, ExprRules.none()).status is Status.IN_PROGRESS
    assert job_status(running).message == "Job in progress"
    assert job_status(running).conditions[0].reason == "JobInProgress"


def test_a_finished_job_is_current_and_a_failed_one_failed() -> None:
    done = _job([{"type": "Complete", "status": "True"}], succeeded=2)
    broken = _job([{"type": "Failed", "status": "True"}], failed=3)

    assert (job_status(done).status, job_status(done).message) == (
        Status.CURRENT,
        "Job Completed. succeeded: 2/2",
    )
    assert (job_status(broken).status, job_status(broken).message) == (
        Status.FAILED,
        "Job Failed. failed: 3/2",
    )


def test_the_job_rule_comes_before_expressions() -> None:
    rules = ExprRules.compile(
        _ks({"healthCheckExprs": [{"apiVersion": "batch/v1", "kind": "Job", "current": "true"}]})
    )

    assert status_of(_job([]), rules).status is Status.IN_PROGRESS


def test_jobs_with_ttl_are_found_among_the_built_objects() -> None:
    with_ttl = {**_job([]), "spec": {"ttlSecondsAfterFinished": 0}}
    other = {**_job([]), "metadata": {"name": "keep", "namespace": "apps"}}

    assert jobs_with_ttl([with_ttl, other, {"kind": "ConfigMap"}]) == {
        ObjectRef("batch/v1", "Job", "migrate", "apps")
    }


def test_expressions_see_the_objects_data_and_report_their_errors() -> None:
    rules = ExprRules.compile(
        _ks(
            {
                "healthCheckExprs": [
                    {"apiVersion": "v1", "kind": "ConfigMap", "current": "data.ready == 'yes'"}
                ]
            }
        )
    )
    ref = ObjectRef("v1", "ConfigMap", "flag", "apps")
    ready = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"ready": "yes"}}
    empty = {"apiVersion": "v1", "kind": "ConfigMap", "data": {}}

    passed = _checker(Script({ref: [ready]}), rules=rules).wait([ref], datetime.timedelta(0))
    failed = _checker(Script({ref: [empty]}), rules=rules).wait([ref], datetime.timedelta(0))

    assert passed.passed
    assert failed.error.startswith(
        "timeout waiting for: [ConfigMap/apps/flag status: 'Unknown': failed to evaluate the CEL "
        "expression 'data.ready == 'yes'': "
    )


def test_a_stop_during_the_wait_cancels_it_before_the_timeout() -> None:
    stop = threading.Event()
    reader = Script({DEPLOY: [_deployment(0)]})
    original = reader.read

    def read_then_stop(ref: ObjectRef) -> Mapping[str, Any] | None:
        if reader.reads == 2:
            stop.set()  # SIGTERM arrives between two polls
        return original(ref)

    reader.read = read_then_stop  # type: ignore[method-assign]
    checker = HealthChecker(reader, interval=datetime.timedelta(milliseconds=10), stop=stop)

    with pytest.raises(CancelledError):
        checker.wait([DEPLOY], datetime.timedelta(hours=1))
    assert reader.reads == 3  # stopped at the next poll, not polled on to the hour
