"""Health checks of a Kustomization: wait until a set of objects is Current, or fail.

What kustomize-controller does after an apply (`wait`, `healthChecks`, `healthCheckExprs`):

- `targets()` picks the objects: with `spec.wait: true` every applied object (the caller
  leaves out those the apply skipped), else the `spec.healthChecks` references (other
  namespaces and Flux objects included); the Kustomization itself is never waited for, which
  would deadlock.
- `ExprRules` compiles `spec.healthCheckExprs` (Flux 2.5: CEL `current`, optional
  `inProgress` and `failed`, per apiVersion's group and kind) with the project's CEL engine. An
  object they match is judged as Flux's CEL status evaluator judges it: an unobserved generation
  is InProgress; then `inProgress`, `failed`, `current` in that order, the first true one wins;
  none true is InProgress; an evaluation error leaves the status Unknown for that poll. Jobs
  get kustomize-controller's own rule (Current only once Complete: kstatus would accept a
  running Job); other objects get kstatus (`core.health`).
- `HealthChecker.wait()` polls every object each `interval` (Flux: 5s) until all are Current
  (passed), or one is Failed (Flux's fail-fast, on by default; without it, once every object
  is Current or Failed), or the timeout passes; the error lists the Failed objects, or on a
  timeout every object not Current. Failure messages are kustomize-controller's: the wait's
  error (`timeout waiting for: [Deployment/apps/podinfo status: 'InProgress']` or `failed
  early due to stalled resources: [... status: 'Failed']`, Healthy's message) and the run's
  error with its duration in front (`health check failed after 30.004s: ...`, Ready's message).

The cluster is reached only through the `ObjectReader` seam (`ClusterReader` adapts the
cluster port to it); a missing object is NotFound (a Job declared with
`ttlSecondsAfterFinished` that is gone counts as Current, as in Flux), an unreadable one
Unknown. Nothing here writes to the cluster or logs.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.cluster.port import NotFound, Reader, UnknownKind
from core.errors import InputError, TidegateError
from core.health import Condition, Result, Status, compute
from policies.cel.engine import CompileError, Engine, EvalError, Program
from reconciler.cancellation import CancelledError
from reconciler.status import go_duration

__all__ = [
    "FLUX_INTERVAL",
    "OBJECT_FIELDS",
    "ClusterReader",
    "ExprRules",
    "HealthChecker",
    "HealthReport",
    "InvalidExpressionError",
    "ObjectReader",
    "ObjectRef",
    "Observed",
    "job_status",
    "jobs_with_ttl",
    "status_of",
    "targets",
]

FLUX_INTERVAL = datetime.timedelta(seconds=5)

OBJECT_FIELDS = (
    "apiVersion",
    "kind",
    "metadata",
    "spec",
    "status",
    "data",
    "binaryData",
    "stringData",
)
"""The top-level fields an expression may name (Flux binds every top-level field of the
object; a CEL environment declares its variables up front, so these are the ones declared;
a Secret's `type` cannot be one, `type` being a CEL function)."""


@dataclass(frozen=True, order=True)
class ObjectRef:
    """One object to check, by API version, kind, namespace (empty if cluster-scoped), name."""

    api_version: str
    kind: str
    name: str
    namespace: str = ""

    @property
    def group(self) -> str:
        """The API group ("" for the core group)."""
        return self.api_version.rpartition("/")[0]

    def __str__(self) -> str:
        """`Kind/namespace/name` (`Kind/name` when cluster-scoped), as Flux prints objects."""
        if self.namespace:
            return f"{self.kind}/{self.namespace}/{self.name}"
        return f"{self.kind}/{self.name}"


class ObjectReader(Protocol):
    """Reads one live object from the cluster."""

    def read(self, ref: ObjectRef) -> Mapping[str, Any] | None:
        """The object as the API returns it, None when it does not exist.

        Raises `TidegateError` when it cannot be read (forbidden, unreachable, unknown kind).
        """
        ...


class ClusterReader:
    """The `ObjectReader` over the cluster port (`core.cluster.live.LiveCluster` in production).

    A missing object reads as None; a kind the apiserver does not serve (a CRD not installed
    yet) stays an error, so the object is Unknown for that poll rather than NotFound.
    """

    def __init__(self, reader: Reader) -> None:
        self._reader = reader

    def read(self, ref: ObjectRef) -> Mapping[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return self._reader.get(ref.api_version, ref.kind, ref.namespace, ref.name)
        except UnknownKind:
            raise
        except NotFound:
            return None


class InvalidExpressionError(InputError):
    """A `healthCheckExprs` entry is malformed or does not compile.

    Flux reports this as InvalidCELExpression, a terminal error.
    """


# --- choosing what to check --------------------------------------------------------------------


def _text(entry: Mapping[str, Any], key: str, where: str, path: str, *, required: bool) -> str:
    value = entry.get(key, "")
    if value is None:
        value = ""
    if not isinstance(value, str) or (required and not value):
        message = "must be a non-empty string" if required else "must be a string"
        raise InputError(message, obj=where, field=f"{path}.{key}")
    return value


def targets(kustomization: Mapping[str, Any], applied: Sequence[ObjectRef]) -> list[ObjectRef]:
    """The objects to wait for: `applied` with `spec.wait`, else `spec.healthChecks`.

    `applied` is the apply's change set without skipped objects. Raises `InputError` naming
    the Kustomization and the field when a reference is malformed.
    """
    metadata = kustomization.get("metadata") or {}
    name, namespace = str(metadata.get("name", "")), str(metadata.get("namespace", ""))
    where = f"Kustomization {namespace}/{name}"
    spec = kustomization.get("spec") or {}
    itself = ObjectRef("kustomize.toolkit.fluxcd.io/v1", "Kustomization", name, namespace)
    if spec.get("wait") is True:
        chosen: Iterable[ObjectRef] = applied
    else:
        checks = spec.get("healthChecks") or []
        if not isinstance(checks, list):
            raise InputError("must be a list", obj=where, field="spec.healthChecks")
        chosen = [_reference(entry, where, index) for index, entry in enumerate(checks)]
    found: list[ObjectRef] = []
    for ref in chosen:
        if _same_object(ref, itself) or ref in found:
            continue
        found.append(ref)
    return found


def _reference(entry: Any, where: str, index: int) -> ObjectRef:
    field_name = f"spec.healthChecks[{index}]"
    if not isinstance(entry, Mapping):
        raise InputError("must be an object", obj=where, field=field_name)
    return ObjectRef(
        api_version=_text(entry, "apiVersion", where, field_name, required=False),
        kind=_text(entry, "kind", where, field_name, required=True),
        name=_text(entry, "name", where, field_name, required=True),
        namespace=_text(entry, "namespace", where, field_name, required=False),
    )


def _same_object(ref: ObjectRef, itself: ObjectRef) -> bool:
    return (ref.kind, ref.name, ref.namespace) == (itself.kind, itself.name, itself.namespace) and (
        ref.group in ("", itself.group)
    )


# --- healthCheckExprs ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    group: str
    kind: str
    in_progress: Program | None
    failed: Program | None
    current: Program


class ExprRules:
    """The compiled `spec.healthCheckExprs` of one Kustomization."""

    def __init__(self, rules: Sequence[_Rule], engine: Engine) -> None:
        self._rules = {(rule.group, rule.kind): rule for rule in rules}
        self._engine = engine

    @classmethod
    def none(cls) -> ExprRules:
        """No custom rules: every object is judged by kstatus."""
        return cls((), _engine())

    @classmethod
    def compile(cls, kustomization: Mapping[str, Any]) -> ExprRules:
        """Compile every expression once; raise `InvalidExpressionError` naming the field."""
        metadata = kustomization.get("metadata") or {}
        where = f"Kustomization {metadata.get('namespace', '')}/{metadata.get('name', '')}"
        entries = (kustomization.get("spec") or {}).get("healthCheckExprs") or []
        if not isinstance(entries, list):
            raise InvalidExpressionError("must be a list", obj=where, field="spec.healthCheckExprs")
        engine = _engine()
        return cls([_compile(engine, entry, where, i) for i, entry in enumerate(entries)], engine)

    def status_of(self, obj: Mapping[str, Any]) -> Result | None:
        """The status the matching rule gives `obj`, or None when no rule matches it."""
        api_version = obj.get("apiVersion")
        kind = obj.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind, str):
            return None
        rule = self._rules.get((api_version.rpartition("/")[0], kind))
        if rule is None:
            return None
        metadata = obj.get("metadata")
        status = obj.get("status")
        generation = metadata.get("generation") if isinstance(metadata, Mapping) else None
        observed = status.get("observedGeneration") if isinstance(status, Mapping) else None
        if isinstance(observed, int) and isinstance(generation, int) and observed != generation:
            return Result(
                Status.IN_PROGRESS,
                f"{kind} generation is {generation}, but latest observed generation is {observed}",
            )
        activation = self._engine.activation(obj)
        for program, verdict in (
            (rule.in_progress, Status.IN_PROGRESS),
            (rule.failed, Status.FAILED),
            (rule.current, Status.CURRENT),
        ):
            if program is None:
                continue
            value = program.evaluate(activation)
            if isinstance(value, EvalError) or not isinstance(value, bool):
                why = value.message if isinstance(value, EvalError) else "not a boolean"
                return Result(
                    Status.UNKNOWN,
                    f"failed to evaluate the CEL expression '{program.source}': {why}",
                )
            if value:
                return Result(verdict, f"healthCheckExprs: {verdict}")
        return Result(Status.IN_PROGRESS, "healthCheckExprs: no expression is true")


# One environment for every Kustomization (it is thread-safe). Expressions are compiled
# without its cache: they come from cluster objects that change over time, and a cache keyed
# by every expression ever seen would only grow.
_ENGINE = Engine(variables=OBJECT_FIELDS)


def _engine() -> Engine:
    return _ENGINE


def _compile(engine: Engine, entry: Any, where: str, index: int) -> _Rule:
    field_name = f"spec.healthCheckExprs[{index}]"
    if not isinstance(entry, Mapping):
        raise InvalidExpressionError("must be an object", obj=where, field=field_name)

    def text(key: str, required: bool) -> str:
        try:
            return _text(entry, key, where, field_name, required=required)
        except InputError:
            raise InvalidExpressionError(
                "must be a non-empty string" if required else "must be a string",
                obj=where,
                field=f"{field_name}.{key}",
            ) from None

    def program(key: str, source: str) -> Program | None:
        if not source:
            return None
        try:
            return engine.compile(source, cached=False)
        except CompileError as exc:
            raise InvalidExpressionError(
                f"failed to parse the CEL expression: {exc}", obj=where, field=f"{field_name}.{key}"
            ) from None

    api_version = text("apiVersion", True)
    current = program("current", text("current", True))
    if current is None:  # unreachable: "current" is required, so never empty here
        raise InvalidExpressionError("must be set", obj=where, field=f"{field_name}.current")
    return _Rule(
        group=api_version.rpartition("/")[0],
        kind=text("kind", True),
        in_progress=program("inProgress", text("inProgress", False)),
        failed=program("failed", text("failed", False)),
        current=current,
    )


def status_of(
    obj: Mapping[str, Any], rules: ExprRules, now: datetime.datetime | None = None
) -> Result:
    """`obj`'s status as kustomize-controller's poller reads it.

    A Job by Flux's own Job rule (its status reader comes first, before any CEL rule); else
    by the object's `healthCheckExprs` rule if one matches; else by kstatus.
    """
    if obj.get("kind") == "Job" and str(obj.get("apiVersion", "")).startswith("batch/"):
        return job_status(obj)
    return rules.status_of(obj) or compute(obj, now)


def job_status(obj: Mapping[str, Any]) -> Result:
    """kustomize-controller's Job rule: Current only once Complete, Failed once Failed.

    kstatus calls a Job that has started Current; Flux waits for it to finish.
    """
    spec = _mapping(obj.get("spec"))
    status = _mapping(obj.get("status"))

    def number(source: Mapping[str, Any], key: str, default: int) -> int:
        value = source.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else default

    completions = number(spec, "completions", number(spec, "parallelism", 1))
    conditions = status.get("conditions")
    for condition in conditions if isinstance(conditions, list) else []:
        if not isinstance(condition, Mapping) or condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            succeeded = number(status, "succeeded", 0)
            return Result(Status.CURRENT, f"Job Completed. succeeded: {succeeded}/{completions}")
        if condition.get("type") == "Failed":
            message = f"Job Failed. failed: {number(status, 'failed', 0)}/{completions}"
            return Result(Status.FAILED, message, (Condition("Stalled", "JobFailed", message),))
    return Result(
        Status.IN_PROGRESS,
        "Job in progress",
        (Condition("Reconciling", "JobInProgress", "Job in progress"),),
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def jobs_with_ttl(objects: Iterable[Mapping[str, Any]]) -> frozenset[ObjectRef]:
    """The Jobs among `objects` that delete themselves when finished.

    They declare `ttlSecondsAfterFinished`; once gone they count as Current (pass them as
    `HealthChecker.wait`'s `gone_is_current`).
    """
    found = set()
    for obj in objects:
        spec = obj.get("spec")
        metadata = obj.get("metadata")
        if (
            obj.get("kind") == "Job"
            and str(obj.get("apiVersion", "")).startswith("batch/")
            and isinstance(spec, Mapping)
            and spec.get("ttlSecondsAfterFinished") is not None
            and isinstance(metadata, Mapping)
        ):
            found.add(
                ObjectRef(
                    str(obj["apiVersion"]),
                    "Job",
                    str(metadata.get("name", "")),
                    str(metadata.get("namespace", "")),
                )
            )
    return frozenset(found)


# --- waiting -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Observed:
    """The last status seen of one object."""

    ref: ObjectRef
    result: Result


@dataclass(frozen=True)
class HealthReport:
    """The outcome of one wait: passed, or the Flux message saying why not."""

    passed: bool
    elapsed: datetime.timedelta
    observed: tuple[Observed, ...]
    message: str = ""
    """`health check failed after <d>: <error>` (Flux's Ready message), empty when passed."""
    error: str = ""
    """The wait's own error (Flux's Healthy message), empty when passed."""


@dataclass
class HealthChecker:
    """Polls objects through `reader` until they are healthy, fail, or time runs out.

    `clock` and `sleep` default to the real monotonic clock; `now` to the wall clock (only
    kstatus's Pod scheduling window reads it). When `stop` is set (the process is shutting
    down) the wait ends at once with `CancelledError` instead of polling on to its timeout.
    """

    reader: ObjectReader
    rules: ExprRules = field(default_factory=ExprRules.none)
    interval: datetime.timedelta = FLUX_INTERVAL
    fail_fast: bool = True
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC)
    stop: threading.Event | None = None

    def wait(
        self,
        refs: Sequence[ObjectRef],
        timeout: datetime.timedelta,
        *,
        gone_is_current: frozenset[ObjectRef] = frozenset(),
    ) -> HealthReport:
        """Wait for `refs` for at most `timeout`.

        `gone_is_current` are objects whose absence is success (Jobs that delete themselves
        when finished).

        Raises:
            CancelledError: `stop` was set before the wait ended.
        """
        start = self.clock()
        deadline = start + timeout.total_seconds()
        while True:
            self._check_stop()
            observed = tuple(Observed(ref, self._status(ref, gone_is_current)) for ref in refs)
            statuses = [o.result.status for o in observed]
            elapsed = datetime.timedelta(seconds=self.clock() - start)
            if all(s is Status.CURRENT for s in statuses):
                return HealthReport(True, elapsed, observed)
            stalled = [o for o in observed if o.result.status is Status.FAILED]
            # Failed never turns Current: with fail-fast any Failed object ends the wait, and
            # without it a set of only Current and Failed objects does (fluxcd/pkg ssa).
            settled = all(s in (Status.CURRENT, Status.FAILED) for s in statuses)
            if stalled and (self.fail_fast or settled):
                return _failure(
                    elapsed,
                    observed,
                    f"failed early due to stalled resources: [{_listed(stalled)}]",
                )
            if self.clock() >= deadline:
                waiting = [o for o in observed if o.result.status is not Status.CURRENT]
                return _failure(elapsed, observed, f"timeout waiting for: [{_listed(waiting)}]")
            pause = max(0.0, min(self.interval.total_seconds(), deadline - self.clock()))
            if self.stop is None:
                self.sleep(pause)
            else:
                self.stop.wait(pause)

    def _check_stop(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise CancelledError("health checks cancelled: the controller is stopping")

    def _status(self, ref: ObjectRef, gone_is_current: frozenset[ObjectRef]) -> Result:
        try:
            obj = self.reader.read(ref)
        except TidegateError as exc:
            return Result(Status.UNKNOWN, str(exc))
        if obj is None:
            if ref in gone_is_current:
                return Result(Status.CURRENT, "Resource is gone after completion")
            return Result(Status.NOT_FOUND, "Resource not found")
        return status_of(obj, self.rules, self.now())


def _listed(observed: Sequence[Observed]) -> str:
    # An object that could not be judged (unreadable, an expression that failed) carries the
    # error after its status, as kstatus's read errors do.
    return ", ".join(
        f"{o.ref} status: '{o.result.status}'"
        + (f": {o.result.message}" if o.result.status is Status.UNKNOWN else "")
        for o in observed
    )


def _failure(
    elapsed: datetime.timedelta, observed: tuple[Observed, ...], error: str
) -> HealthReport:
    message = f"health check failed after {go_duration(elapsed)}: {error}"
    return HealthReport(False, elapsed, observed, message, error)
