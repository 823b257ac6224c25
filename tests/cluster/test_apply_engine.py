"""The apply engine against the real control plane: stages, drift, annotations, force, errors.

Objects go through `reconciler.apply.apply_objects` and the live adapter; the cluster is read
back with the pinned kubectl and the Python client, and edits by other field managers are made
with kubectl, as a person would make them.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.cleartext import Clear, SecretPaths
from core.cluster.live import LiveCluster, service_account_user
from core.cluster.port import FIELD_MANAGER, Invalid
from reconciler.apply import ApplyError, Options, Owner, apply_objects
from reconciler.changeset import Action
from tests.cluster.kube import eventually, kubectl, kubectl_get, unique_name

pytestmark = pytest.mark.cluster

OWNER = Owner("podinfo", "flux-system")
GROUP = "engine.tidegate.dev"


@pytest.fixture
def port(kube_client: Any) -> LiveCluster:
    """The live adapter on the admin client (a fresh request count per test)."""
    return LiveCluster(kube_client)


def _clear(*bodies: dict[str, Any]) -> list[Clear]:
    return [Clear(body, None) for body in bodies]


def _config_map(namespace: str, name: str, data: dict[str, str], **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, **meta},
        "data": data,
    }


def _deployment(namespace: str, name: str, replicas: int = 1) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "registry.test/app:1"}]},
            },
        },
    }


def _service(namespace: str, name: str, cluster_ip: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": {"app": name}, "ports": [{"port": 80}]}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def _job(namespace: str, name: str, image: str, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, **meta},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "run", "image": image}],
                }
            }
        },
    }


def _get(kubeconfig: Path, kind: str, namespace: str, name: str) -> Any:
    return kubectl_get(kubeconfig, kind, name, "-n", namespace)


def _writes(port: LiveCluster) -> int:
    return sum(port.requests[verb] for verb in ("apply", "patch", "delete"))


def test_first_apply_creates_a_namespace_and_its_objects_then_a_second_is_a_no_op(
    port: LiveCluster, admin_kubeconfig: Path, kube_client: Any
) -> None:
    namespace = unique_name("apps")
    objects = _clear(
        _deployment(namespace, "web"),
        _service(namespace, "web"),
        _config_map(namespace, "settings", {"colour": "blue"}),
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "token", "namespace": namespace},
            "stringData": {"token": "not-really-secret"},
        },
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": namespace},
            "value": 1000,
        },
    )

    first = apply_objects(port, objects, owner=OWNER)

    assert first.complete
    assert first.summary().splitlines() == [
        f"Namespace/{namespace} created",
        f"PriorityClass/{namespace} created",
        f"ConfigMap/{namespace}/settings created",
        f"Secret/{namespace}/token created",
        f"Service/{namespace}/web created",
        f"Deployment/{namespace}/web created",
    ]
    assert [e.to_json() for e in first.inventory().entries] == [
        {"id": f"_{namespace}__Namespace", "v": "v1"},
        {"id": f"_{namespace}_scheduling.k8s.io_PriorityClass", "v": "v1"},
        {"id": f"{namespace}_settings__ConfigMap", "v": "v1"},
        {"id": f"{namespace}_token__Secret", "v": "v1"},
        {"id": f"{namespace}_web__Service", "v": "v1"},
        {"id": f"{namespace}_web_apps_Deployment", "v": "v1"},
    ]
    live = _get(admin_kubeconfig, "deployment", namespace, "web")
    assert live["metadata"]["labels"] == {
        "kustomize.toolkit.fluxcd.io/name": "podinfo",
        "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
    }
    assert [
        m["manager"] for m in live["metadata"]["managedFields"] if m["operation"] == "Apply"
    ] == [FIELD_MANAGER]

    # The Deployment's own controller writes its status; only objects nothing else touches keep
    # a resourceVersion to compare, and the Deployment's generation says its spec was not written.
    def versions() -> dict[str, str]:
        return {
            kind: _get(admin_kubeconfig, kind, namespace, name)["metadata"]["resourceVersion"]
            for kind, name in (("service", "web"), ("configmap", "settings"), ("secret", "token"))
        }

    before = versions()

    again = LiveCluster(kube_client)
    second = apply_objects(again, objects, owner=OWNER)

    assert set(second.actions().values()) == {Action.UNCHANGED}
    assert second.summary() == ""
    assert _writes(again) == 0
    assert again.requests["dry-run"] == 6
    # Discovery is read once per group-version (v1, scheduling.k8s.io/v1, apps/v1), then cached.
    assert again.requests["discovery"] == 3
    apply_objects(again, objects, owner=OWNER)
    assert again.requests["discovery"] == 3
    assert versions() == before
    assert _get(admin_kubeconfig, "deployment", namespace, "web")["metadata"]["generation"] == 1


def test_an_edit_by_another_field_manager_is_reverted(
    port: LiveCluster, namespace: str, admin_kubeconfig: Path
) -> None:
    objects = _clear(_deployment(namespace, "web", replicas=1))
    apply_objects(port, objects, owner=OWNER)
    kubectl(admin_kubeconfig, "scale", "deployment/web", "-n", namespace, "--replicas=3")
    kubectl(admin_kubeconfig, "label", "deployment/web", "-n", namespace, "edited=by-hand")
    kubectl(
        admin_kubeconfig,
        "annotate",
        "deployment/web",
        "-n",
        namespace,
        "kubectl.kubernetes.io/last-applied-configuration={}",
    )

    result = apply_objects(port, objects, owner=OWNER)

    assert result.summary() == f"Deployment/{namespace}/web configured"
    live = _get(admin_kubeconfig, "deployment", namespace, "web")
    assert live["spec"]["replicas"] == 1
    assert "edited" not in live["metadata"]["labels"]
    assert "kubectl.kubernetes.io/last-applied-configuration" not in (
        live["metadata"].get("annotations") or {}
    )
    assert not [m for m in live["metadata"]["managedFields"] if m["manager"].startswith("kubectl")]


def test_ssa_merge_keeps_what_another_manager_added(
    port: LiveCluster, namespace: str, admin_kubeconfig: Path
) -> None:
    body = _config_map(
        namespace,
        "shared",
        {"a": "1"},
        annotations={"kustomize.toolkit.fluxcd.io/ssa": "Merge"},
    )
    apply_objects(port, _clear(body), owner=OWNER)
    kubectl(admin_kubeconfig, "label", "configmap/shared", "-n", namespace, "team=ops")

    result = apply_objects(port, _clear(body), owner=OWNER)

    assert result.actions() == {f"ConfigMap/{namespace}/shared": Action.UNCHANGED}
    live = _get(admin_kubeconfig, "configmap", namespace, "shared")
    assert live["metadata"]["labels"]["team"] == "ops"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("kustomize.toolkit.fluxcd.io/ssa", "Ignore"),
        ("kustomize.toolkit.fluxcd.io/ssa", "ignore"),
        ("kustomize.toolkit.fluxcd.io/reconcile", "disabled"),
    ],
)
def test_excluded_objects_are_skipped_whether_marked_in_git_or_in_the_cluster(
    port: LiveCluster, namespace: str, admin_kubeconfig: Path, key: str, value: str
) -> None:
    marked = _config_map(namespace, "in-git", {"a": "1"}, annotations={key: value})
    live_marked = _config_map(namespace, "in-cluster", {"a": "1"})
    apply_objects(port, _clear(live_marked), owner=OWNER)
    kubectl(admin_kubeconfig, "annotate", "configmap/in-cluster", "-n", namespace, f"{key}={value}")

    changed = _config_map(namespace, "in-cluster", {"a": "2"})
    result = apply_objects(port, _clear(marked, changed), owner=OWNER)

    assert result.actions() == {
        f"ConfigMap/{namespace}/in-cluster": Action.SKIPPED,
        f"ConfigMap/{namespace}/in-git": Action.SKIPPED,
    }
    assert {e.ref.name for e in result.inventory().entries} == {"in-git", "in-cluster"}
    assert _get(admin_kubeconfig, "configmap", namespace, "in-cluster")["data"] == {"a": "1"}
    listed = kubectl(admin_kubeconfig, "get", "configmaps", "-n", namespace, "-o", "name")
    assert "configmap/in-git" not in listed


def test_if_not_present_creates_once_and_then_leaves_the_object_alone(
    port: LiveCluster, namespace: str, admin_kubeconfig: Path
) -> None:
    marks = {"annotations": {"kustomize.toolkit.fluxcd.io/ssa": "IfNotPresent"}}
    first = apply_objects(
        port, _clear(_config_map(namespace, "seed", {"v": "1"}, **marks)), owner=OWNER
    )
    second = apply_objects(
        port, _clear(_config_map(namespace, "seed", {"v": "2"}, **marks)), owner=OWNER
    )

    assert first.actions() == {f"ConfigMap/{namespace}/seed": Action.CREATED}
    assert second.actions() == {f"ConfigMap/{namespace}/seed": Action.SKIPPED}
    assert _get(admin_kubeconfig, "configmap", namespace, "seed")["data"] == {"v": "1"}


def test_an_immutable_change_fails_naming_the_field_unless_forced_by_annotation(
    port: LiveCluster, namespace: str, admin_kubeconfig: Path
) -> None:
    apply_objects(port, _clear(_job(namespace, "migrate", "registry.test/db:1")), owner=OWNER)
    uid = _get(admin_kubeconfig, "job", namespace, "migrate")["metadata"]["uid"]

    with pytest.raises(ApplyError) as refused:
        apply_objects(port, _clear(_job(namespace, "migrate", "registry.test/db:2")), owner=OWNER)

    assert str(refused.value).startswith(f"Job/{namespace}/migrate dry-run failed (Invalid): ")
    assert "spec.template" in refused.value.fields
    assert "immutable" in str(refused.value)
    assert _get(admin_kubeconfig, "job", namespace, "migrate")["metadata"]["uid"] == uid

    forced = _job(
        namespace,
        "migrate",
        "registry.test/db:2",
        annotations={"kustomize.toolkit.fluxcd.io/force": "Enabled"},
    )
    result = apply_objects(port, _clear(forced), owner=OWNER)

    assert result.actions() == {f"Job/{namespace}/migrate": Action.CREATED}
    live = _get(admin_kubeconfig, "job", namespace, "migrate")
    assert live["metadata"]["uid"] != uid
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.test/db:2"


def test_spec_force_recreates_a_service_whose_cluster_ip_changed(
    port: LiveCluster, namespace: str, admin_kubeconfig: Path
) -> None:
    apply_objects(port, _clear(_service(namespace, "db", "10.0.0.201")), owner=OWNER)
    uid = _get(admin_kubeconfig, "service", namespace, "db")["metadata"]["uid"]

    result = apply_objects(
        port,
        _clear(_service(namespace, "db", "10.0.0.202")),
        owner=OWNER,
        options=Options(force=True),
    )

    assert result.actions() == {f"Service/{namespace}/db": Action.CREATED}
    live = _get(admin_kubeconfig, "service", namespace, "db")
    assert live["metadata"]["uid"] != uid
    assert live["spec"]["clusterIP"] == "10.0.0.202"


def test_force_does_not_recreate_an_object_that_is_simply_invalid(
    port: LiveCluster, namespace: str, admin_kubeconfig: Path
) -> None:
    apply_objects(port, _clear(_deployment(namespace, "web")), owner=OWNER)
    uid = _get(admin_kubeconfig, "deployment", namespace, "web")["metadata"]["uid"]

    with pytest.raises(ApplyError) as refused:
        apply_objects(
            port,
            _clear(_deployment(namespace, "web", replicas=-1)),
            owner=OWNER,
            options=Options(force=True),
        )

    assert refused.value.fields == ("spec.replicas",)
    assert _get(admin_kubeconfig, "deployment", namespace, "web")["metadata"]["uid"] == uid


def test_an_invalid_object_stops_its_stage_before_anything_of_it_is_written(
    port: LiveCluster, namespace: str, admin_kubeconfig: Path
) -> None:
    objects = _clear(
        _config_map(namespace, "fine", {"a": "1"}),
        _deployment(namespace, "broken", replicas=-1),
    )

    with pytest.raises(ApplyError) as refused:
        apply_objects(port, objects, owner=OWNER)

    error = refused.value
    assert str(error).startswith(f"Deployment/{namespace}/broken dry-run failed (Invalid): ")
    assert "spec.replicas" in str(error)
    assert error.fields == ("spec.replicas",)
    assert error.condition_reason == "ReconciliationFailed"
    assert not error.change_set.complete
    listed = kubectl(admin_kubeconfig, "get", "configmaps", "-n", namespace, "-o", "name")
    assert "configmap/fine" not in listed


def test_a_custom_resource_is_applied_after_its_definition_in_the_same_set(
    port: LiveCluster, admin_kubeconfig: Path, namespace: str
) -> None:
    plural = unique_name("gadgets").replace("-", "")
    kind = "G" + plural[1:]
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "plural": plural,
                "singular": plural,
                "listKind": kind + "List",
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
    custom = {
        "apiVersion": f"{GROUP}/v1",
        "kind": kind,
        "metadata": {"name": "one", "namespace": namespace},
        "spec": {"size": 3},
    }

    result = apply_objects(port, _clear(custom, crd), owner=OWNER)

    assert result.summary().splitlines() == [
        f"CustomResourceDefinition/{plural}.{GROUP} created",
        f"{kind}/{namespace}/one created",
    ]
    live = kubectl_get(admin_kubeconfig, f"{plural}.{GROUP}", "one", "-n", namespace)
    assert live["spec"] == {"size": 3}
    again = apply_objects(port, _clear(custom, crd), owner=OWNER)
    assert set(again.actions().values()) == {Action.UNCHANGED}
    kubectl(admin_kubeconfig, "delete", "crd", f"{plural}.{GROUP}", "--wait=false")


def test_a_namespaced_object_without_a_namespace_is_refused_by_name(
    port: LiveCluster,
) -> None:
    body = _config_map("", "nowhere", {"a": "1"})
    del body["metadata"]["namespace"]

    with pytest.raises(ApplyError) as refused:
        apply_objects(port, _clear(body), owner=OWNER)

    assert "ConfigMap/nowhere" in str(refused.value)
    assert "namespace not specified" in str(refused.value)


def test_an_unknown_kind_is_refused_naming_kind_and_version(
    port: LiveCluster, namespace: str
) -> None:
    body = {
        "apiVersion": f"{GROUP}/v9",
        "kind": "Nothing",
        "metadata": {"name": "x", "namespace": namespace},
    }

    with pytest.raises(ApplyError) as refused:
        apply_objects(port, _clear(body), owner=OWNER)

    assert str(refused.value) == (
        f"Nothing/{namespace}/x dry-run failed (NotFound): "
        f'no matches for kind "Nothing" in version "{GROUP}/v9"'
    )


@pytest.fixture
def restricted(port: LiveCluster, namespace: str, admin_kubeconfig: Path) -> Iterator[LiveCluster]:
    """The cluster as a ServiceAccount that may only read ConfigMaps in `namespace` sees it."""
    kubectl(admin_kubeconfig, "create", "serviceaccount", "deployer", "-n", namespace)
    kubectl(
        admin_kubeconfig,
        "create",
        "role",
        "read-config",
        "-n",
        namespace,
        "--verb=get,list",
        "--resource=configmaps",
    )
    kubectl(
        admin_kubeconfig,
        "create",
        "rolebinding",
        "deployer-reads",
        "-n",
        namespace,
        "--role=read-config",
        f"--serviceaccount={namespace}:deployer",
    )
    view = port.impersonating(service_account_user(namespace, "deployer"))
    try:
        yield view
    finally:
        view.close()


def test_forbidden_through_an_impersonated_service_account_is_access_denied(
    port: LiveCluster, restricted: LiveCluster, namespace: str, admin_kubeconfig: Path
) -> None:
    with pytest.raises(ApplyError) as refused:
        apply_objects(restricted, _clear(_config_map(namespace, "app", {"a": "1"})), owner=OWNER)

    error = refused.value
    assert restricted is port.impersonating(service_account_user(namespace, "deployer"))
    assert error.forbidden
    assert error.condition_reason == "AccessDenied"
    assert str(error).startswith(f"ConfigMap/{namespace}/app dry-run failed (Forbidden): ")
    assert f"system:serviceaccount:{namespace}:deployer" in str(error)
    listed = kubectl(admin_kubeconfig, "get", "configmaps", "-n", namespace, "-o", "name")
    assert "configmap/app" not in listed


SECRET_VALUE = "hunter2-very-secret"
FIRST_VALUE = "first-secret-value"


def test_secret_values_are_absent_from_every_error_and_log(
    port: LiveCluster, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # An immutable Secret whose data changes: the apiserver refuses, naming the field.
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds", "namespace": namespace},
        "immutable": True,
        "stringData": {"password": FIRST_VALUE},
    }
    apply_objects(port, _clear(secret), owner=OWNER)
    changed = {**secret, "stringData": {"password": SECRET_VALUE}}
    # A label made from a Secret value (postBuild substituteFrom) that the apiserver quotes back.
    leaky = _config_map(namespace, "leaky", {"a": "1"}, labels={"token": SECRET_VALUE + "!"})
    leaky_clear = Clear(
        leaky, None, SecretPaths(values=frozenset({("metadata", "labels", "token")}))
    )

    messages = []
    for objects in ([Clear(changed, None)], [leaky_clear]):
        with pytest.raises(ApplyError) as refused:
            apply_objects(port, objects, owner=OWNER)
        messages.append(f"{refused.value} {refused.value!r} {refused.value.args}")

    assert "immutable" in messages[0]
    assert "metadata.labels" in messages[1]
    for text in [*messages, caplog.text]:
        for value in (SECRET_VALUE, FIRST_VALUE):
            assert value not in text
            assert base64.b64encode(value.encode()).decode() not in text


def test_a_steady_apply_reads_owned_objects_with_one_list_per_kind(
    port: LiveCluster, namespace: str, kube_client: Any, admin_kubeconfig: Path
) -> None:
    objects = _clear(*(_config_map(namespace, f"cm-{i}", {"i": str(i)}) for i in range(3)))
    first = LiveCluster(kube_client)
    apply_objects(first, objects, owner=OWNER)
    # New objects: the dry run says they do not exist, so none is read on its own.
    assert {v: first.requests[v] for v in ("list", "get", "dry-run", "apply")} == {
        "list": 1,
        "get": 0,
        "dry-run": 3,
        "apply": 3,
    }
    kubectl(
        admin_kubeconfig,
        "label",
        "configmap/cm-2",
        "-n",
        namespace,
        "kustomize.toolkit.fluxcd.io/name-",
    )

    steady = LiveCluster(kube_client)
    result = apply_objects(steady, objects, owner=OWNER)

    assert result.actions() == {
        f"ConfigMap/{namespace}/cm-0": Action.UNCHANGED,
        f"ConfigMap/{namespace}/cm-1": Action.UNCHANGED,
        f"ConfigMap/{namespace}/cm-2": Action.CONFIGURED,
    }
    # cm-2 lost its label, so the list misses it and it is read on its own (then relabelled).
    assert {v: steady.requests[v] for v in ("list", "get", "dry-run", "apply")} == {
        "list": 1,
        "get": 1,
        "dry-run": 3,
        "apply": 1,
    }


def test_a_first_apply_of_several_kinds_sends_one_dry_run_and_one_write_per_object(
    port: LiveCluster, namespace: str, admin_kubeconfig: Path
) -> None:
    objects = _clear(
        _deployment(namespace, "web"),
        *(_config_map(namespace, f"cm-{i}", {"i": str(i)}) for i in range(6)),
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "web", "namespace": namespace},
        },
    )

    result = apply_objects(port, objects, owner=OWNER)

    # Flux's order in the change set (and so in the inventory and the event), whatever order
    # the concurrent writes of one kind ended in.
    assert [str(e) for e in result.entries] == [
        f"ServiceAccount/{namespace}/web created",
        *(f"ConfigMap/{namespace}/cm-{i} created" for i in range(6)),
        f"Deployment/{namespace}/web created",
    ]
    assert {(e.ref.kind, e.ref.name) for e in result.inventory().entries} == {
        ("ServiceAccount", "web"),
        ("Deployment", "web"),
        *(("ConfigMap", f"cm-{i}") for i in range(6)),
    }
    assert {v: port.requests[v] for v in ("get", "dry-run", "apply", "patch")} == {
        "get": 0,
        "dry-run": 8,
        "apply": 8,
        "patch": 0,
    }
    names = kubectl(admin_kubeconfig, "get", "configmaps", "-n", namespace, "-o", "name")
    assert {f"configmap/cm-{i}" for i in range(6)} <= set(names.split())


def test_writes_refused_by_admission_are_each_named_and_no_later_kind_is_written(
    port: LiveCluster, namespace: str, kube_client: Any, admin_kubeconfig: Path
) -> None:
    # A policy that lets dry runs through and refuses the real creation of `deny-*` ConfigMaps:
    # the stage's dry run passes, and its writes fail.
    run = unique_name("deny")
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": run},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["configmaps"],
                    }
                ]
            },
            "validations": [
                {
                    "expression": "request.dryRun == true || "
                    "!object.metadata.name.startsWith('deny-')",
                    "message": "deny-* may not be created",
                }
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": run},
        "spec": {
            "policyName": run,
            "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
            },
        },
    }
    admin = LiveCluster(kube_client)
    admin.apply(policy)
    admin.apply(binding)
    try:

        def refused() -> bool:
            # Policies reach the admission plugin asynchronously.
            try:
                admin.apply(_config_map(namespace, "deny-probe", {}))
            except Invalid:
                return True
            admin.delete("v1", "ConfigMap", namespace, "deny-probe")
            return False

        eventually(refused, "the policy to take effect", timeout=60)
        objects = _clear(
            _config_map(namespace, "cm-a", {"a": "1"}),
            _config_map(namespace, "deny-1", {"a": "1"}),
            _config_map(namespace, "deny-2", {"a": "1"}),
            _deployment(namespace, "web"),
        )

        with pytest.raises(ApplyError) as raised:
            apply_objects(port, objects, owner=OWNER)

        lines = str(raised.value).splitlines()
        assert lines, "the error says nothing"
        for line in lines:
            assert line.startswith(
                (
                    f"ConfigMap/{namespace}/deny-1 apply failed (Invalid): ",
                    f"ConfigMap/{namespace}/deny-2 apply failed (Invalid): ",
                )
            ), line
            assert "deny-* may not be created" in line
        assert raised.value.ref is not None
        assert raised.value.ref.name in ("deny-1", "deny-2")
        # Every dry run passed; the Deployment, a later kind, was never written.
        assert port.requests["dry-run"] == 4
        created = {e.ref.name for e in raised.value.change_set.entries}
        assert created <= {"cm-a"}
        listed = kubectl(admin_kubeconfig, "get", "configmaps", "-n", namespace, "-o", "name")
        assert {n for n in listed.split() if n != "configmap/kube-root-ca.crt"} == {
            f"configmap/{name}" for name in created
        }
        deployments = kubectl(admin_kubeconfig, "get", "deployments", "-n", namespace, "-o", "name")
        assert deployments.strip() == ""
    finally:
        admin.delete("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding", "", run)
        admin.delete("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy", "", run)
