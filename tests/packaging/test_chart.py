"""The Helm chart lints and renders with the pinned helm into a locked-down Deployment."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[2] / "charts" / "tidegate"


def test_chart_lints(helm_bin: Path) -> None:
    done = subprocess.run(
        [str(helm_bin), "lint", "--strict", str(CHART)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_chart_renders_a_locked_down_deployment(helm_bin: Path) -> None:
    done = subprocess.run(
        [str(helm_bin), "template", "tg", str(CHART)], capture_output=True, text=True, check=True
    )
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/tidegate/tidegate:0.1.0"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def _render(helm_bin: Path, *args: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [str(helm_bin), "template", "tg", str(CHART), "-n", "ops", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def test_the_deployment_runs_as_the_charts_service_account_with_no_wildcard_rules(
    helm_bin: Path,
) -> None:
    docs = _render(helm_bin)
    account = next(d for d in docs if d["kind"] == "ServiceAccount")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "tg-reconciler"
    assert account["metadata"] == {
        **account["metadata"],
        "name": "tg-reconciler",
        "namespace": "ops",
    }
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
    admin = [
        d
        for d in docs
        if d["kind"] == "ClusterRoleBinding" and d["roleRef"]["name"] == "cluster-admin"
    ]
    assert len(admin) == 1
    assert not [
        d
        for d in _render(helm_bin, "--set", "rbac.clusterAdmin=false")
        if d["kind"] == "ClusterRoleBinding" and d["roleRef"]["name"] == "cluster-admin"
    ]
