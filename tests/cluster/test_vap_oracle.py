"""Our ValidatingAdmissionPolicy verdicts and messages equal the kube-apiserver's, side by side.

Real policy documents (bindings, params by name and by selector, `matchConditions`, `variables`,
`messageExpression`, `message`, the fallback message, evaluation errors, Kubernetes library
functions, DELETE) are loaded into the local control plane's kube-apiserver (Kubernetes 1.33)
and into our engine. Each request is sent to the API server and evaluated by us with the same
object, old object and namespace labels; the allow/deny verdict and the denial message (the
`causes[0].message` of the API server's Status) must be identical.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from policies.cel.admission import evaluate_request
from policies.cel.documents import Documents, parse_documents
from policies.cel.engine import Engine
from policies.cel.matching import Request, resource_of
from tests.cluster.kube import eventually

pytestmark = pytest.mark.cluster

ADMISSION = "admissionregistration.k8s.io/v1"


def _policies(run: str, namespace: str) -> list[dict[str, Any]]:
    """The policies under test; bindings only select the test's namespace."""
    scope = {"namespaceSelector": {"matchLabels": {"tidegate-oracle": run}}}
    return [
        {
            "apiVersion": ADMISSION,
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": f"replicas-{run}"},
            "spec": {
                "failurePolicy": "Fail",
                "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": ["apps"],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE", "UPDATE"],
                            "resources": ["deployments"],
                        }
                    ]
                },
                "matchConditions": [
                    {
                        "name": "not-skipped",
                        "expression": "!has(object.metadata.labels) || "
                        "!('skip' in object.metadata.labels)",
                    }
                ],
                "variables": [
                    {"name": "limit", "expression": "int(params.data.maxReplicas)"},
                    {"name": "name", "expression": "object.metadata.name"},
                ],
                "validations": [
                    {
                        "expression": "object.spec.replicas <= variables.limit",
                        "messageExpression": "'replicas ' + string(object.spec.replicas) + "
                        "' exceed ' + string(variables.limit) + ' for ' + variables.name",
                    },
                    {
                        "expression": "variables.name.startsWith('web-')",
                        "message": "deployment names start with web-",
                    },
                ],
            },
        },
        {
            "apiVersion": ADMISSION,
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": f"replicas-{run}-binding"},
            "spec": {
                "policyName": f"replicas-{run}",
                "validationActions": ["Deny"],
                "paramRef": {
                    "name": "limits",
                    "namespace": namespace,
                    "parameterNotFoundAction": "Deny",
                },
                "matchResources": scope,
            },
        },
        {
            "apiVersion": ADMISSION,
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": f"configs-{run}"},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE", "UPDATE", "DELETE"],
                            "resources": ["configmaps"],
                        }
                    ],
                    "objectSelector": {"matchLabels": {"checked": "yes"}},
                },
                "validations": [
                    {
                        "expression": "request.operation != 'DELETE' || "
                        "!('protected' in oldObject.metadata.labels)",
                        "messageExpression": "'ConfigMap ' + oldObject.metadata.name + "
                        "' is protected'",
                    },
                    {
                        "expression": "request.operation == 'DELETE' || !has(object.data) || "
                        "!has(object.data.memory) || "
                        "!quantity(object.data.memory).isGreaterThan(quantity('1Gi'))",
                        "messageExpression": "'memory ' + object.data.memory + ' is over 1Gi'",
                    },
                    {
                        "expression": "request.operation == 'DELETE' || !has(object.data) || "
                        "!has(object.data.url) || "
                        "url(object.data.url).getHostname().endsWith('.example.com')",
                        "message": "URLs must point at example.com",
                    },
                    {
                        "expression": "request.operation == 'DELETE' || !has(object.data) || "
                        "!has(object.data.order) || object.data.order.split(',').isSorted()",
                    },
                    {
                        "expression": "request.operation == 'DELETE' || !has(object.data) || "
                        "!has(object.data.tag) || object.data.tag.find('[0-9]+') != ''",
                        "messageExpression": "'tag ' + object.data.tag + ' has no number; "
                        "position of x: ' + string(['a', 'x'].indexOf('x'))",
                    },
                    {
                        "expression": "request.operation == 'DELETE' || !has(object.data) || "
                        "!has(object.data.strict) || object.data.missing == 'x'",
                    },
                ],
            },
        },
        {
            "apiVersion": ADMISSION,
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": f"configs-{run}-binding"},
            "spec": {
                "policyName": f"configs-{run}",
                "validationActions": ["Deny"],
                "matchResources": scope,
            },
        },
        {
            "apiVersion": ADMISSION,
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": f"ports-{run}"},
            "spec": {
                "failurePolicy": "Fail",
                "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["services"],
                        }
                    ]
                },
                "validations": [
                    {
                        "expression": "object.spec.ports.all(p, "
                        "!(string(p.port) in params.data.forbidden.split(',')))",
                        "messageExpression": "'port forbidden by ' + params.metadata.name",
                    }
                ],
            },
        },
        {
            "apiVersion": ADMISSION,
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": f"ports-{run}-binding"},
            "spec": {
                "policyName": f"ports-{run}",
                "validationActions": ["Deny"],
                "paramRef": {
                    "selector": {"matchLabels": {"port-policy": "yes"}},
                    "namespace": namespace,
                    "parameterNotFoundAction": "Allow",
                },
                "matchResources": scope,
            },
        },
    ]


def _params(namespace: str) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "limits", "namespace": namespace},
            "data": {"maxReplicas": "3"},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "ports-a",
                "namespace": namespace,
                "labels": {"port-policy": "yes"},
            },
            "data": {"forbidden": "22,23"},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "ports-b",
                "namespace": namespace,
                "labels": {"port-policy": "yes"},
            },
            "data": {"forbidden": "3389"},
        },
    ]


def _deployment(ns: str, name: str, replicas: int, **labels: str) -> dict[str, Any]:
    selector = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name, **labels}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": selector},
                "spec": {"containers": [{"name": "c", "image": "registry.example.com/c:1"}]},
            },
        },
    }


def _configmap(ns: str, name: str, data: dict[str, str], **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "labels": {"checked": "yes", **labels}},
        "data": data,
    }


def _service(ns: str, name: str, *ports: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"ports": [{"name": f"p{p}", "port": p} for p in ports]},
    }


@dataclass(frozen=True)
class Case:
    """One request: CREATE `body`; UPDATE `old` to `body`; or DELETE `old`."""

    operation: str
    body: dict[str, Any] | None = None
    old: dict[str, Any] | None = None


def _cases(ns: str) -> list[Case]:
    return [
        # Deployments: params by name, variables, messageExpression, message, matchConditions.
        Case("CREATE", _deployment(ns, "web-ok", 2)),
        Case("CREATE", _deployment(ns, "web-big", 5)),
        Case("CREATE", _deployment(ns, "api", 1)),
        Case("CREATE", _deployment(ns, "api-big", 9)),
        Case("CREATE", _deployment(ns, "api-skipped", 9, skip="yes")),
        Case("UPDATE", _deployment(ns, "web-grow", 7), old=_deployment(ns, "web-grow", 1)),
        Case("UPDATE", _deployment(ns, "web-same", 3), old=_deployment(ns, "web-same", 1)),
        # ConfigMaps: the Kubernetes library, the fallback message, errors, DELETE, selectors.
        Case("CREATE", _configmap(ns, "mem-ok", {"memory": "512Mi"})),
        Case("CREATE", _configmap(ns, "mem-big", {"memory": "2Gi"})),
        Case("CREATE", _configmap(ns, "mem-unchecked", {"memory": "2Gi"}, checked="no")),
        Case("CREATE", _configmap(ns, "url-ok", {"url": "https://api.example.com:8443/x"})),
        Case("CREATE", _configmap(ns, "url-bad", {"url": "https://evil.test/x"})),
        Case("CREATE", _configmap(ns, "order-ok", {"order": "a,b,c"})),
        Case("CREATE", _configmap(ns, "order-bad", {"order": "b,a"})),
        Case("CREATE", _configmap(ns, "tag-ok", {"tag": "v12"})),
        Case("CREATE", _configmap(ns, "tag-bad", {"tag": "latest"})),
        Case("CREATE", _configmap(ns, "strict", {"strict": "1"})),
        Case(
            "UPDATE",
            _configmap(ns, "mem-grow", {"memory": "3Gi"}),
            old=_configmap(ns, "mem-grow", {"memory": "1Gi"}),
        ),
        Case("DELETE", old=_configmap(ns, "keep-me", {"a": "1"}, protected="yes")),
        Case("DELETE", old=_configmap(ns, "drop-me", {"a": "1"})),
        # Services: params by selector (two params; each is evaluated).
        Case("CREATE", _service(ns, "svc-ok", 80, 443)),
        Case("CREATE", _service(ns, "svc-ssh", 22)),
        Case("CREATE", _service(ns, "svc-rdp", 3389)),
    ]


def _create(dynamic: DynamicClient, body: dict[str, Any]) -> Any:
    resource = dynamic.resources.get(api_version=body["apiVersion"], kind=body["kind"])
    return resource.create(body=body, namespace=body["metadata"].get("namespace"))


def _server_verdict(dynamic: DynamicClient, case: Case) -> str | None:
    """Send the request; return None when admitted, else the denial's cause message."""
    body = case.body or case.old
    assert body is not None
    resource = dynamic.resources.get(api_version=body["apiVersion"], kind=body["kind"])
    meta = body["metadata"]
    try:
        if case.operation == "CREATE":
            resource.create(body=body, namespace=meta["namespace"])
        elif case.operation == "UPDATE":
            resource.replace(body=body, name=meta["name"], namespace=meta["namespace"])
        else:
            resource.delete(name=meta["name"], namespace=meta["namespace"])
    except ApiException as exc:
        status = json.loads(exc.body)
        causes = (status.get("details") or {}).get("causes") or [{}]
        return str(causes[0].get("message") or status.get("message"))
    return None


def _our_verdict(documents: Documents, case: Case, namespace_labels: dict[str, str]) -> str | None:
    body = case.body or case.old
    assert body is not None
    group, _, version = body["apiVersion"].rpartition("/")
    resource, namespaced = resource_of(body["kind"], True)
    request = Request(
        operation=case.operation,
        group=group,
        version=version,
        kind=body["kind"],
        resource=resource,
        namespaced=namespaced,
        name=body["metadata"]["name"],
        namespace=body["metadata"]["namespace"],
        object=case.body if case.operation != "DELETE" else None,
        old_object=case.old,
        namespace_labels=namespace_labels,
    )
    engine = Engine()
    denials = [
        decision.message
        for policy in documents.policies.values()
        for decision in evaluate_request(engine, documents, policy, request)
    ]
    return denials[0] if denials else None


@pytest.fixture
def oracle_namespace(kube_client: Any) -> Iterator[tuple[str, str, dict[str, str]]]:
    run = uuid.uuid4().hex[:8]
    name = f"oracle-{run}"
    labels = {"tidegate-oracle": run, "kubernetes.io/metadata.name": name}
    core = k8s.CoreV1Api(kube_client)
    core.create_namespace({"metadata": {"name": name, "labels": {"tidegate-oracle": run}}})
    yield run, name, labels
    core.delete_namespace(name)


def test_our_verdicts_and_messages_equal_the_api_servers(
    kube_client: Any, oracle_namespace: tuple[str, str, dict[str, str]]
) -> None:
    run, ns, namespace_labels = oracle_namespace
    dynamic = DynamicClient(kube_client)
    policies = _policies(run, ns)
    for param in _params(ns):
        _create(dynamic, param)
    for document in policies:
        _create(dynamic, document)
    documents = parse_documents(Engine(), [("oracle.yaml", d) for d in (*policies, *_params(ns))])
    probe = Case("CREATE", _deployment(ns, "probe", 99))

    def active() -> bool:
        # Policies and bindings reach the admission plugin asynchronously.
        denial = _server_verdict(dynamic, probe)
        if denial is None:
            dynamic.resources.get(api_version="apps/v1", kind="Deployment").delete(
                name="probe", namespace=ns
            )
        return denial is not None

    try:
        eventually(active, "the policies to take effect", timeout=60)
        compared = []
        for case in _cases(ns):
            if case.old is not None:
                # The object being updated or deleted exists first (it is admitted: checked below).
                assert _server_verdict(dynamic, Case("CREATE", case.old)) is None, case.old
            ours = _our_verdict(documents, case, namespace_labels)
            theirs = _server_verdict(dynamic, case)
            compared.append(
                (case.operation, (case.body or case.old or {})["metadata"]["name"], ours, theirs)
            )
        mismatches = [c for c in compared if c[2] != c[3]]
        assert mismatches == []
        # The cases exercise both verdicts, messages of every kind, and DELETE.
        denied = [c for c in compared if c[3] is not None]
        assert 12 <= len(denied) < len(compared)
        messages = " | ".join(str(c[3]) for c in denied)
        for fragment in (
            "replicas 5 exceed 3 for web-big",
            "deployment names start with web-",
            "memory 2Gi is over 1Gi",
            "URLs must point at example.com",
            "failed expression: request.operation == 'DELETE' || !has(object.data) || "
            "!has(object.data.order)",
            "tag latest has no number; position of x: 1",
            "resulted in error: no such key: missing",
            "ConfigMap keep-me is protected",
            "port forbidden by ports-a",
            "port forbidden by ports-b",
        ):
            assert fragment in messages, fragment
    finally:
        for document in reversed(policies):
            resource = dynamic.resources.get(api_version=ADMISSION, kind=document["kind"])
            resource.delete(name=document["metadata"]["name"])
