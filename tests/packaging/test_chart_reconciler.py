"""The chart's reconciler Deployment: flags the command accepts, probes, storage and Service."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from cli.main import build_parser

CHART = Path(__file__).resolve().parents[2] / "charts" / "tidegate"


def _render(helm_bin: Path, *args: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [str(helm_bin), "template", "tg", str(CHART), "-n", "ops", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def _reconciler(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return next(
        d for d in docs if d["kind"] == "Deployment" and "reconciler" in d["metadata"]["name"]
    )


def test_the_deployment_runs_the_controller_with_flags_the_command_accepts(helm_bin: Path) -> None:
    docs = _render(helm_bin, "--set", "reconciler.extraArgs={--no-cross-namespace-refs=true}")
    container = _reconciler(docs)["spec"]["template"]["spec"]["containers"][0]
    args = build_parser().parse_args(container["args"])
    assert args.what is None  # no kind: the controller, not the verb
    assert args.enable_leader_election is True
    assert args.watch_all_namespaces is True
    assert args.no_cross_namespace_refs is True
    assert args.concurrent == 4
    assert args.requeue_dependency == 30.0
    assert args.metrics_addr[1] == 8080
    assert args.health_addr[1] == 9440
    assert args.storage_path == Path("/data")
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]}
    assert env == {"RUNTIME_NAMESPACE": "metadata.namespace"}


def test_probes_storage_and_the_artifact_service_line_up(helm_bin: Path) -> None:
    docs = _render(helm_bin)
    deployment = _reconciler(docs)
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 9090, "http-prom": 8080, "healthz": 9440}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "healthz"}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"tmp": "/tmp", "data": "/data"}
    assert {v["name"] for v in pod["volumes"]} == {"tmp", "data"}
    service = next(d for d in docs if d["kind"] == "Service")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    advertised = next(a for a in container["args"] if a.startswith("--storage-adv-addr="))
    name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
    assert advertised == f"--storage-adv-addr={name}.{namespace}.svc.cluster.local."
