"""The facts under GP012, GP013 and GP014, held against a real Kubernetes API server (1.33).

- GP012: every API version the table says is removed at or before the server's release is not
  served by it, and every replacement it names is.
- GP013: for valid and invalid objects of built-in kinds and of a custom resource, the server's
  verdict on a server-side dry-run apply equals ours (`schemas.problems` non-empty or empty).
- GP014: for pairs of base and head objects, the API server's verdict on a server-side dry-run
  apply of the head over the base (rejected or accepted) equals ours (`immutable.violations`
  non-empty or empty). Claims here are never bound (no volume provisioner), so the size-growth
  case of a bound claim is not held against the server.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from core.model import group_of
from policies.rules import api_versions, immutable, schemas
from tests.cluster.kube import apply, eventually, unique_name

pytestmark = pytest.mark.cluster


def test_removed_api_versions_are_not_served_and_replacements_are(
    kube_client: Any, dynamic_client: Any
) -> None:
    served_minor = api_versions.parse_minor(k8s.VersionApi(kube_client).get_code().git_version)
    checked = 0
    for entry in api_versions.entries():
        if entry.removed_in is None or entry.removed_in > served_minor:
            continue
        with pytest.raises(ResourceNotFoundError):
            dynamic_client.resources.get(api_version=entry.api_version, kind=entry.kind)
        if "/" in entry.replacement and " " not in entry.replacement:
            assert dynamic_client.resources.get(api_version=entry.replacement, kind=entry.kind)
        checked += 1
    assert checked == len(api_versions.entries())


@pytest.fixture
def namespace(kube_client: Any) -> Iterator[str]:
    name = unique_name("imm")
    core = k8s.CoreV1Api(kube_client)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def _pod_template(app: str, restart: str = "Always") -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": app}},
        "spec": {
            "restartPolicy": restart,
            "containers": [{"name": "c", "image": "registry.example.com/app:1.0.0"}],
        },
    }


def _with(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    node = changed
    *parents, last = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return changed


def _deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "api"}},
            "template": _pod_template("api"),
        },
    }


def _statefulset() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 1,
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": _pod_template("db"),
        },
    }


def _job() -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "once"},
        "spec": {"suspend": True, "template": _pod_template("once", "Never")},
    }


def _claim() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "fast",
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }


def _configmap(immutable_flag: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings"},
        "data": {"mode": "fast"},
    }
    if immutable_flag:
        body["immutable"] = True
    return body


def _secret() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds"},
        "type": "Opaque",
        "data": {"token": "dG9rZW4="},
    }


def _binding() -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "readers"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "Group", "name": "readers", "apiGroup": "rbac.authorization.k8s.io"}],
    }


PAIRS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "deployment selector",
        _deployment(),
        _with(
            _with(_deployment(), "spec.selector", {"matchLabels": {"app": "web"}}),
            "spec.template",
            _pod_template("web"),
        ),
    ),
    ("deployment replicas", _deployment(), _with(_deployment(), "spec.replicas", 3)),
    ("statefulset serviceName", _statefulset(), _with(_statefulset(), "spec.serviceName", "db2")),
    (
        "statefulset podManagementPolicy",
        _statefulset(),
        _with(_statefulset(), "spec.podManagementPolicy", "Parallel"),
    ),
    ("statefulset replicas", _statefulset(), _with(_statefulset(), "spec.replicas", 2)),
    (
        "statefulset revisionHistoryLimit",
        _statefulset(),
        _with(_statefulset(), "spec.revisionHistoryLimit", 3),
    ),
    (
        "job template",
        _job(),
        _with(_job(), "spec.template.spec.containers", [{"name": "c", "image": "busybox:1.37"}]),
    ),
    ("claim storage class", _claim(), _with(_claim(), "spec.storageClassName", "slow")),
    ("claim shrinks", _claim(), _with(_claim(), "spec.resources.requests.storage", "500Mi")),
    (
        "mutable configmap data",
        _configmap(False),
        _with(_configmap(False), "data", {"mode": "slow"}),
    ),
    (
        "immutable configmap data",
        _configmap(True),
        _with(_configmap(True), "data", {"mode": "slow"}),
    ),
    ("immutable configmap unset", _configmap(True), _with(_configmap(True), "immutable", False)),
    ("secret type", _secret(), _with(_secret(), "type", "example.com/custom")),
    (
        "binding roleRef",
        _binding(),
        _with(_binding(), "roleRef.name", "edit"),
    ),
]


def _server_rejects(dynamic_client: Any, body: dict[str, Any]) -> str:
    resource = dynamic_client.resources.get(api_version=body["apiVersion"], kind=body["kind"])
    try:
        dynamic_client.server_side_apply(
            resource,
            body=body,
            namespace=body["metadata"]["namespace"],
            field_manager="tidegate",
            force_conflicts=True,
            dry_run="All",
        )
    except ApiException as exc:
        # 422 Invalid is how the API server refuses a change to an immutable field.
        body = exc.body.decode() if isinstance(exc.body, bytes) else str(exc.body)
        return f"{exc.status} {body}"
    return ""


def _fields(rejection: str) -> set[str]:
    """The field paths the API server's Status names as causes."""
    status = json.loads(rejection.partition(" ")[2])
    return {str(cause.get("field", "")) for cause in status.get("details", {}).get("causes", [])}


@pytest.mark.parametrize(("case", "before", "after"), PAIRS, ids=[p[0] for p in PAIRS])
def test_immutable_field_verdicts_match_the_api_server(
    dynamic_client: Any, namespace: str, case: str, before: dict[str, Any], after: dict[str, Any]
) -> None:
    before = _with(before, "metadata.namespace", namespace)
    after = _with(after, "metadata.namespace", namespace)
    apply(dynamic_client, before)

    rejection = _server_rejects(dynamic_client, after)
    ours = immutable.violations(group_of(before["apiVersion"]), before["kind"], before, after)

    assert bool(rejection) == bool(ours), f"{case}: server {rejection!r}, ours {ours}"
    assert not rejection or rejection.startswith("422 "), rejection
    if before["kind"] == "StatefulSet" and rejection:
        # The server names `spec` and lists the fields an update may change: the same list.
        allowed = sorted(immutable.STATEFULSET_MUTABLE)
        assert [name for name in allowed if f"'{name}'" not in rejection] == [], rejection
        return
    # The server names our field, or a parent of it (`spec` for a claim's spec).
    fields = _fields(rejection) if rejection else set()
    for violation in ours:
        parts = violation.field.split(".")
        prefixes = {".".join(parts[:n]) for n in range(1, len(parts) + 1)}
        assert any(f.split("[")[0] in prefixes for f in fields), (case, violation, rejection)


def test_service_cluster_ip_verdict_matches_the_api_server(
    dynamic_client: Any, namespace: str
) -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "api", "namespace": namespace},
        "spec": {"ports": [{"port": 80}], "selector": {"app": "api"}},
    }
    live = apply(dynamic_client, service).to_dict()
    allocated = live["spec"]["clusterIP"]
    before = _with(service, "spec.clusterIP", allocated)
    octets = allocated.split(".")
    octets[-1] = str((int(octets[-1]) + 1) % 250 + 2)
    after = _with(service, "spec.clusterIP", ".".join(octets))

    rejection = _server_rejects(dynamic_client, after)
    ours = immutable.violations("", "Service", before, after)

    assert rejection.startswith("422 ")
    assert [v.field for v in ours] == ["spec.clusterIP"]
    assert _server_rejects(dynamic_client, before) == ""
    assert immutable.violations("", "Service", before, service) == []


WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.schema.example.com"},
    "spec": {
        "group": "schema.example.com",
        "names": {"kind": "Gadget", "plural": "gadgets", "singular": "gadget"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1},
                                    "port": {"x-kubernetes-int-or-string": True},
                                    "note": {"type": "string", "nullable": True},
                                    "mode": {"type": "string", "enum": ["fast", "slow"]},
                                    "extra": {
                                        "type": "object",
                                        "x-kubernetes-preserve-unknown-fields": True,
                                    },
                                },
                            }
                        },
                    }
                },
            }
        ],
    },
}

SCHEMA_OBJECTS: list[tuple[str, dict[str, Any]]] = [
    ("valid deployment", _deployment()),
    ("replicas of the wrong type", _with(_deployment(), "spec.replicas", "three")),
    (
        "unknown container field",
        _with(
            _deployment(),
            "spec.template.spec.containers",
            [{"name": "c", "image": "registry.example.com/app:1.0.0", "port": 80}],
        ),
    ),
    (
        "missing required selector",
        {k: v for k, v in _deployment().items() if k != "spec"}
        | {"spec": {"template": _pod_template("api")}},
    ),
    ("configmap value not a string", _with(_configmap(False), "data", {"mode": 1.5})),
    ("valid binding", _binding()),
    (
        "valid gadget",
        {
            "apiVersion": "schema.example.com/v1",
            "kind": "Gadget",
            "metadata": {"name": "g"},
            "spec": {"size": 2, "port": "http", "note": None, "extra": {"any": [1]}},
        },
    ),
    (
        "gadget of the wrong type",
        {
            "apiVersion": "schema.example.com/v1",
            "kind": "Gadget",
            "metadata": {"name": "g"},
            "spec": {"size": "big"},
        },
    ),
    (
        "gadget missing its size",
        {
            "apiVersion": "schema.example.com/v1",
            "kind": "Gadget",
            "metadata": {"name": "g"},
            "spec": {"port": 80},
        },
    ),
    (
        "gadget outside its enum",
        {
            "apiVersion": "schema.example.com/v1",
            "kind": "Gadget",
            "metadata": {"name": "g"},
            "spec": {"size": 1, "mode": "turbo"},
        },
    ),
    (
        "gadget with an unknown field",
        {
            "apiVersion": "schema.example.com/v1",
            "kind": "Gadget",
            "metadata": {"name": "g"},
            "spec": {"size": 1, "colour": "red"},
        },
    ),
]


@pytest.fixture(scope="module")
def gadget_crd(dynamic_client: Any) -> dict[str, Any]:
    apply(dynamic_client, WIDGET_CRD)
    resource = dynamic_client.resources.get(
        api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition"
    )

    def established() -> bool:
        live = resource.get(name=WIDGET_CRD["metadata"]["name"]).to_dict()
        conditions = live.get("status", {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    eventually(established, "the Gadget CRD to be established")
    dynamic_client.resources.invalidate_cache()
    return WIDGET_CRD


@pytest.mark.parametrize(("case", "body"), SCHEMA_OBJECTS, ids=[c for c, _ in SCHEMA_OBJECTS])
def test_schema_verdicts_match_the_api_server(
    dynamic_client: Any, namespace: str, gadget_crd: dict[str, Any], case: str, body: dict[str, Any]
) -> None:
    body = _with(body, "metadata.namespace", namespace)
    rejection = _server_rejects(dynamic_client, body)

    if body["kind"] == "Gadget":
        validator = schemas.crd_validator(gadget_crd, "v1")
    else:
        validator = schemas.builtin_validator(33, body["apiVersion"], body["kind"])
    assert validator is not None
    ours = schemas.problems(validator, body)

    assert bool(rejection) == bool(ours), f"{case}: server {rejection!r}, ours {ours}"
