"""The built-in rules on real repositories, end to end through the real preview pipeline.

Each test builds a git repository (base commit), commits the incident a rule exists for and runs
`tidegate preview --format json` on it: both revisions rendered with the pinned kustomize and
helm, planned, and the whole built-in catalog evaluated with the base revision's
`.tidegate.yaml`. It checks the rule's finding in the report (rule, severity, object, file where
the object comes from) and the exit code (3 when the gate fails). The fail/pass pairs of every
rule live in the fixture cases (`tests/policies/cases/`); these tests prove the rules see what
the real renderer produces: kustomize output, Flux ownership of nested units, moves between
units, helm output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from policies.config import CONFIG_FILE
from tests.preview.conftest import Preview as RunPreview
from tests.preview.gitrepo import Files, commit, configmap, flux_cluster, kustomization, new_repo

PROD = "clusters/production"


@dataclass(frozen=True)
class Found:
    """One finding as `tidegate preview --format json` reports it."""

    rule: str
    severity: str
    ref: str
    file: str | None
    message: str
    unit: str
    approval_required: bool
    line: int | None


class Gate:
    """Runs `tidegate preview` (JSON) and returns the findings and the exit code."""

    def __init__(self, preview: RunPreview) -> None:
        self.preview = preview
        self.code = -1

    def __call__(self, repo: Path, base: str, head: str) -> list[Found]:
        outcome = self.preview(repo, base, head)
        self.code = outcome.code
        found = []
        for item in outcome.data["findings"]:
            kind, namespace, name = item.get("kind"), item.get("namespace"), item.get("name")
            ref = "/".join(p for p in (kind, namespace, name) if p) if kind else ""
            found.append(
                Found(
                    rule=item["rule"],
                    severity=item["severity"],
                    ref=ref,
                    file=item.get("file"),
                    message=item["message"],
                    unit=item.get("unit") or "",
                    approval_required=bool(item.get("approvalRequired")),
                    line=item.get("line"),
                )
            )
        return found


def _found(findings: list[Found], rule: str) -> list[tuple[str, str, str | None]]:
    return sorted((f.severity, f.ref, f.file) for f in findings if f.rule == rule)


def _fleet(tmp_path: Path, extra: Files | None = None) -> tuple[Path, str]:
    """A cluster with infrastructure and apps Kustomizations, apps depending on infrastructure."""
    return new_repo(
        tmp_path / "repo",
        {
            **flux_cluster(),
            f"{PROD}/infra.yaml": kustomization("infra", "./infra"),
            f"{PROD}/apps.yaml": kustomization(
                "apps", "./apps", extra="dependsOn: [{name: infra}]"
            ),
            "infra/namespace.yaml": """
                apiVersion: v1
                kind: Namespace
                metadata: {name: web}
            """,
            "infra/quota.yaml": configmap("quota", "kube-system", cpu="8"),
            "apps/settings.yaml": configmap("settings", "web", mode="fast"),
            **(extra or {}),
        },
    )


@pytest.fixture
def gate(preview: RunPreview) -> Gate:
    return Gate(preview)


def test_pruning_stateful_objects_and_a_namespace_needs_approval(
    tmp_path: Path, gate: Gate
) -> None:
    repo, base = _fleet(
        tmp_path,
        {
            "apps/db.yaml": """
                apiVersion: v1
                kind: PersistentVolumeClaim
                metadata: {name: data, namespace: web}
                spec:
                  accessModes: [ReadWriteOnce]
                  resources: {requests: {storage: 1Gi}}
                ---
                apiVersion: apps/v1
                kind: StatefulSet
                metadata: {name: db, namespace: web}
                spec:
                  serviceName: db
                  selector: {matchLabels: {app: db}}
                  template:
                    metadata: {labels: {app: db}}
                    spec: {containers: [{name: db, image: "postgres:17.2"}]}
            """,
            "infra/crd.yaml": """
                apiVersion: apiextensions.k8s.io/v1
                kind: CustomResourceDefinition
                metadata: {name: widgets.example.com}
                spec:
                  group: example.com
                  names: {kind: Widget, plural: widgets}
                  scope: Namespaced
                  versions:
                  - name: v1
                    served: true
                    storage: true
                    schema: {openAPIV3Schema: {type: object}}
            """,
        },
    )
    head = commit(
        repo,
        {
            "apps/db.yaml": None,
            "apps/settings.yaml": configmap("settings", "web", mode="slow"),
            "infra/namespace.yaml": None,
            "infra/crd.yaml": None,
        },
        "drop the database",
    )

    findings = gate(repo, base, head)

    assert _found(findings, "GP001") == [
        ("error", "PersistentVolumeClaim/web/data", "apps/db.yaml"),
        ("error", "StatefulSet/web/db", "apps/db.yaml"),
    ]
    assert all(f.approval_required for f in findings if f.rule == "GP001")
    # Each finding points at the line where its object starts in the file.
    assert sorted((f.ref, f.line) for f in findings if f.rule == "GP001") == [
        ("PersistentVolumeClaim/web/data", 1),
        ("StatefulSet/web/db", 8),
    ]
    assert gate.code == 3  # unapproved blocking findings fail the gate
    assert _found(findings, "GP002") == [
        ("error", "CustomResourceDefinition/widgets.example.com", "infra/crd.yaml")
    ]
    assert _found(findings, "GP026") == [("error", "Namespace/web", "infra/namespace.yaml")]
    namespace = next(f for f in findings if f.rule == "GP026")
    assert "the 2 object(s) this change prunes there" in namespace.message
    assert "1 object(s) this change creates, updates or moves there" in namespace.message


def test_moving_and_removing_units(tmp_path: Path, gate: Gate) -> None:
    """GP003 (a claim moves from apps to a new unit) and GP004 (a removed unit cascades)."""
    repo, base = _fleet(
        tmp_path,
        {
            "apps/claim.yaml": """
                apiVersion: v1
                kind: PersistentVolumeClaim
                metadata: {name: data, namespace: web}
                spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
            """,
            f"{PROD}/legacy.yaml": kustomization("legacy", "./legacy"),
            "legacy/kustomization.yaml": "resources: [old.yaml, nested.yaml]\n",
            "legacy/old.yaml": configmap("old", "web", a="1"),
            "legacy/nested.yaml": kustomization("legacy-nested", "./legacy-nested"),
            "legacy-nested/cm.yaml": configmap("nested", "web", b="1"),
        },
    )
    head = commit(
        repo,
        {
            "apps/claim.yaml": None,
            f"{PROD}/data.yaml": kustomization("data", "./data"),
            "data/claim.yaml": """
                apiVersion: v1
                kind: PersistentVolumeClaim
                metadata: {name: data, namespace: web}
                spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
            """,
            f"{PROD}/legacy.yaml": None,
        },
        "move the claim to its own unit and drop legacy",
    )

    findings = gate(repo, base, head)

    assert _found(findings, "GP003") == [
        ("error", "PersistentVolumeClaim/web/data", "data/claim.yaml")
    ]
    removed = [f for f in findings if f.rule == "GP004"]
    assert [(f.ref, f.file) for f in removed] == [
        ("Kustomization/flux-system/legacy", f"{PROD}/legacy.yaml")
    ]
    assert "garbage-collects the 3 object(s)" in removed[0].message
    assert "Kustomization/flux-system/legacy-nested" in removed[0].message


def test_graph_problems_duplicates_and_missing_paths(tmp_path: Path, gate: Gate) -> None:
    """GP005 (a namespace copied into apps), GP006 (a dependency on an undeclared unit), GP007."""
    repo, base = _fleet(
        tmp_path,
        {f"{PROD}/web.yaml": kustomization("web", "./web"), "web/a.yaml": configmap("a", "web")},
    )
    head = commit(
        repo,
        {
            "apps/namespace.yaml": """
                apiVersion: v1
                kind: Namespace
                metadata: {name: web}
            """,
            f"{PROD}/apps.yaml": kustomization(
                "apps", "./apps", extra="dependsOn: [{name: infra}, {name: databases}]"
            ),
            f"{PROD}/web.yaml": kustomization("web", "./frontend"),
        },
        "copy the namespace, depend on databases, point web at a missing path",
    )

    findings = gate(repo, base, head)

    assert _found(findings, "GP005") == [("error", "Namespace/web", "apps/namespace.yaml")]
    graph = [f for f in findings if f.rule == "GP006"]
    assert [(f.ref, f.file) for f in graph] == [
        ("Kustomization/flux-system/apps", f"{PROD}/apps.yaml")
    ]
    assert (
        "depends on Kustomization/flux-system/databases, which is not declared" in graph[0].message
    )
    missing = [f for f in findings if f.rule == "GP007"]
    assert [(f.unit.rsplit("/", 1)[-1], f.file) for f in missing] == [("web", f"{PROD}/web.yaml")]
    assert "./frontend" in missing[0].message


def test_workload_rules_on_rendered_objects(tmp_path: Path, gate: Gate) -> None:
    """GP008, GP009, GP010, GP012, GP013 and GP014 on kustomize output."""
    deployment = """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {{name: api, namespace: web}}
        spec:
          replicas: {replicas}
          selector: {{matchLabels: {{app: {app}}}}}
          template:
            metadata: {{labels: {{app: {app}}}}}
            spec:
              containers: [{{name: api, image: "{image}"}}]
    """
    repo, base = _fleet(
        tmp_path,
        {
            "apps/api.yaml": deployment.format(replicas=2, app="api", image="ghcr.io/x/api:1.0.0"),
            "apps/hpa.yaml": """
                apiVersion: autoscaling/v2
                kind: HorizontalPodAutoscaler
                metadata: {name: api, namespace: web}
                spec:
                  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: api}
                  minReplicas: 2
                  maxReplicas: 10
            """,
        },
    )
    head = commit(
        repo,
        {
            "apps/api.yaml": deployment.format(replicas=4, app="web-api", image="ghcr.io/x/api"),
            "apps/hpa.yaml": """
                apiVersion: autoscaling/v2
                kind: HorizontalPodAutoscaler
                metadata: {name: api, namespace: web}
                spec:
                  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: api}
                  minReplicas: 3
                  maxReplicas: 10
            """,
            "apps/settings.yaml": configmap("settings", "web", cluster="${cluster_name}"),
            "apps/pdb.yaml": """
                apiVersion: policy/v1beta1
                kind: PodDisruptionBudget
                metadata: {name: api, namespace: web}
                spec: {minAvailable: 1}
            """,
            "apps/service.yaml": """
                apiVersion: v1
                kind: Service
                metadata: {name: api, namespace: web}
                spec:
                  selector: {app: web-api}
                  ports: [{port: 80, targetPort: http, protocol: TCP, nodePort: high}]
            """,
        },
        "scale, rename the selector, drop the tag, add a variable and an old PDB",
    )

    findings = gate(repo, base, head)

    assert _found(findings, "GP008") == [("error", "ConfigMap/web/settings", "apps/settings.yaml")]
    assert _found(findings, "GP009") == [("error", "Deployment/web/api", "apps/api.yaml")]
    assert _found(findings, "GP010") == [("error", "Deployment/web/api", "apps/api.yaml")]
    assert _found(findings, "GP012") == [("error", "PodDisruptionBudget/web/api", "apps/pdb.yaml")]
    assert _found(findings, "GP014") == [("error", "Deployment/web/api", "apps/api.yaml")]
    assert _found(findings, "GP013") == [("error", "Service/web/api", "apps/service.yaml")]
    assert "spec.ports[0].nodePort" in next(f.message for f in findings if f.rule == "GP013")


def test_plaintext_secret_is_found_and_its_value_never_reported(tmp_path: Path, gate: Gate) -> None:
    """GP011: a clear-text Secret is an error; a SOPS-encrypted one passes."""
    canary = "canary-5d1e-plaintext"
    repo, base = _fleet(tmp_path)
    head = commit(
        repo,
        {
            "apps/secret.yaml": f"""
                apiVersion: v1
                kind: Secret
                metadata: {{name: db, namespace: web}}
                stringData: {{password: {canary}}}
            """,
            "apps/sealed.yaml": """
                apiVersion: v1
                kind: Secret
                metadata: {name: sealed, namespace: web}
                stringData: {password: "ENC[AES256_GCM,data:Zm9v,iv:YmFy,tag:YmF6,type:str]"}
                sops:
                  age: [{recipient: age1example, enc: "-----BEGIN AGE ENCRYPTED FILE-----"}]
                  lastmodified: "2026-01-01T00:00:00Z"
                  mac: "ENC[AES256_GCM,data:bWFj,iv:aXY=,tag:dGFn,type:str]"
                  version: 3.9.0
            """,
        },
        "add two Secrets",
    )

    findings = gate(repo, base, head)

    assert _found(findings, "GP011") == [("error", "Secret/web/db", "apps/secret.yaml")]
    assert not [f for f in findings if canary in f.message]


def test_tenant_rules_read_the_base_configuration(tmp_path: Path, gate: Gate) -> None:
    """GP015 and GP016 with tenants from the base revision's .tidegate.yaml."""
    repo, base = _fleet(
        tmp_path,
        {
            CONFIG_FILE: """
                policies:
                  rules:
                    GP015:
                      tenants:
                      - {name: team-a, paths: ["tenants/team-a/**"], namespaces: [team-a]}
            """,
            f"{PROD}/tenants.yaml": kustomization("tenants", "./tenants"),
            "tenants/kustomization.yaml": "resources: [team-a]\n",
            "tenants/team-a/kustomization.yaml": "resources: [config.yaml]\n",
            "tenants/team-a/config.yaml": configmap("config", "team-a"),
        },
    )
    head = commit(
        repo,
        {
            "tenants/team-a/kustomization.yaml": (
                "resources: [config.yaml, extra.yaml, sync.yaml]\n"
            ),
            "tenants/team-a/extra.yaml": """
                apiVersion: rbac.authorization.k8s.io/v1
                kind: ClusterRole
                metadata: {name: team-a-admin}
                rules: []
                ---
                apiVersion: v1
                kind: ConfigMap
                metadata: {name: sneaky, namespace: team-b}
                data: {a: "1"}
            """,
            "tenants/team-a/sync.yaml": """
                apiVersion: kustomize.toolkit.fluxcd.io/v1
                kind: Kustomization
                metadata: {name: team-a-apps, namespace: team-a}
                spec:
                  interval: 10m
                  path: ./tenants/team-a
                  prune: true
                  sourceRef: {kind: GitRepository, name: flux-system, namespace: flux-system}
            """,
        },
        "team-a reaches out",
    )

    findings = gate(repo, base, head)

    assert ("error", "ClusterRole/team-a-admin", "tenants/team-a/extra.yaml") in _found(
        findings, "GP015"
    )
    assert ("error", "ConfigMap/team-b/sneaky", "tenants/team-a/extra.yaml") in _found(
        findings, "GP015"
    )
    lockdown = [f.message for f in findings if f.rule == "GP016"]
    assert any("has no spec.serviceAccountName" in m for m in lockdown)
    assert any("reads a source in namespace flux-system" in m for m in lockdown)


def _release(version: str, retries: str = "") -> str:
    return f"""
        apiVersion: helm.toolkit.fluxcd.io/v2
        kind: HelmRelease
        metadata: {{name: cache, namespace: flux-system}}
        spec:
          interval: 1h
          targetNamespace: web
          chart:
            spec:
              chart: ./charts/cache
              version: "{version}"
              sourceRef: {{kind: GitRepository, name: flux-system}}
          {retries}
    """


def test_helm_release_rules(tmp_path: Path, gate: Gate) -> None:
    """GP019 and GP020 on a HelmRelease whose chart is in the repository (rendered by helm)."""
    chart = {
        "charts/cache/Chart.yaml": "apiVersion: v2\nname: cache\nversion: 1.2.0\n",
        "charts/cache/templates/cm.yaml": """
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: cache}
            data: {size: "1"}
        """,
    }
    retries = "install: {remediation: {retries: 3}}\n          upgrade: {remediation: {retries: 3}}"
    repo, base = _fleet(tmp_path, {**chart, "apps/cache.yaml": _release("1.2.*", retries)})
    head = commit(repo, {"apps/cache.yaml": _release(">=1.2.0")}, "follow every chart release")

    findings = gate(repo, base, head)

    assert _found(findings, "GP019") == [
        ("warning", "HelmRelease/flux-system/cache", "apps/cache.yaml")
    ]
    assert _found(findings, "GP020") == [
        ("warning", "HelmRelease/flux-system/cache", "apps/cache.yaml")
    ]
    assert "widened from 1.2.* by this change" in next(
        f.message for f in findings if f.rule == "GP020"
    )
    assert gate.code == 1  # warnings only: the gate passes


def test_flux_operations_rules(tmp_path: Path, gate: Gate) -> None:
    """GP022 (the sync branch changes), GP023 (a suspend), GP024 (prune protection dropped)."""
    protected = """
        apiVersion: v1
        kind: Namespace
        metadata:
          name: data
          annotations: {kustomize.toolkit.fluxcd.io/prune: disabled}
    """
    repo, base = _fleet(tmp_path, {"infra/data.yaml": protected})
    sync = (repo / f"{PROD}/flux-system/gotk-sync.yaml").read_text()
    head = commit(
        repo,
        {
            f"{PROD}/flux-system/gotk-sync.yaml": sync.replace("branch: main", "branch: release"),
            f"{PROD}/apps.yaml": kustomization(
                "apps", "./apps", extra="dependsOn: [{name: infra}]\nsuspend: true"
            ),
            "infra/data.yaml": protected.replace(
                "annotations: {kustomize.toolkit.fluxcd.io/prune: disabled}", "labels: {a: b}"
            ),
        },
        "switch branch, suspend apps, unprotect data",
    )

    findings = gate(repo, base, head)

    assert _found(findings, "GP022") == [
        ("error", "GitRepository/flux-system/flux-system", f"{PROD}/flux-system/gotk-sync.yaml")
    ]
    assert _found(findings, "GP023") == [
        ("warning", "Kustomization/flux-system/apps", f"{PROD}/apps.yaml")
    ]
    assert _found(findings, "GP024") == [("error", "Namespace/data", "infra/data.yaml")]
    assert gate.code == 3


def test_blast_radius_uses_the_configured_threshold(tmp_path: Path, gate: Gate) -> None:
    """GP025 with `maxDeletes: 3` from the base configuration."""
    many = {f"apps/cm-{n}.yaml": configmap(f"cm-{n}", "web", n=str(n)) for n in range(4)}
    repo, base = _fleet(
        tmp_path,
        {CONFIG_FILE: "policies:\n  rules:\n    GP025: {maxDeletes: 3}\n", **many},
    )
    head = commit(repo, dict.fromkeys(many), "drop four ConfigMaps")

    findings = gate(repo, base, head)

    radius = [f for f in findings if f.rule == "GP025"]
    assert [(f.unit.rsplit("/", 1)[-1], f.file) for f in radius] == [("apps", f"{PROD}/apps.yaml")]
    assert "deletes 4 objects in clusters/production, more than 3" in radius[0].message
    assert gate.code == 3
