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


def test_by_default_the_work_directory_is_the_pods_own(helm_bin: Path) -> None:
    docs = _render(helm_bin)
    pod = _reconciler(docs)["spec"]["template"]["spec"]
    args = build_parser().parse_args(pod["containers"][0]["args"])
    assert args.work_dir == Path("/tmp/tidegate")
    assert {v["name"]: v for v in pod["volumes"]}["tmp"]["emptyDir"] == {}
    assert not [d for d in docs if d["kind"] == "PersistentVolumeClaim"]


def test_the_work_directory_can_live_on_a_volume_that_outlives_the_pod(helm_bin: Path) -> None:
    """The revisions kept for predicted vs applied (`<work-dir>/revisions`) survive a new pod."""
    docs = _render(
        helm_bin,
        *("--set", "reconciler.workDir.persistence.enabled=true"),
        *("--set", "reconciler.workDir.persistence.size=5Gi"),
        *("--set", "reconciler.workDir.persistence.storageClassName=fast"),
    )
    pod = _reconciler(docs)["spec"]["template"]["spec"]
    container = pod["containers"][0]
    args = build_parser().parse_args(container["args"])
    [claim] = [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    assert claim["metadata"]["name"] == "tg-reconciler-work"
    assert claim["metadata"]["namespace"] == "ops"
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": "fast",
        "resources": {"requests": {"storage": "5Gi"}},
    }
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["work"]["persistentVolumeClaim"] == {"claimName": "tg-reconciler-work"}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["work"] == "/var/lib/tidegate"
    assert args.work_dir.is_relative_to(mounts["work"])
    # The non-root user writes the volume; the rest of the pod's security context is kept.
    assert pod["securityContext"]["fsGroup"] == 65532
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_a_volume_for_one_node_refuses_several_replicas(helm_bin: Path) -> None:
    done = subprocess.run(
        [
            *(str(helm_bin), "template", "tg", str(CHART)),
            *("--set", "reconciler.workDir.persistence.enabled=true", "--set", "replicaCount=2"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "needs accessModes [ReadWriteMany]" in done.stderr
    shared = _render(
        helm_bin,
        *("--set", "reconciler.workDir.persistence.enabled=true", "--set", "replicaCount=2"),
        *("--set", "reconciler.workDir.persistence.accessModes={ReadWriteMany}"),
    )
    [claim] = [d for d in shared if d["kind"] == "PersistentVolumeClaim"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
