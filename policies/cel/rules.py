"""User rules as `Rule`s: loaded from the base revision's `.tidegate/policies/`, one per policy.

Which revision: rules come from the BASE revision, so a pull request cannot weaken the rules that
judge it. The pull request's own rule files (added or changed under `.tidegate/policies/`) are
loaded too, only to check them: one that does not load is a blocking `policy-invalid` finding
(so a broken rule cannot be merged), one that loads is a `policy-pending` notice saying it takes
effect after the merge. A base rule file that does not load is an error: the gate cannot judge
without its rules, so it fails closed.

Each policy is one rule whose id is the policy's name (so `tidegate.dev/waive-<name>` waives it
and `.tidegate.yaml` can set its severity); a finding names the object and the rule file. Only
changes that reach the API server are evaluated (CREATE, UPDATE, DELETE; an orphan is not a
request). The requests of one input are built once and shared by every user rule.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from core.errors import InputError
from core.findings import Finding, Severity
from policies.base import RULE_ID, RuleMeta
from policies.cel.admission import Prepared, evaluate_request
from policies.cel.documents import Documents, Policy, parse_documents
from policies.cel.engine import Engine
from policies.cel.matching import MatchResources, Request, labels_of, resource_of
from policies.gate import RevisionFiles
from policies.input import ChangeInput, PolicyInput

__all__ = ["POLICY_DIR", "CelRule", "load_user_rules", "request_of"]

POLICY_DIR = ".tidegate/policies"
POLICY_INVALID = "policy-invalid"
POLICY_PENDING = "policy-pending"
_MAX_FILE = 1 << 20
_MAX_FILES = 200


def request_of(change: ChangeInput, namespace_labels: Mapping[str, str]) -> Request:
    """Build the admission request a change becomes."""
    group, _, version = change.api_version.rpartition("/")
    resource, namespaced = resource_of(change.ref.kind, bool(change.ref.namespace))
    return Request(
        operation=change.operation.value if change.operation else "",
        group=group,
        version=version,
        kind=change.ref.kind,
        resource=resource,
        namespaced=namespaced,
        name=change.ref.name,
        namespace=change.ref.namespace,
        object=change.object,
        old_object=change.old_object,
        namespace_labels=namespace_labels,
    )


Entry = tuple[ChangeInput, Prepared]


class _Requests:
    """The requests of one input, built once for all user rules, indexed by resource."""

    def __init__(self) -> None:
        self._input: PolicyInput | None = None
        self._requests: list[Entry] = []
        self._by_resource: dict[tuple[str, str], list[Entry]] = {}
        self._position: dict[int, int] = {}

    def candidates(self, policy_input: PolicyInput, match: MatchResources) -> list[Entry]:
        """Return the requests whose group and resource a policy's rules can match.

        Only a shortcut: the policy's full matching still runs on each of them.
        """
        requests = self.of(policy_input)
        keys: set[tuple[str, str]] = set()
        for rule in match.rules:
            if "*" in rule.groups or any(
                r in ("*", "*/*") or r.startswith("*/") for r in rule.resources
            ):
                return requests
            keys.update((g, r) for g in rule.groups for r in rule.resources)
        found = [e for key in keys for e in self._by_resource.get(key, ())]
        return sorted(found, key=lambda e: self._position[id(e)])

    def of(self, policy_input: PolicyInput) -> list[Entry]:
        if self._input is not policy_input:
            namespaces = _namespace_labels(policy_input)
            self._requests = [
                (
                    change,
                    Prepared(
                        request_of(
                            change,
                            namespaces.get((change.cluster, change.ref.namespace))
                            or {"kubernetes.io/metadata.name": change.ref.namespace},
                        ),
                        change.context(),
                    ),
                )
                for change in policy_input.changes
                if change.operation is not None
            ]
            self._position = {id(entry): index for index, entry in enumerate(self._requests)}
            self._by_resource = {}
            for entry in self._requests:
                key = (entry[1].request.group, entry[1].request.resource)
                self._by_resource.setdefault(key, []).append(entry)
            self._input = policy_input
        return self._requests


def _namespace_labels(policy_input: PolicyInput) -> dict[tuple[str, str], dict[str, str]]:
    """Labels of the namespaces the change set itself declares (head, else base)."""
    found = {}
    for change in policy_input.changes:
        if change.ref.kind == "Namespace" and change.ref.group == "":
            labels = labels_of(change.body)
            labels["kubernetes.io/metadata.name"] = change.ref.name
            found[(change.cluster, change.ref.name)] = labels
    return found


@dataclass(frozen=True)
class CelRule:
    """One user policy as a rule."""

    meta: RuleMeta
    policy: Policy
    documents: Documents
    engine: Engine
    requests: _Requests

    def evaluate(self, policy_input: PolicyInput) -> Iterable[Finding]:
        """Evaluate the policy on every change that reaches the API server."""
        for change, prepared in self.requests.candidates(policy_input, self.policy.match):
            for decision in evaluate_request(self.engine, self.documents, self.policy, prepared):
                yield Finding(
                    rule=self.meta.id,
                    severity=decision.severity,
                    message=decision.message,
                    cluster=change.cluster,
                    unit=change.unit,
                    ref=change.ref,
                    api_version=change.api_version,
                    file=change.file,
                    line=change.line,
                    approval_required=self.policy.approval_required,
                )


def _documents(files: RevisionFiles, paths: Sequence[str]) -> list[tuple[str, Mapping[str, Any]]]:
    documents = []
    for path in paths:
        data = files.read(path)
        if data is None:
            continue
        if len(data) > _MAX_FILE:
            raise InputError(f"is larger than {_MAX_FILE} bytes", file=path)
        try:
            loaded = list(yaml.safe_load_all(data.decode("utf-8", errors="replace")))
        except yaml.YAMLError as exc:
            raise InputError(f"is not valid YAML: {exc}", file=path) from None
        for index, document in enumerate(loaded):
            if document is None:
                continue
            if not isinstance(document, Mapping):
                raise InputError(f"document {index + 1} must be a mapping", file=path)
            documents.append((path, document))
    return documents


def _rule_files(files: RevisionFiles, directory: str) -> list[str]:
    paths = [p for p in files.files(directory) if p.endswith((".yaml", ".yml"))]
    if len(paths) > _MAX_FILES:
        raise InputError(f"holds more than {_MAX_FILES} rule files", file=directory)
    return paths


def _digest(files: RevisionFiles, path: str) -> str:
    return hashlib.sha256(files.read(path) or b"").hexdigest()


def _check(documents: Documents) -> list[Finding]:
    """Cross-document checks: names, bindings and params."""
    notices = []
    for policy in documents.policies.values():
        if RULE_ID.match(policy.name):
            raise InputError(
                "must not look like a built-in rule id (GP001)",
                file=policy.file,
                obj=policy.name,
                field="metadata.name",
            )
        bindings = [b for b in documents.bindings if b.policy == policy.name]
        if not bindings:
            notices.append(
                Finding(
                    rule=POLICY_PENDING,
                    severity=Severity.NOTICE,
                    message=f"ValidatingAdmissionPolicy {policy.name} has no binding; as in a "
                    "cluster, it is not evaluated",
                    file=policy.file,
                )
            )
        for binding in bindings:
            if policy.param_kind is not None and binding.param_ref is None:
                raise InputError(
                    f"binds {policy.name}, which has a paramKind, without a paramRef",
                    file=binding.file,
                    obj=f"ValidatingAdmissionPolicyBinding/{binding.name}",
                    field="spec.paramRef",
                )
    return notices


def load_user_rules(
    base: RevisionFiles,
    head: RevisionFiles,
    engine: Engine | None = None,
    *,
    directory: str = POLICY_DIR,
) -> tuple[list[CelRule], list[Finding]]:
    """Load the base revision's user rules; check the pull request's; see the module docstring."""
    engine = engine or Engine()
    base_paths = _rule_files(base, directory)
    documents = parse_documents(engine, _documents(base, base_paths))
    findings = _check(documents)
    findings.extend(_pending(engine, base, head, base_paths, directory))
    requests = _Requests()
    rules = []
    for policy in documents.policies.values():
        bound = [b for b in documents.bindings if b.policy == policy.name]
        if not bound:
            continue
        severity = min((b.severity for b in bound), key=lambda s: s.rank)
        meta = RuleMeta(
            id=policy.name,
            title=policy.name,
            severity=severity,
            summary=policy.summary,
            docs=f"Defined in {policy.file}.",
            approval_required=policy.approval_required,
        )
        rules.append(CelRule(meta, policy, documents, engine, requests))
    return rules, findings


def _pending(
    engine: Engine,
    base: RevisionFiles,
    head: RevisionFiles,
    base_paths: Sequence[str],
    directory: str,
) -> list[Finding]:
    """Check the rule files the pull request adds or changes."""
    known = {path: _digest(base, path) for path in base_paths}
    changed = [p for p in _rule_files(head, directory) if known.get(p) != _digest(head, p)]
    findings = []
    for path in changed:
        try:
            loaded = parse_documents(engine, _documents(head, [path]))
            _check(loaded)
        except InputError as exc:
            findings.append(
                Finding(
                    rule=POLICY_INVALID,
                    severity=Severity.ERROR,
                    message=f"this pull request's rule file does not load: {exc}",
                    file=path,
                )
            )
            continue
        names = ", ".join(sorted(loaded.policies)) or "no policy"
        findings.append(
            Finding(
                rule=POLICY_PENDING,
                severity=Severity.NOTICE,
                message=f"rules changed in this pull request ({names}) take effect after the "
                "merge; this pull request is judged by the base revision's rules",
                file=path,
            )
        )
    return findings
