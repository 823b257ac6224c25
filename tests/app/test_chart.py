"""The chart's pull-request app: lint, rendering rules, and a server-side dry run of what it
renders against the local control plane."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

CHART = Path(__file__).resolve().parents[2] / "charts" / "tidegate"

GITHUB_APP = [
    "app.enabled=true",
    "app.github.appId=4242",
    "app.github.privateKeySecret.name=tidegate-github",
    "app.github.webhookSecret.name=tidegate-github",
]
POSTGRESQL = [
    *GITHUB_APP,
    "app.replicaCount=3",
    "app.database.kind=postgresql",
    "app.database.urlSecret.name=tidegate-database",
]


def helm(helm_bin: Path, command: str, sets: list[str]) -> subprocess.CompletedProcess[str]:
    argv = [str(helm_bin), command]
    if command == "template":
        argv += ["tidegate", str(CHART), "--namespace", "default"]
    else:
        argv += [str(CHART), "--strict"]
    for value in sets:
        argv += ["--set", value]
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def app_objects(helm_bin: Path, sets: list[str]) -> list[dict[str, Any]]:
    """The objects of the app's templates (the chart also holds the reconciler's)."""
    done = helm(helm_bin, "template", sets)
    assert done.returncode == 0, done.stderr
    return [
        doc
        for doc in yaml.safe_load_all(done.stdout)
        if doc and doc["metadata"]["labels"].get("app.kubernetes.io/component") == "pr-app"
    ]


def rendered(helm_bin: Path, sets: list[str]) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in app_objects(helm_bin, sets)}


@pytest.mark.parametrize("sets", [GITHUB_APP, POSTGRESQL], ids=["sqlite", "postgresql"])
def test_the_chart_lints(helm_bin: Path, sets: list[str]) -> None:
    done = helm(helm_bin, "lint", sets)
    assert done.returncode == 0, done.stdout + done.stderr


def test_sqlite_runs_one_gunicorn_pod_on_a_volume_with_secrets_as_files(helm_bin: Path) -> None:
    objects = rendered(helm_bin, GITHUB_APP)
    assert set(objects) == {"Deployment", "Service", "PersistentVolumeClaim"}
    deployment = objects["Deployment"]["spec"]
    assert deployment["strategy"] == {"type": "Recreate"}
    [container] = deployment["template"]["spec"]["containers"]
    assert container["args"][0] == "serve"
    assert "--dev" not in container["args"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["TIDEGATE_GITHUB_PRIVATE_KEY_FILE"].startswith("/var/run/tidegate/")
    assert "TIDEGATE_GITHUB_PRIVATE_KEY" not in env
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    volumes = {v["name"]: v for v in deployment["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "tidegate-pr-app"


def test_postgresql_runs_replicas_with_the_url_from_a_secret(helm_bin: Path) -> None:
    objects = rendered(helm_bin, POSTGRESQL)
    assert set(objects) == {"Deployment", "Service"}
    deployment = objects["Deployment"]["spec"]
    assert deployment["replicas"] == 3
    [container] = deployment["template"]["spec"]["containers"]
    assert "TIDEGATE_DATABASE_URL_FILE" in {e["name"] for e in container["env"]}
    sources = deployment["template"]["spec"]["volumes"][-1]["projected"]["sources"]
    assert {
        "name": "tidegate-database",
        "items": [{"key": "database-url", "path": "tidegate_database_url"}],
    } in [s["secret"] for s in sources]


LIVE = [
    *GITHUB_APP,
    "app.liveClusters[0].path=clusters/production",
    "app.liveClusters[0].kubeconfigSecret.name=kube-production",
    "app.liveClusters[0].kubeconfigSecret.key=kubeconfig",
    "app.liveClusters[1].path=clusters/staging",
    "app.liveClusters[1].kubeconfigSecret.name=kube-staging",
    "app.liveClusters[1].kubeconfigSecret.key=config",
    "app.liveClusters[1].context=staging",
]


def test_live_clusters_read_their_kubeconfigs_from_mounted_secrets(helm_bin: Path) -> None:
    deployment = rendered(helm_bin, LIVE)["Deployment"]["spec"]["template"]["spec"]
    [container] = deployment["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["TIDEGATE_LIVE_CLUSTERS"] == (
        "clusters/production=/var/run/tidegate/kubeconfig-0,"
        "clusters/staging=/var/run/tidegate/kubeconfig-1#staging"
    )
    sources = [s["secret"] for s in deployment["volumes"][-1]["projected"]["sources"]]
    assert {
        "name": "kube-production",
        "items": [{"key": "kubeconfig", "path": "kubeconfig-0"}],
    } in (sources)
    assert {"name": "kube-staging", "items": [{"key": "config", "path": "kubeconfig-1"}]} in sources
    assert not any("kube" in str(e.get("valueFrom", "")) for e in container["env"])


@pytest.mark.parametrize(
    ("sets", "error"),
    [
        ([*GITHUB_APP, "app.replicaCount=2"], "needs app.database.kind=postgresql"),
        ([*GITHUB_APP, "app.database.kind=postgresql"], "needs app.database.urlSecret.name"),
        (["app.enabled=true"], "needs app.github.appId"),
        ([*GITHUB_APP, "app.workers=0"], "/app/workers"),
        ([*GITHUB_APP, "app.database.kind=mysql"], "/app/database/kind"),
        ([*LIVE, "app.liveClusters[0].path=/etc"], "/app/liveClusters/0/path"),
        ([*LIVE, "app.liveClusters[1].context=a#b"], "/app/liveClusters/1/context"),
        ([*LIVE, "app.liveClusters[0].kubeconfigSecret.name="], "/app/liveClusters/0"),
    ],
)
def test_impossible_settings_are_refused_by_name(
    helm_bin: Path, sets: list[str], error: str
) -> None:
    done = helm(helm_bin, "template", sets)
    assert done.returncode != 0
    assert error in done.stderr


def test_the_app_is_off_by_default(helm_bin: Path) -> None:
    done = subprocess.run(
        [str(helm_bin), "template", "tidegate", str(CHART)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "pr-app" not in done.stdout


@pytest.mark.cluster
@pytest.mark.parametrize(
    "sets", [GITHUB_APP, POSTGRESQL, LIVE], ids=["sqlite", "postgresql", "live-clusters"]
)
def test_the_api_server_accepts_what_the_chart_renders(
    helm_bin: Path, kubectl_bin: Path, admin_kubeconfig: Path, sets: list[str]
) -> None:
    manifests = yaml.safe_dump_all(app_objects(helm_bin, sets))
    applied = subprocess.run(
        [
            str(kubectl_bin),
            "--kubeconfig",
            str(admin_kubeconfig),
            "apply",
            "--dry-run=server",
            "--server-side",
            "--field-manager=tidegate-chart-test",
            "-f",
            "-",
        ],
        input=manifests,
        capture_output=True,
        text=True,
        check=False,
    )
    assert applied.returncode == 0, applied.stderr
    assert "deployment.apps/tidegate-pr-app serverside-applied (server dry run)" in applied.stdout
