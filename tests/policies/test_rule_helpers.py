"""The pure helpers under the built-in rules: image references, workloads, immutable fields."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from policies.rules import api_versions, immutable, workloads
from policies.rules.images import parse_image

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("reference", "name", "tag", "digest", "pinned"),
    [
        ("nginx", "nginx", "", "", False),
        ("nginx:latest", "nginx", "latest", "", False),
        ("nginx:1.27", "nginx", "1.27", "", False),
        ("registry.example.com:5000/team/api", "registry.example.com:5000/team/api", "", "", False),
        (
            "registry.example.com:5000/team/api:2.0",
            "registry.example.com:5000/team/api",
            "2.0",
            "",
            False,
        ),
        (f"ghcr.io/x/api@{DIGEST}", "ghcr.io/x/api", "", DIGEST, True),
        (f"ghcr.io/x/api:1.0@{DIGEST}", "ghcr.io/x/api", "1.0", DIGEST, True),
        ("ghcr.io/x/api@sha256:short", "ghcr.io/x/api", "", "sha256:short", False),
    ],
)
def test_image_references_split_like_the_runtime(
    reference: str, name: str, tag: str, digest: str, pinned: bool
) -> None:
    ref = parse_image(reference)
    assert (ref.name, ref.tag, ref.digest, ref.pinned) == (name, tag, digest, pinned)


def _deployment(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "spec": spec}


def test_containers_are_found_with_their_field_paths() -> None:
    cron = {
        "kind": "CronJob",
        "spec": {
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "initContainers": [{"name": "init", "image": "busybox"}],
                            "containers": [{"name": "run", "image": "app"}, "not-a-mapping"],
                        }
                    }
                }
            }
        },
    }
    found = [(path, c["name"]) for path, c in workloads.containers(cron)]
    prefix = "spec.jobTemplate.spec.template.spec"
    assert found == [(f"{prefix}.initContainers[0]", "init"), (f"{prefix}.containers[0]", "run")]
    assert list(workloads.containers({"kind": "ConfigMap", "data": {}})) == []
    assert list(workloads.containers({"kind": "Deployment", "spec": {"template": "bad"}})) == []


def test_selector_change_of_a_deployment_is_immutable() -> None:
    before = _deployment(selector={"matchLabels": {"app": "a"}}, replicas=1)
    after = _deployment(selector={"matchLabels": {"app": "b"}}, replicas=3)
    found = immutable.violations("apps", "Deployment", before, after)
    assert [v.field for v in found] == ["spec.selector"]
    same = _deployment(selector={"matchLabels": {"app": "a"}}, replicas=3)
    assert immutable.violations("apps", "Deployment", before, same) == []


def test_statefulset_may_change_only_its_mutable_fields() -> None:
    before = {"spec": {"replicas": 1, "serviceName": "db", "template": {"a": 1}}}
    after = {
        "spec": {
            "replicas": 2,
            "serviceName": "db2",
            "template": {"a": 2},
            "podManagementPolicy": "Parallel",
        }
    }
    found = immutable.violations("apps", "StatefulSet", before, after)
    assert [v.field for v in found] == ["spec.podManagementPolicy", "spec.serviceName"]


def test_pvc_may_grow_but_not_shrink_or_change_class() -> None:
    def pvc(size: str, storage_class: str = "fast") -> dict[str, Any]:
        return {
            "spec": {
                "storageClassName": storage_class,
                "resources": {"requests": {"storage": size}},
            }
        }

    assert immutable.violations("", "PersistentVolumeClaim", pvc("10Gi"), pvc("20Gi")) == []
    shrink = immutable.violations("", "PersistentVolumeClaim", pvc("10Gi"), pvc("5000Mi"))
    assert [v.field for v in shrink] == ["spec.resources.requests.storage"]
    moved = immutable.violations("", "PersistentVolumeClaim", pvc("10Gi"), pvc("10Gi", "slow"))
    assert [v.field for v in moved] == ["spec.storageClassName"]


def test_service_cluster_ip_counts_only_when_both_sides_set_it() -> None:
    def svc(**spec: Any) -> dict[str, Any]:
        return {"spec": {"ports": [{"port": 80}], **spec}}

    assert immutable.violations("", "Service", svc(clusterIP="10.0.0.1"), svc()) == []
    changed = immutable.violations(
        "", "Service", svc(clusterIP="10.0.0.1"), svc(clusterIP="10.0.0.2")
    )
    assert [v.field for v in changed] == ["spec.clusterIP"]


def test_immutable_configmap_and_secret_type() -> None:
    before = {"immutable": True, "data": {"a": "1"}}
    assert [
        v.field
        for v in immutable.violations(
            "", "ConfigMap", before, {"immutable": True, "data": {"a": "2"}}
        )
    ] == ["data"]
    assert [
        v.field for v in immutable.violations("", "ConfigMap", before, {"data": {"a": "1"}})
    ] == ["immutable"]
    assert immutable.violations("", "ConfigMap", {"data": {"a": "1"}}, {"data": {"a": "2"}}) == []
    assert [
        v.field
        for v in immutable.violations(
            "", "Secret", {"type": "Opaque"}, {"type": "kubernetes.io/tls"}
        )
    ] == ["type"]


def test_job_template_and_binding_role_ref() -> None:
    job = immutable.violations(
        "batch", "Job", {"spec": {"template": {"x": 1}}}, {"spec": {"template": {"x": 2}}}
    )
    assert [v.field for v in job] == ["spec.template"]
    binding = immutable.violations(
        "rbac.authorization.k8s.io",
        "RoleBinding",
        {"roleRef": {"name": "a"}},
        {"roleRef": {"name": "b"}},
    )
    assert [v.field for v in binding] == ["roleRef"]
    assert immutable.violations("example.com", "Widget", {"a": 1}, {"a": 2}) == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("10Gi", Decimal(10 * 2**30)),
        ("500M", Decimal(500 * 10**6)),
        ("1.5", Decimal("1.5")),
        ("x", None),
        ("1Qi", None),
    ],
)
def test_quantities(text: str, value: Decimal | None) -> None:
    assert immutable.parse_quantity(text) == value


def test_api_version_table_lookups() -> None:
    ingress = api_versions.lookup("extensions/v1beta1", "Ingress")
    assert ingress is not None
    assert (ingress.removed_in, ingress.replacement) == (22, "networking.k8s.io/v1")
    assert api_versions.lookup("networking.k8s.io/v1", "Ingress") is None
    assert api_versions.parse_minor("v1.33.2") == 33
    assert api_versions.parse_minor("1.29") == 29
    with pytest.raises(ValueError, match=r"'2\.1' is not a Kubernetes version"):
        api_versions.parse_minor("2.1")
