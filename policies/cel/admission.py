"""Evaluate policies on one admission request with the kube-apiserver's verdicts and messages.

This follows the API server's ValidatingAdmissionPolicy plugin.

For each binding of a policy, in order: the policy's `matchConstraints` and the binding's
`matchResources` must match; parameters are resolved (`paramRef` by name or selector, or a Tidegate
policy's inline `params`); `matchConditions` must all be true (one false: the policy does not
apply; an error: a denial under `failurePolicy: Fail`, nothing under `Ignore`); `variables` are
evaluated in order; then every validation. A validation that is false denies with, in order of
preference, its `messageExpression` result (a non-empty single line of at most 5120 bytes), its
`message`, or `failed expression: <expression>`. An evaluation error denies under `Fail` with
`expression '<expression>' resulted in error: <error>`.

A ValidatingAdmissionPolicy denial reads as the API server writes it:
`ValidatingAdmissionPolicy '<policy>' with binding '<binding>' denied request: <message>`; a
Tidegate `Policy` says just the message. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.findings import Severity
from policies.cel.documents import Binding, Documents, Policy, Validation
from policies.cel.engine import Engine, EvalError, Program
from policies.cel.matching import Request, labels_of

__all__ = ["Decision", "Prepared", "admission_variables", "evaluate_request"]

_MAX_MESSAGE = 5 * 1024
_NO_PARAMS = "no params found for policy binding with `Deny` parameterNotFoundAction"
_VARIABLE_REF = re.compile(
    r"\bvariables\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*['\"]([A-Za-z_][A-Za-z0-9_]*)['\"]\s*\])"
)
_MISSING_KEY = re.compile(r'^(?:NOT_FOUND: )?Key not found in map : "(.*)"$')


@dataclass(frozen=True)
class Decision:
    """One denial (or warning, or audit entry) of one binding."""

    policy: str
    binding: str
    severity: Severity
    message: str
    """The full message, as the API server would word it."""
    error: bool = False
    """The denial comes from an evaluation error, not a false validation."""


def admission_variables(request: Request) -> dict[str, Any]:
    """Return `request` and `namespaceObject` as the API server passes them to CEL."""
    group_version = {"group": request.group, "version": request.version}
    kind = {**group_version, "kind": request.kind}
    resource = {**group_version, "resource": request.resource}
    namespace_object = None
    if request.namespaced and request.namespace:
        namespace_object = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": request.namespace, "labels": dict(request.namespace_labels)},
        }
    return {
        "request": {
            "kind": kind,
            "resource": resource,
            "subResource": "",
            "requestKind": kind,
            "requestResource": resource,
            "requestSubResource": "",
            "name": request.name,
            "namespace": request.namespace,
            "operation": request.operation,
            "userInfo": {},
            "dryRun": False,
        },
        "namespaceObject": namespace_object,
    }


class Prepared:
    """One request's variables, and its activations, shared by every policy evaluated on it.

    Converting an object into the engine's values costs more than most evaluations, so a policy
    whose variables are bound inside its expressions (`Policy.bound`) reuses the activation of
    any other such policy with the same parameters.
    """

    def __init__(self, request: Request, context: Mapping[str, Any] | None = None) -> None:
        self.request = request
        self.base: dict[str, Any] = {
            "object": request.object,
            "oldObject": request.old_object,
            **admission_variables(request),
            "tidegate": dict(context or {}),
        }
        self._activations: dict[int, tuple[Any, Any]] = {}

    def activation(self, engine: Engine, params: Any) -> Any:
        """Return the activation for bound policies with these parameters."""
        key = id(params)
        cached = self._activations.get(key)
        if cached is None or cached[0] is not params:
            activation = engine.activation({**self.base, "params": params, "variables": {}})
            # The parameters are kept alongside, so their id cannot be reused while cached.
            cached = self._activations[key] = (params, activation)
        return cached[1]


def evaluate_request(
    engine: Engine,
    documents: Documents,
    policy: Policy,
    request: Request | Prepared,
    context: Mapping[str, Any] | None = None,
) -> list[Decision]:
    """Return the decisions of every binding of one policy on one request."""
    prepared = request if isinstance(request, Prepared) else Prepared(request, context)
    if not policy.match.matches(prepared.request):
        return []
    decisions: list[Decision] = []
    for binding in documents.bindings_of(policy.name):
        if binding.match is not None and not binding.match.matches(
            prepared.request, require_rules=False
        ):
            continue
        decisions.extend(_binding(engine, documents, policy, binding, prepared))
    return decisions


def _binding(
    engine: Engine, documents: Documents, policy: Policy, binding: Binding, prepared: Prepared
) -> Iterator[Decision]:
    params = _params(documents, policy, binding, prepared.request)
    if params is None:
        yield _decision(policy, binding, _NO_PARAMS)
        return
    for param in params:
        yield from _one(engine, policy, binding, prepared, param)


def _params(
    documents: Documents, policy: Policy, binding: Binding, request: Request
) -> Sequence[Any] | None:
    """Return the parameter objects to evaluate with; None when missing means deny."""
    if policy.param_kind is None:
        return [policy.params]
    ref = binding.param_ref
    if ref is None:
        return [None]
    api_version, kind = policy.param_kind
    namespace = ref.namespace or (request.namespace if request.namespaced else "")
    found = []
    for document in documents.params:
        if document.get("apiVersion") != api_version or document.get("kind") != kind:
            continue
        meta = document.get("metadata") if isinstance(document.get("metadata"), Mapping) else {}
        if str((meta or {}).get("namespace") or "") != namespace:
            continue
        if ref.name and (meta or {}).get("name") != ref.name:
            continue
        if ref.selector is not None and not ref.selector.matches(labels_of(document)):
            continue
        found.append(document)
    if not found:
        return None if ref.deny_when_missing else []
    return found


def _one(
    engine: Engine, policy: Policy, binding: Binding, prepared: Prepared, param: Any
) -> Iterator[Decision]:
    data = {**prepared.base, "params": param}
    # Bound variables live inside each expression: then one shared activation serves them all.
    activation = prepared.activation(engine, param) if policy.bound else engine.activation(data)
    failed_condition = None
    for condition in policy.conditions:
        result = (condition.run or condition.program).evaluate(activation)
        if result is False:
            return
        if not isinstance(result, bool):
            failed_condition = failed_condition or (condition, result)
    if failed_condition is not None:
        condition, result = failed_condition
        if policy.fail_on_error:
            detail = result.message if isinstance(result, EvalError) else "not a boolean"
            yield _decision(
                policy,
                binding,
                f"failed to evaluate matchCondition {condition.name}: {_go_error(detail)}",
                error=True,
            )
        return
    errors: dict[str, str] = {}
    if not policy.bound:
        variables, errors = _variables(engine, policy, data)
        activation = engine.activation({**data, "variables": variables})
    for validation in policy.validations:
        decision = _validate(policy, binding, validation, activation, errors)
        if decision is not None:
            yield decision


def _variables(
    engine: Engine, policy: Policy, data: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Evaluate variables in order; an error is kept by name and surfaces where it is used."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for variable in policy.variables:
        broken = _broken(variable.program, errors)
        if broken:
            errors[variable.name] = broken
            continue
        result = variable.program.evaluate(engine.activation({**data, "variables": values}))
        if isinstance(result, EvalError):
            errors[variable.name] = result.message
        else:
            values[variable.name] = result
    return values, errors


def _broken(program: Program, errors: Mapping[str, str]) -> str:
    if not errors:
        return ""
    for dotted, indexed in _VARIABLE_REF.findall(program.source):
        name = dotted or indexed
        if name in errors:
            return errors[name]
    return ""


def _validate(
    policy: Policy,
    binding: Binding,
    validation: Validation,
    activation: Any,
    errors: Mapping[str, str],
) -> Decision | None:
    broken = _broken(validation.program, errors)
    program = validation.run or validation.program
    result: Any = EvalError(broken) if broken else program.evaluate(activation)
    if result is True:
        return None
    expression = validation.program.source.strip()
    if isinstance(result, EvalError) or not isinstance(result, bool):
        if not policy.fail_on_error:
            return None
        detail = result.message if isinstance(result, EvalError) else "no such overload"
        message = f"expression '{validation.program.source}' resulted in error: {_go_error(detail)}"
        return _decision(policy, binding, message, error=True)
    message = ""
    message_program = validation.message_run or validation.message_program
    if message_program is not None and not _broken(message_program, errors):
        text = message_program.evaluate(activation)
        if isinstance(text, str):
            text = text.strip()
            if len(text.encode()) <= _MAX_MESSAGE and "\n" not in text:
                message = text
    if not message and validation.message:
        message = validation.message.strip()
    if not message:
        message = f"failed expression: {expression}"
    return _decision(policy, binding, message)


def _go_error(message: str) -> str:
    """Word the most common error as the API server's engine does (`no such key: x`)."""
    missing = _MISSING_KEY.match(message)
    return f"no such key: {missing.group(1)}" if missing else message


def _decision(policy: Policy, binding: Binding, message: str, *, error: bool = False) -> Decision:
    if policy.kind == "ValidatingAdmissionPolicy":
        message = (
            f"ValidatingAdmissionPolicy '{policy.name}' with binding '{binding.name}' "
            f"denied request: {message}"
        )
    return Decision(policy.name, binding.name, binding.severity, message, error)
