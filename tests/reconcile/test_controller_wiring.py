"""What `tidegate reconcile` wires, seen on the real control plane through the process.

The controller runs as a process with the admin's identity and watches the test's Flux
namespace. A GitRepository's new artifact is a Normal `NewArtifact` Event reported by
`source-controller`, as Flux records it. While a Kustomization waits for its health checks
the run's progress is already in the status (Reconciling with the health-check message, Ready
Unknown, `lastAttemptedRevision`), not only the final outcome.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.cluster.kube import eventually
from tests.fixtures.gitserver import commit, git
from tests.reconcile.conftest import Flux
from tests.reconcile.controller import ControllerProcess, start_controller

pytestmark = pytest.mark.cluster


@contextmanager
def _controller(
    flux: Flux, kubeconfig: Path, kustomize: Path, work: Path
) -> Iterator[ControllerProcess]:
    process = start_controller(kubeconfig, flux.namespace, kustomize, work)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(120)
        stderr = process.log()
    assert code == 0, stderr
    assert "Traceback" not in stderr


def _events(kube_client: Any, namespace: str, kind: str, name: str) -> list[Any]:
    listed = k8s.CoreV1Api(kube_client).list_namespaced_event(namespace)
    return [
        e for e in listed.items if e.involved_object.kind == kind and e.involved_object.name == name
    ]


def test_a_new_artifact_is_a_source_controller_event(
    flux: Flux,
    kustomize_bin: Path,
    admin_kubeconfig: Path,
    kube_client: Any,
    tmp_path: Path,
) -> None:
    # Pushed straight to git (not published): the controller's own fetch stores the artifact.
    commit(flux.work, {"README.md": b"hello\n"}, "first commit")
    git("push", "--quiet", flux.repo.push_url, "HEAD:main", cwd=flux.work)

    with _controller(flux, admin_kubeconfig, kustomize_bin, tmp_path / "controller"):
        events = eventually(
            lambda: [
                e
                for e in _events(kube_client, flux.namespace, "GitRepository", "flux-system")
                if e.reason == "NewArtifact"
            ],
            "a NewArtifact event for the GitRepository",
        )

    event = events[0]
    assert event.type == "Normal"
    assert event.message == "stored artifact for commit 'first commit'"
    assert event.source.component == "source-controller"
    assert event.reporting_component == "source-controller"
    head = git("rev-parse", "HEAD", cwd=flux.work)
    assert event.metadata.annotations == {"source.toolkit.fluxcd.io/revision": f"main@sha1:{head}"}


def _deployment(flux: Flux) -> str:
    # No node runs its pods: the Deployment never becomes available, so the wait goes on.
    return f"""
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
          namespace: {flux.apps_namespace}
        spec:
          selector:
            matchLabels: {{app: web}}
          template:
            metadata:
              labels: {{app: web}}
            spec:
              nodeSelector: {{tidegate.dev/no-such-node: "true"}}
              containers:
                - name: web
                  image: registry.invalid/web:1
        """


def _conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


def test_the_status_shows_reconciling_while_health_is_awaited(
    flux: Flux,
    kustomize_bin: Path,
    admin_kubeconfig: Path,
    tmp_path: Path,
) -> None:
    revision = flux.commit(
        {
            "deploy/kustomization.yaml": "resources: [web.yaml]\n",
            "deploy/web.yaml": _deployment(flux),
        }
    )
    flux.create_apps_namespace()
    # A short timeout: the wait ends on its own well within the shutdown bound below.
    flux.kustomization("apps", path="./deploy", wait=True, timeout="40s")

    def waiting() -> dict[str, Any] | None:
        obj = flux.get("apps")
        reconciling = _conditions(obj).get("Reconciling") or {}
        return obj if reconciling.get("message", "").startswith("Running health checks") else None

    with _controller(flux, admin_kubeconfig, kustomize_bin, tmp_path / "controller"):
        try:
            # A generous bound: on a loaded machine the first fetch, build and apply take a while.
            obj = eventually(waiting, "Reconciling to show the health checks", timeout=300)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nstatus: {flux.get('apps').get('status')}") from None

    conditions = _conditions(obj)
    assert conditions["Reconciling"]["status"] == "True"
    assert conditions["Reconciling"]["reason"] == "Progressing"
    assert conditions["Reconciling"]["message"] == (
        f"Running health checks for revision {revision} with a timeout of 40s"
    )
    assert conditions["Ready"]["status"] == "Unknown"
    assert conditions["Ready"]["message"] == "Reconciliation in progress"
    assert obj["status"]["lastAttemptedRevision"] == revision
    assert "lastAppliedRevision" not in obj["status"]


def test_sigterm_cancels_a_health_wait_and_leaves_the_run_in_progress(
    flux: Flux,
    kustomize_bin: Path,
    admin_kubeconfig: Path,
    kube_client: Any,
    tmp_path: Path,
) -> None:
    revision = flux.commit(
        {
            "deploy/kustomization.yaml": "resources: [web.yaml]\n",
            "deploy/web.yaml": _deployment(flux),
        }
    )
    flux.create_apps_namespace()
    # A wait far longer than the shutdown bound: only a cancelled wait lets the process go.
    flux.kustomization("apps", path="./deploy", wait=True, timeout="30m")

    def waiting() -> dict[str, Any] | None:
        obj = flux.get("apps")
        reconciling = _conditions(obj).get("Reconciling") or {}
        return obj if reconciling.get("message", "").startswith("Running health checks") else None

    process = start_controller(
        admin_kubeconfig, flux.namespace, kustomize_bin, tmp_path / "controller"
    )
    try:
        eventually(waiting, "Reconciling to show the health checks", timeout=300)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError("the controller did not stop during its health wait") from None
    stderr = process.log()
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert "Reconcile cancelled: health checks cancelled" in stderr

    # As Flux: the cancelled run writes no outcome, so the status is the run's progress.
    conditions = _conditions(flux.get("apps"))
    assert conditions["Ready"]["status"] == "Unknown"
    assert conditions["Ready"]["reason"] == "Progressing"
    assert conditions["Reconciling"]["message"] == (
        f"Running health checks for revision {revision} with a timeout of 30m0s"
    )
    assert "Healthy" not in conditions or conditions["Healthy"]["status"] == "Unknown"
    failures = [
        e
        for e in _events(kube_client, flux.namespace, "Kustomization", "apps")
        if e.type == "Warning"
    ]
    assert failures == []
