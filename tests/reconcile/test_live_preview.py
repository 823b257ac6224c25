"""`tidegate preview --live` against the real control plane, as a read-only (plus dry-run) identity.

A Kustomization's inventory still holds an object that already left Git (the reconciler has not
run since): the offline preview cannot see it go, the live one shows its exact prune, and shows it
as drift, apart from the pull request's own change. The identity is the one docs/preview.md
describes: read everything, dry-run writes only (a ValidatingAdmissionPolicy refuses the rest),
which the test also proves by trying a real write.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from cli import main as cli_main
from tests.cluster.kube import apply, eventually
from tests.fixtures.controlplane import api_client
from tests.fixtures.gitserver import git
from tests.reconcile.conftest import Flux

pytestmark = pytest.mark.cluster

USER = "tidegate-preview"
POLICY = "tidegate-preview-dry-run-only"

RBAC: list[dict[str, Any]] = [
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": USER},
        "rules": [
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]},
            # Server-side dry-run applies are authorised as the writes they simulate.
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["create", "patch"]},
        ],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": USER},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": USER},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER}],
    },
    {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": POLICY},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": ["*"],
                        "apiVersions": ["*"],
                        "resources": ["*"],
                        "operations": ["CREATE", "UPDATE", "DELETE"],
                    }
                ]
            },
            "matchConditions": [
                {"name": "preview-identity", "expression": f"request.userInfo.username == '{USER}'"}
            ],
            "validations": [
                {
                    "expression": "request.dryRun == true",
                    "message": "the preview identity may only dry-run",
                    "reason": "Forbidden",
                }
            ],
        },
    },
    {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": POLICY},
        "spec": {"policyName": POLICY, "validationActions": ["Deny"]},
    },
]


@pytest.fixture(scope="module")
def preview_identity(control_plane: Any, dynamic_client: Any) -> Path:
    """A kubeconfig for the read-and-dry-run identity of docs/preview.md."""
    for document in RBAC:
        apply(dynamic_client, document)
    return Path(control_plane.client_kubeconfig(USER))


def _files(flux: Flux, *, colour: str, keep_old: bool) -> dict[str, str | None]:
    resources = "[settings.yaml, old.yaml]" if keep_old else "[settings.yaml]"
    return {
        # As `flux bootstrap` writes it: the source and the root Kustomization in the repository.
        "clusters/test/flux-system/gotk-sync.yaml": f"""
            apiVersion: source.toolkit.fluxcd.io/v1
            kind: GitRepository
            metadata: {{name: flux-system, namespace: {flux.namespace}}}
            spec: {{interval: 1m, url: {flux.repo.url}, ref: {{branch: main}}}}
            ---
            apiVersion: kustomize.toolkit.fluxcd.io/v1
            kind: Kustomization
            metadata: {{name: flux-system, namespace: {flux.namespace}}}
            spec:
              interval: 10m
              path: ./clusters/test
              prune: true
              sourceRef: {{kind: GitRepository, name: flux-system}}
        """,
        "clusters/test/app.yaml": f"""
            apiVersion: kustomize.toolkit.fluxcd.io/v1
            kind: Kustomization
            metadata: {{name: app, namespace: {flux.namespace}}}
            spec:
              interval: 10m
              path: ./app
              prune: true
              sourceRef: {{kind: GitRepository, name: flux-system}}
        """,
        "app/kustomization.yaml": f"""
            apiVersion: kustomize.config.k8s.io/v1beta1
            kind: Kustomization
            resources: {resources}
        """,
        "app/settings.yaml": f"""
            apiVersion: v1
            kind: ConfigMap
            metadata: {{name: settings, namespace: {flux.apps_namespace}}}
            data: {{colour: {colour}}}
        """,
        "app/old.yaml": f"""
            apiVersion: v1
            kind: ConfigMap
            metadata: {{name: old, namespace: {flux.apps_namespace}}}
            data: {{stale: "yes"}}
        """
        if keep_old
        else None,
    }


def _preview(
    flux: Flux, kubeconfig: Path, base: str, head: str, tmp_path: Path, *live: str
) -> tuple[int, dict[str, Any]]:
    output = tmp_path / f"report-{len(live)}.json"
    code = cli_main.main(
        [
            "preview",
            *("--repo", str(flux.work), "--base", base, "--head", head),
            *("--path", "clusters/test", "--format", "json", "--output", str(output)),
            *("--cache-dir", str(tmp_path / "cache"), "--no-policies"),
            *("--kubeconfig", str(kubeconfig)),
            *live,
        ]
    )
    return code, json.loads(output.read_text()) if output.exists() else {"code": code}


def _changes(report: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (change["action"], change["kind"], change["name"])
        for cluster in report["clusters"]
        for unit in cluster["units"]
        if unit["name"] == "app"
        for change in unit["changes"]
    }


def test_live_preview_shows_the_exact_prune_the_offline_one_cannot(
    flux: Flux, preview_identity: Path, tmp_path: Path
) -> None:
    core = k8s.CoreV1Api(flux.kube_client)
    core.create_namespace({"metadata": {"name": flux.apps_namespace}})
    flux.commit(_files(flux, colour="blue", keep_old=True), "first")
    flux.kustomization("app", path="./app")
    assert flux.driver.reconcile(flux.namespace, "app").ready
    inventory = flux.get("app")["status"]["inventory"]["entries"]
    assert f"{flux.apps_namespace}_old__ConfigMap" in [e["id"] for e in inventory]
    # `old` leaves Git; the reconciler has not run since, so the cluster still has it.
    flux.commit(_files(flux, colour="blue", keep_old=False), "drop old")
    base = _head(flux)
    pull = _files(flux, colour="green", keep_old=False)
    del pull["app/old.yaml"]
    flux.commit(pull, "the pull request")
    head = _head(flux)

    code, offline = _preview(flux, preview_identity, base, head, tmp_path)
    assert code == 1, json.dumps(offline["clusters"])[:3000]
    assert _changes(offline) == {("update", "ConfigMap", "settings")}

    code, live = _preview(flux, preview_identity, base, head, tmp_path, "--live")
    assert code == 1, live
    assert _changes(live) == {
        ("update", "ConfigMap", "settings"),
        ("delete", "ConfigMap", "old"),
    }
    app = f"Kustomization/{flux.namespace}/app"
    assert [(d["name"], d["live"], d["previewed"]) for d in live["drift"] if d["unit"] == app] == [
        ("old", "delete", None)
    ]
    # Nothing was written: the old object is still there, the settings still blue.
    assert core.read_namespaced_config_map("old", flux.apps_namespace).data == {"stale": "yes"}
    assert core.read_namespaced_config_map("settings", flux.apps_namespace).data == {
        "colour": "blue"
    }
    # And the identity cannot write for real (the policy may take a moment to be enforced).
    with api_client(preview_identity) as client:
        eventually(
            lambda: _status_of_write(client, flux.apps_namespace) == 403,
            "a real write by the preview identity refused",
        )


def _status_of_write(client: Any, namespace: str) -> int:
    body = {"metadata": {"name": "written"}, "data": {"a": "b"}}
    try:
        k8s.CoreV1Api(client).create_namespaced_config_map(namespace, body)
    except k8s.ApiException as exc:
        return int(exc.status)
    return 201


def _head(flux: Flux) -> str:
    return git("rev-parse", "HEAD", cwd=flux.work).strip()


SUBSTITUTED = "live-only-db-password"


def _substituting_files(flux: Flux, *, keep_old: bool) -> dict[str, str | None]:
    files = _files(flux, colour="blue", keep_old=keep_old)
    files["clusters/test/app.yaml"] = f"""
        apiVersion: kustomize.toolkit.fluxcd.io/v1
        kind: Kustomization
        metadata: {{name: app, namespace: {flux.namespace}}}
        spec:
          interval: 10m
          path: ./app
          prune: true
          sourceRef: {{kind: GitRepository, name: flux-system}}
          postBuild:
            substituteFrom: [{{kind: Secret, name: db, optional: true}}]
    """
    files["app/old.yaml"] = (
        f"""
        apiVersion: v1
        kind: ConfigMap
        metadata: {{name: old, namespace: {flux.apps_namespace}}}
        data: {{url: "postgres://app:${{PASSWORD}}@db"}}
    """
        if keep_old
        else None
    )
    return files


def test_a_value_substituted_from_a_cluster_secret_never_shows_when_its_object_goes(
    flux: Flux, preview_identity: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    core = k8s.CoreV1Api(flux.kube_client)
    core.create_namespace({"metadata": {"name": flux.apps_namespace}})
    # The Secret lives in the cluster only: no render of the repository ever sees its value.
    core.create_namespaced_secret(
        flux.namespace,
        {"metadata": {"name": "db"}, "stringData": {"PASSWORD": SUBSTITUTED}},
    )
    flux.commit(_substituting_files(flux, keep_old=True), "first")
    flux.kustomization(
        "app",
        path="./app",
        postBuild={"substituteFrom": [{"kind": "Secret", "name": "db"}]},
    )
    assert flux.driver.reconcile(flux.namespace, "app").ready
    planted = core.read_namespaced_config_map("old", flux.apps_namespace).data
    assert planted == {"url": f"postgres://app:{SUBSTITUTED}@db"}
    base = _head(flux)
    flux.commit(_substituting_files(flux, keep_old=False), "the pull request drops old")
    head = _head(flux)
    capsys.readouterr()

    outputs = []
    for form in ("json", "markdown"):
        output = tmp_path / f"report.{form}"
        code = cli_main.main(
            [
                "preview",
                *("--repo", str(flux.work), "--base", base, "--head", head),
                *("--path", "clusters/test", "--format", form, "--output", str(output)),
                *("--cache-dir", str(tmp_path / "cache"), "--no-policies"),
                *("--kubeconfig", str(preview_identity), "--live"),
            ]
        )
        assert code == 1
        outputs.append(output.read_text())
    captured = capsys.readouterr()

    report = json.loads(outputs[0])
    assert ("delete", "ConfigMap", "old") in _changes(report)
    everything = "".join(outputs) + captured.out + captured.err
    assert "postgres://app:" not in everything  # the whole string is masked, not just the value
    for form in (SUBSTITUTED, base64.b64encode(SUBSTITUTED.encode()).decode()):
        assert form not in everything
