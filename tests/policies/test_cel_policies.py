"""User rules: documents, ValidatingAdmissionPolicy semantics, loading from the base revision."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.errors import InputError
from core.findings import Severity
from policies.cel.admission import Decision, evaluate_request
from policies.cel.documents import Documents, parse_documents
from policies.cel.engine import Engine
from policies.cel.matching import Request
from policies.cel.rules import load_user_rules
from policies.evaluate import evaluate
from policies.input import build_input
from tests.policies.cases import case
from tests.policies.files import DictFiles

ENGINE = Engine()

VAP = """
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: replicas-limit}
spec:
  failurePolicy: Fail
  paramKind: {apiVersion: v1, kind: ConfigMap}
  matchConstraints:
    resourceRules:
    - apiGroups: [apps]
      apiVersions: [v1]
      operations: [CREATE, UPDATE]
      resources: [deployments]
  matchConditions:
  - name: not-excluded
    expression: "!has(object.metadata.labels) || !('skip' in object.metadata.labels)"
  variables:
  - {name: limit, expression: "int(params.data.maxReplicas)"}
  validations:
  - expression: "object.spec.replicas <= variables.limit"
    messageExpression: >-
      'replicas ' + string(object.spec.replicas) + ' > ' + string(variables.limit)
  - expression: "object.metadata.name.startsWith('web-')"
    message: "  names start with web-  "
  - expression: "object.metadata.namespace != 'forbidden'"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: replicas-limit-prod}
spec:
  policyName: replicas-limit
  validationActions: [Deny]
  paramRef: {name: limits, namespace: policy-params, parameterNotFoundAction: Deny}
  matchResources:
    namespaceSelector: {matchLabels: {env: prod}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: limits, namespace: policy-params}
data: {maxReplicas: "5"}
"""


def _documents(text: str, file: str = "p.yaml") -> Documents:
    return parse_documents(
        ENGINE, [(file, d) for d in yaml.safe_load_all(textwrap.dedent(text)) if d]
    )


def _deployment(name: str = "web-api", replicas: int = 3, **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "shop"}
    if labels:
        meta["labels"] = labels
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {"replicas": replicas},
    }


def _request(obj: dict[str, Any], *, operation: str = "CREATE", env: str = "prod") -> Request:
    meta = obj["metadata"]
    return Request(
        operation=operation,
        group="apps",
        version="v1",
        kind="Deployment",
        resource="deployments",
        namespaced=True,
        name=meta["name"],
        namespace=meta["namespace"],
        object=None if operation == "DELETE" else obj,
        old_object=obj if operation != "CREATE" else None,
        namespace_labels={"env": env, "kubernetes.io/metadata.name": meta["namespace"]},
    )


def _decide(documents: Documents, request: Request) -> list[str]:
    policy = next(iter(documents.policies.values()))
    return [d.message for d in evaluate_request(ENGINE, documents, policy, request)]


PREFIX = (
    "ValidatingAdmissionPolicy 'replicas-limit' with binding 'replicas-limit-prod' denied request: "
)


def test_messages_follow_the_api_server() -> None:
    documents = _documents(VAP)
    assert _decide(documents, _request(_deployment(replicas=3))) == []
    assert _decide(documents, _request(_deployment("api", replicas=9))) == [
        PREFIX + "replicas 9 > 5",
        PREFIX + "names start with web-",
    ]
    forbidden = _deployment()
    forbidden["metadata"]["namespace"] = "forbidden"
    assert _decide(documents, _request(forbidden)) == [
        PREFIX + "failed expression: object.metadata.namespace != 'forbidden'"
    ]


def test_match_conditions_selectors_and_operations_limit_the_scope() -> None:
    documents = _documents(VAP)
    assert _decide(documents, _request(_deployment("api", 9, skip="yes"))) == []
    assert _decide(documents, _request(_deployment("api", 9), env="dev")) == []
    assert _decide(documents, _request(_deployment("api", 9), operation="DELETE")) == []


def test_missing_params_deny_or_allow_as_the_binding_says() -> None:
    without_params = VAP.split("---\napiVersion: v1\nkind: ConfigMap")[0]
    assert _decide(_documents(without_params), _request(_deployment())) == [
        PREFIX + "no params found for policy binding with `Deny` parameterNotFoundAction"
    ]
    allow = without_params.replace(
        "parameterNotFoundAction: Deny", "parameterNotFoundAction: Allow"
    )
    assert _decide(_documents(allow), _request(_deployment())) == []


def test_evaluation_errors_deny_under_fail_and_pass_under_ignore() -> None:
    broken = VAP.replace("int(params.data.maxReplicas)", "int(params.data.missing)")
    decisions = _decide(_documents(broken), _request(_deployment("web-x", 3)))
    assert decisions == [
        PREFIX + "expression 'object.spec.replicas <= variables.limit' resulted in error: "
        "no such key: missing"
    ]
    ignored = broken.replace("failurePolicy: Fail", "failurePolicy: Ignore")
    assert _decide(_documents(ignored), _request(_deployment("web-x", 3))) == []


def test_binding_actions_set_the_severity() -> None:
    warn = VAP.replace("validationActions: [Deny]", "validationActions: [Warn, Audit]")
    documents = _documents(warn)
    policy = documents.policies["replicas-limit"]
    [decision, _] = evaluate_request(ENGINE, documents, policy, _request(_deployment("api", 9)))
    assert isinstance(decision, Decision)
    assert decision.severity is Severity.WARNING


POLICY = """
apiVersion: tidegate.dev/v1alpha1
kind: Policy
metadata: {name: no-config-deletes}
spec:
  severity: warning
  params: {protected: [important]}
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: ["*"], resources: [configmaps], operations: [DELETE]}
  validations:
  - expression: "!(oldObject.metadata.name in params.protected)"
    messageExpression: >-
      'ConfigMap ' + oldObject.metadata.name + ' would be pruned by ' + tidegate.unit
"""

CHANGES = """
case: configmaps deleted
cluster: clusters/production
base:
- unit: Kustomization/flux-system/apps
  objects:
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: important, namespace: web}}
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: scratch, namespace: web}}
head:
- unit: Kustomization/flux-system/apps
"""


def test_tidegate_policies_see_deletions_params_and_the_gitops_context(tmp_path: Path) -> None:
    rules, notices = load_user_rules(
        DictFiles({".tidegate/policies/p.yaml": POLICY}),
        DictFiles({".tidegate/policies/p.yaml": POLICY}),
    )
    assert notices == []
    result = evaluate(build_input(case(tmp_path, CHANGES).preview), rules)
    assert [(f.rule, f.severity, str(f.ref), f.message) for f in result.findings] == [
        (
            "no-config-deletes",
            Severity.WARNING,
            "ConfigMap/web/important",
            "ConfigMap important would be pruned by Kustomization/flux-system/apps",
        )
    ]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            POLICY.replace("oldObject.metadata.name in", "authorizer.allowed() &&"),
            "undeclared reference to 'authorizer'",
        ),
        (POLICY.replace("!(oldObject", "!(oldObject.metadata.name.frobnicate() &&"), "frobnicate"),
        (POLICY.replace("severity: warning", "severity: fatal"), "field spec.severity"),
        (POLICY.replace("operations: [DELETE]", "operations: [PATCH]"), "'PATCH' is not CREATE"),
        (POLICY.replace("name: no-config-deletes", "name: GP001"), "built-in rule id"),
    ],
)
def test_a_base_rule_that_does_not_load_names_file_policy_and_expression(
    text: str, fragment: str
) -> None:
    with pytest.raises(InputError) as caught:
        load_user_rules(DictFiles({".tidegate/policies/p.yaml": text}), DictFiles())
    message = str(caught.value)
    assert "file .tidegate/policies/p.yaml" in message
    assert fragment in message
    if "expression" in fragment or "frobnicate" in fragment or "authorizer" in fragment:
        assert "object Policy/no-config-deletes" in message
        assert "field spec.validations[0].expression" in message


def test_rules_come_from_base_and_the_pull_requests_rules_are_only_checked(tmp_path: Path) -> None:
    weakened = POLICY.replace("[important]", "[]")
    rules, notices = load_user_rules(
        DictFiles({".tidegate/policies/p.yaml": POLICY}),
        DictFiles(
            {
                ".tidegate/policies/p.yaml": weakened,
                ".tidegate/policies/broken.yaml": POLICY.replace("!(", "!!((("),
            }
        ),
    )
    result = evaluate(build_input(case(tmp_path, CHANGES).preview), rules)
    assert [str(f.ref) for f in result.findings] == ["ConfigMap/web/important"]
    by_file = {n.file: n for n in notices}
    assert by_file[".tidegate/policies/p.yaml"].rule == "policy-pending"
    assert by_file[".tidegate/policies/p.yaml"].severity is Severity.NOTICE
    assert by_file[".tidegate/policies/broken.yaml"].rule == "policy-invalid"
    assert by_file[".tidegate/policies/broken.yaml"].severity is Severity.ERROR


def test_a_policy_without_binding_is_not_evaluated_and_says_so() -> None:
    lonely = VAP.split("---")[0]
    rules, notices = load_user_rules(
        DictFiles({".tidegate/policies/v.yaml": lonely}),
        DictFiles({".tidegate/policies/v.yaml": lonely}),
    )
    assert rules == []
    assert "has no binding" in notices[0].message


def test_a_binding_without_the_params_its_policy_needs_is_an_error() -> None:
    no_ref = VAP.replace(
        "  paramRef: {name: limits, namespace: policy-params, parameterNotFoundAction: Deny}\n", ""
    )
    with pytest.raises(InputError, match=r"spec\.paramRef"):
        load_user_rules(DictFiles({".tidegate/policies/v.yaml": no_ref}), DictFiles())


def test_variables_evaluated_one_by_one_give_the_same_verdicts() -> None:
    # `variables['limit']` cannot be inlined with cel.bind, so this policy takes the other path.
    indexed = VAP.replace(
        'expression: "object.spec.replicas <= variables.limit"',
        "expression: \"object.spec.replicas <= variables['limit']\"",
    )
    documents = _documents(indexed)
    assert not documents.policies["replicas-limit"].bound
    assert _documents(VAP).policies["replicas-limit"].bound
    assert _decide(documents, _request(_deployment("api", replicas=9))) == [
        PREFIX + "replicas 9 > 5",
        PREFIX + "names start with web-",
    ]
    broken = indexed.replace("int(params.data.maxReplicas)", "int(params.data.missing)")
    assert _decide(_documents(broken), _request(_deployment("web-x", 3))) == [
        PREFIX + "expression 'object.spec.replicas <= variables['limit']' resulted in error: "
        "no such key: missing"
    ]
