"""User rule documents: Tidegate's `Policy` and real ValidatingAdmissionPolicy (+Binding, params).

Two formats, one model (`Policy` + `Binding`):

```yaml
apiVersion: tidegate.dev/v1alpha1
kind: Policy                    # field names and meaning as in ValidatingAdmissionPolicy
metadata: {name: no-public-load-balancers}
spec:
  severity: error               # error | warning | notice (default error)
  approvalRequired: false       # true: blocks until a code owner approves the head commit
  failurePolicy: Fail           # Fail (default): an evaluation error is a finding; Ignore
  params: {maxReplicas: 10}     # optional, seen as `params`
  matchConstraints:
    resourceRules: [{apiGroups: [""], apiVersions: ["*"], resources: [services],
                     operations: [CREATE, UPDATE]}]        # DELETE too
  matchConditions: [{name: prod, expression: "tidegate.profile == 'production'"}]
  variables: [{name: type, expression: "object.spec.?type.orValue('ClusterIP')"}]
  validations:
  - expression: "variables.type != 'LoadBalancer'"
    messageExpression: "'Service ' + object.metadata.name + ' would get a public address'"
```

`admissionregistration.k8s.io/v1` ValidatingAdmissionPolicy and ValidatingAdmissionPolicyBinding
documents are read as the API server reads them: a policy acts only through its bindings; each
binding's `validationActions` set the severity (`Deny` error, `Warn` warning, `Audit` notice);
`paramKind` + `paramRef` pick parameter objects among the other documents of the policy
directory. Fields that have no meaning before a merge (`auditAnnotations`) are accepted and
ignored; `authorizer` in an expression fails to compile (nobody is authorized before a merge).

Every expression is compiled when the document loads; a mistake is an `InputError` naming the
file, the policy and the expression. Parsing and compiling only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NoReturn

from core.errors import InputError
from core.findings import Severity
from policies.cel.binding import bind_variables
from policies.cel.engine import CompileError, Engine, Program
from policies.cel.matching import LabelSelector, MatchResources, Requirement, ResourceRule

__all__ = [
    "ADMISSION_API",
    "TIDEGATE_API",
    "Binding",
    "Condition",
    "ParamRef",
    "Policy",
    "Validation",
    "parse_documents",
]

ADMISSION_API = "admissionregistration.k8s.io/v1"
TIDEGATE_API = "tidegate.dev/v1alpha1"
_ACTIONS = {"Deny": Severity.ERROR, "Warn": Severity.WARNING, "Audit": Severity.NOTICE}
_OPERATIONS = {"CREATE", "UPDATE", "DELETE", "CONNECT", "*"}
_MAX_ITEMS = 100


@dataclass(frozen=True)
class Condition:
    """A named expression: a match condition or a variable."""

    name: str
    program: Program
    run: Program | None = None
    """The expression with the variables it uses bound (`policies.cel.binding`)."""


@dataclass(frozen=True)
class Validation:
    """One validation: an expression that must be true, and how to say it is not."""

    program: Program
    message: str = ""
    message_program: Program | None = None
    reason: str = ""
    run: Program | None = None
    """`program` with the variables it uses bound."""
    message_run: Program | None = None
    """`message_program` with the variables it uses bound."""


@dataclass(frozen=True)
class ParamRef:
    """A binding's `paramRef`."""

    name: str = ""
    namespace: str = ""
    selector: LabelSelector | None = None
    deny_when_missing: bool = True


@dataclass(frozen=True)
class Policy:
    """A policy of either format, compiled."""

    name: str
    file: str
    kind: str
    """`Policy` (Tidegate's) or `ValidatingAdmissionPolicy`."""
    match: MatchResources
    conditions: tuple[Condition, ...] = ()
    variables: tuple[Condition, ...] = ()
    validations: tuple[Validation, ...] = ()
    fail_on_error: bool = True
    param_kind: tuple[str, str] | None = None
    """(apiVersion, kind) of parameter objects."""
    params: Mapping[str, Any] | None = None
    """Inline params of a Tidegate Policy."""
    severity: Severity = Severity.ERROR
    approval_required: bool = False
    summary: str = ""
    bound: bool = False
    """Every condition and validation has a `run` program: one activation evaluates them all."""


@dataclass(frozen=True)
class Binding:
    """A ValidatingAdmissionPolicyBinding (Tidegate policies get an implicit one)."""

    name: str
    policy: str
    severity: Severity
    match: MatchResources | None = None
    param_ref: ParamRef | None = None
    file: str = ""


@dataclass
class Documents:
    """What one directory of rule files holds."""

    policies: dict[str, Policy] = field(default_factory=dict)
    bindings: list[Binding] = field(default_factory=list)
    params: list[Mapping[str, Any]] = field(default_factory=list)
    _index: dict[str, list[Binding]] = field(default_factory=dict, repr=False)
    _indexed: int = field(default=-1, repr=False)

    def bindings_of(self, policy: str) -> list[Binding]:
        """Return the bindings of one policy, in document order."""
        if self._indexed != len(self.bindings):
            self._index = {}
            for binding in self.bindings:
                self._index.setdefault(binding.policy, []).append(binding)
            self._indexed = len(self.bindings)
        return self._index.get(policy, [])


class _Reader:
    def __init__(self, engine: Engine, file: str, name: str) -> None:
        self.engine = engine
        self.file = file
        self.name = name

    def fail(self, where: str, message: str) -> NoReturn:
        raise InputError(message, file=self.file, obj=self.name, field=where)

    def mapping(self, value: Any, where: str) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.fail(where, "must be a mapping")
        return value

    def items(self, value: Any, where: str) -> Sequence[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(where, "must be a list")
        if len(value) > _MAX_ITEMS:
            self.fail(where, f"has more than {_MAX_ITEMS} entries")
        return value

    def strings(self, value: Any, where: str) -> tuple[str, ...]:
        items = self.items(value, where)
        if not all(isinstance(v, str) for v in items):
            self.fail(where, "must be a list of strings")
        return tuple(items)

    def text(self, value: Any, where: str, *, required: bool = False) -> str:
        if value is None and not required:
            return ""
        if not isinstance(value, str) or (required and not value.strip()):
            self.fail(where, "is required and must be a string")
        return value

    def compile(self, value: Any, where: str) -> Program:
        expression = self.text(value, where, required=True)
        try:
            return self.engine.compile(expression)
        except CompileError as exc:
            self.fail(where, f"expression {expression.strip()!r} does not compile: {exc}")

    def rule(self, value: Any, where: str) -> ResourceRule:
        rule = self.mapping(value, where)
        operations = self.strings(rule.get("operations", ["*"]), f"{where}.operations")
        unknown = sorted(set(operations) - _OPERATIONS)
        if unknown:
            self.fail(f"{where}.operations", f"{unknown[0]!r} is not CREATE, UPDATE, DELETE or *")
        scope = self.text(rule.get("scope", "*"), f"{where}.scope") or "*"
        if scope not in ("*", "Cluster", "Namespaced"):
            self.fail(f"{where}.scope", "must be *, Cluster or Namespaced")
        return ResourceRule(
            groups=self.strings(rule.get("apiGroups", ["*"]), f"{where}.apiGroups"),
            versions=self.strings(rule.get("apiVersions", ["*"]), f"{where}.apiVersions"),
            resources=self.strings(rule.get("resources"), f"{where}.resources"),
            operations=operations,
            names=self.strings(rule.get("resourceNames"), f"{where}.resourceNames"),
            scope=scope,
        )

    def selector(self, value: Any, where: str) -> LabelSelector:
        body = self.mapping(value, where)
        labels = self.mapping(body.get("matchLabels"), f"{where}.matchLabels")
        expressions = []
        for index, item in enumerate(
            self.items(body.get("matchExpressions"), f"{where}.matchExpressions")
        ):
            at = f"{where}.matchExpressions[{index}]"
            item = self.mapping(item, at)
            operator = self.text(item.get("operator"), f"{at}.operator", required=True)
            if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
                self.fail(f"{at}.operator", "must be In, NotIn, Exists or DoesNotExist")
            expressions.append(
                Requirement(
                    key=self.text(item.get("key"), f"{at}.key", required=True),
                    operator=operator,
                    values=self.strings(item.get("values"), f"{at}.values"),
                )
            )
        return LabelSelector({str(k): str(v) for k, v in labels.items()}, tuple(expressions))

    def match(self, value: Any, where: str) -> MatchResources:
        body = self.mapping(value, where)
        policy = self.text(body.get("matchPolicy"), f"{where}.matchPolicy") or "Equivalent"
        if policy not in ("Equivalent", "Exact"):
            self.fail(f"{where}.matchPolicy", "must be Equivalent or Exact")
        return MatchResources(
            rules=tuple(
                self.rule(r, f"{where}.resourceRules[{i}]")
                for i, r in enumerate(
                    self.items(body.get("resourceRules"), f"{where}.resourceRules")
                )
            ),
            exclude=tuple(
                self.rule(r, f"{where}.excludeResourceRules[{i}]")
                for i, r in enumerate(
                    self.items(body.get("excludeResourceRules"), f"{where}.excludeResourceRules")
                )
            ),
            namespace_selector=self.selector(
                body.get("namespaceSelector"), f"{where}.namespaceSelector"
            ),
            object_selector=self.selector(body.get("objectSelector"), f"{where}.objectSelector"),
            exact=policy == "Exact",
        )

    def named(self, value: Any, where: str) -> tuple[Condition, ...]:
        found = []
        for index, item in enumerate(self.items(value, where)):
            at = f"{where}[{index}]"
            item = self.mapping(item, at)
            found.append(
                Condition(
                    name=self.text(item.get("name"), f"{at}.name", required=True),
                    program=self.compile(item.get("expression"), f"{at}.expression"),
                )
            )
        return tuple(found)

    def validations(self, value: Any, where: str) -> tuple[Validation, ...]:
        found = []
        for index, item in enumerate(self.items(value, where)):
            at = f"{where}[{index}]"
            item = self.mapping(item, at)
            message_expression = item.get("messageExpression")
            found.append(
                Validation(
                    program=self.compile(item.get("expression"), f"{at}.expression"),
                    message=self.text(item.get("message"), f"{at}.message"),
                    message_program=(
                        self.compile(message_expression, f"{at}.messageExpression")
                        if message_expression is not None
                        else None
                    ),
                    reason=self.text(item.get("reason"), f"{at}.reason"),
                )
            )
        if not found:
            self.fail(where, "needs at least one validation")
        return tuple(found)


def _name(document: Mapping[str, Any], file: str) -> str:
    meta = document.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    if not isinstance(name, str) or not name:
        raise InputError(
            "is required", file=file, obj=str(document.get("kind")), field="metadata.name"
        )
    return name


def _policy(engine: Engine, document: Mapping[str, Any], file: str, tidegate: bool) -> Policy:
    name = _name(document, file)
    reader = _Reader(engine, file, f"{document.get('kind')}/{name}")
    spec = reader.mapping(document.get("spec"), "spec")
    failure = reader.text(spec.get("failurePolicy"), "spec.failurePolicy") or "Fail"
    if failure not in ("Fail", "Ignore"):
        reader.fail("spec.failurePolicy", "must be Fail or Ignore")
    match = reader.match(spec.get("matchConstraints"), "spec.matchConstraints")
    if not match.rules:
        reader.fail("spec.matchConstraints.resourceRules", "is required")
    param_kind = None
    raw_kind = spec.get("paramKind")
    if raw_kind is not None:
        kind = reader.mapping(raw_kind, "spec.paramKind")
        param_kind = (
            reader.text(kind.get("apiVersion"), "spec.paramKind.apiVersion", required=True),
            reader.text(kind.get("kind"), "spec.paramKind.kind", required=True),
        )
    severity = Severity.ERROR
    params = None
    approval = False
    if tidegate:
        raw = reader.text(spec.get("severity"), "spec.severity") or "error"
        if raw not in {s.value for s in Severity}:
            reader.fail("spec.severity", "must be error, warning or notice")
        severity = Severity(raw)
        if spec.get("params") is not None:
            params = reader.mapping(spec.get("params"), "spec.params")
        approval = spec.get("approvalRequired", False)
        if not isinstance(approval, bool):
            reader.fail("spec.approvalRequired", "must be true or false")
    annotations = (document.get("metadata") or {}).get("annotations") or {}
    summary = annotations.get("tidegate.dev/summary") if isinstance(annotations, Mapping) else None
    variables = reader.named(spec.get("variables"), "spec.variables")
    conditions, validations, bound = _bound(
        engine,
        variables,
        reader.named(spec.get("matchConditions"), "spec.matchConditions"),
        reader.validations(spec.get("validations"), "spec.validations"),
    )
    return Policy(
        name=name,
        file=file,
        kind="Policy" if tidegate else "ValidatingAdmissionPolicy",
        match=match,
        conditions=conditions,
        variables=variables,
        validations=validations,
        bound=bound,
        fail_on_error=failure == "Fail",
        param_kind=param_kind,
        params=params,
        severity=severity,
        approval_required=approval,
        summary=str(summary) if summary else f"User rule {name} ({file})",
    )


def _bound(
    engine: Engine,
    variables: Sequence[Condition],
    conditions: Sequence[Condition],
    validations: Sequence[Validation],
) -> tuple[tuple[Condition, ...], tuple[Validation, ...], bool]:
    """Compile every expression with its variables bound, or none when one cannot be."""
    sources = [(v.name, v.program.source) for v in variables]

    def run(program: Program) -> Program:
        text = bind_variables(program.source, sources)
        if text is None:
            raise CompileError("variables used in a way binding does not cover")
        return engine.compile(text)

    try:
        bound_conditions = tuple(replace(c, run=run(c.program)) for c in conditions)
        bound_validations = tuple(
            replace(
                v,
                run=run(v.program),
                message_run=run(v.message_program) if v.message_program else None,
            )
            for v in validations
        )
    except CompileError:
        return tuple(conditions), tuple(validations), False
    return bound_conditions, bound_validations, True


def _binding(engine: Engine, document: Mapping[str, Any], file: str) -> Binding:
    name = _name(document, file)
    reader = _Reader(engine, file, f"ValidatingAdmissionPolicyBinding/{name}")
    spec = reader.mapping(document.get("spec"), "spec")
    policy = reader.text(spec.get("policyName"), "spec.policyName", required=True)
    actions = reader.strings(spec.get("validationActions"), "spec.validationActions")
    if not actions or not set(actions) <= set(_ACTIONS):
        reader.fail("spec.validationActions", "must list Deny, Warn and/or Audit")
    severity = min((_ACTIONS[a] for a in actions), key=lambda s: s.rank)
    param_ref = None
    raw_ref = spec.get("paramRef")
    if raw_ref is not None:
        ref = reader.mapping(raw_ref, "spec.paramRef")
        action = reader.text(
            ref.get("parameterNotFoundAction"), "spec.paramRef.parameterNotFoundAction"
        )
        if action not in ("", "Allow", "Deny"):
            reader.fail("spec.paramRef.parameterNotFoundAction", "must be Allow or Deny")
        selector = ref.get("selector")
        param_ref = ParamRef(
            name=reader.text(ref.get("name"), "spec.paramRef.name"),
            namespace=reader.text(ref.get("namespace"), "spec.paramRef.namespace"),
            selector=reader.selector(selector, "spec.paramRef.selector")
            if selector is not None
            else None,
            deny_when_missing=action != "Allow",
        )
    match = spec.get("matchResources")
    return Binding(
        name=name,
        policy=policy,
        severity=severity,
        match=reader.match(match, "spec.matchResources") if match is not None else None,
        param_ref=param_ref,
        file=file,
    )


def parse_documents(
    engine: Engine,
    documents: Sequence[tuple[str, Mapping[str, Any]]],
    into: Documents | None = None,
) -> Documents:
    """Parse and compile `(file, document)` pairs; other documents are kept as candidate params."""
    found = into or Documents()
    for file, document in documents:
        api, kind = document.get("apiVersion"), document.get("kind")
        if api == TIDEGATE_API and kind == "Policy":
            policy = _policy(engine, document, file, tidegate=True)
            _add_policy(found, policy)
            found.bindings.append(Binding(policy.name, policy.name, policy.severity, file=file))
        elif api == ADMISSION_API and kind == "ValidatingAdmissionPolicy":
            _add_policy(found, _policy(engine, document, file, tidegate=False))
        elif api == ADMISSION_API and kind == "ValidatingAdmissionPolicyBinding":
            found.bindings.append(_binding(engine, document, file))
        elif isinstance(api, str) and api.startswith("tidegate.dev/"):
            raise InputError(f"unknown kind {kind!r} for {api}", file=file, field="kind")
        else:
            found.params.append(document)
    return found


def _add_policy(found: Documents, policy: Policy) -> None:
    if policy.name in found.policies:
        other = found.policies[policy.name].file
        raise InputError(
            f"policy {policy.name} is also defined in {other}",
            file=policy.file,
            field="metadata.name",
        )
    found.policies[policy.name] = policy
