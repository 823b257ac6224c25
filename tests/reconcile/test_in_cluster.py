"""The controller configured as in a pod: no kubeconfig, the chart ServiceAccount's files.

There is no container runtime here, so the pod's view is built with Linux namespaces: the
process runs in a new user and mount namespace (`unshare --user --map-root-user --mount`), where
a tmpfs over /run (so /var/run) holds `secrets/kubernetes.io/serviceaccount` bind-mounted from a
directory with the chart ServiceAccount's TokenRequest token, the control plane's CA and the
namespace, as the kubelet projects them. `KUBERNETES_SERVICE_HOST`/`PORT` name the apiserver, no
KUBECONFIG or RUNTIME_NAMESPACE is set and HOME is empty, so the only way in is the in-cluster
configuration; the namespace it watches comes from the mounted namespace file. It reconciles a
Kustomization to Ready, fetching the GitRepository itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from devenv.controlplane import ControlPlane
from tests.cluster.chart import install_chart
from tests.cluster.kube import eventually, unique_name
from tests.fixtures.gitserver import commit, git
from tests.reconcile.conftest import Flux
from tests.reconcile.controller import ROOT, controller_command

pytestmark = pytest.mark.cluster

# In the new namespaces: a tmpfs over /run (the real one stays untouched), the ServiceAccount's
# directory bind-mounted where the Kubernetes client looks for it, then the controller.
_POD_VIEW = """
set -e
run=$(readlink -f /var/run)
mount -t tmpfs tmpfs "$run"
mkdir -p "$run/secrets/kubernetes.io/serviceaccount"
mount --bind "$SA_FILES" "$run/secrets/kubernetes.io/serviceaccount"
exec "$@"
"""


def _service_account_files(
    control_plane: ControlPlane, namespace: str, account: str, target: Path
) -> None:
    kubeconfig = control_plane.service_account_kubeconfig(namespace, account, create=False)
    (user,) = yaml.safe_load(kubeconfig.read_text())["users"]
    target.mkdir()
    (target / "token").write_text(user["user"]["token"])
    (target / "ca.crt").write_bytes(control_plane.ca_cert.read_bytes())
    (target / "namespace").write_text(namespace)


def _pod_environment(control_plane: ControlPlane, sa_files: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "RUNTIME_NAMESPACE")}
    home.mkdir()
    env.update(
        HOME=str(home),
        SA_FILES=str(sa_files),
        KUBERNETES_SERVICE_HOST="127.0.0.1",
        KUBERNETES_SERVICE_PORT=str(control_plane.ports.apiserver),
    )
    return env


def _ready(flux: Flux) -> bool:
    conditions = (flux.get("apps").get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_the_controller_reconciles_with_the_in_cluster_configuration(
    flux: Flux,
    control_plane: ControlPlane,
    helm_bin: Path,
    kustomize_bin: Path,
    admin_kubeconfig: Path,
    kube_client: Any,
    tmp_path: Path,
) -> None:
    release = unique_name("tg")
    install_chart(helm_bin, admin_kubeconfig, release, flux.namespace, tmp_path)
    sa_files = tmp_path / "serviceaccount"
    _service_account_files(control_plane, flux.namespace, f"{release}-reconciler", sa_files)
    commit(
        flux.work,
        {
            "deploy/settings.yaml": (
                "apiVersion: v1\nkind: ConfigMap\n"
                f"metadata: {{name: settings, namespace: {flux.apps_namespace}}}\n"
                "data: {colour: blue}\n"
            ).encode()
        },
        "settings",
    )
    git("push", "--quiet", flux.repo.push_url, "HEAD:main", cwd=flux.work)
    flux.create_apps_namespace()
    flux.kustomization("apps", path="./deploy")
    command = controller_command(None, kustomize_bin, tmp_path / "controller")
    pod = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", _POD_VIEW, "sh"]
    # A file, not a pipe: a pipe nobody reads while the controller runs would block it when full.
    log = tmp_path / "controller.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [*pod, *command],
            cwd=ROOT,
            env=_pod_environment(control_plane, sa_files, tmp_path / "home"),
            stdout=subprocess.DEVNULL,
            stderr=out,
            text=True,
        )
    try:
        ready = eventually(lambda: _ready(flux), "the Kustomization to be Ready", timeout=300)
    except AssertionError:
        process.kill()
        process.wait()
        stderr = log.read_text(errors="replace")
        raise AssertionError(f"not Ready; controller log:\n{stderr[-4000:]}") from None
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    code = process.wait(120)
    stderr = log.read_text(errors="replace")
    assert ready
    assert code == 0, stderr
    assert "Traceback" not in stderr
    settings = k8s.CoreV1Api(kube_client).read_namespaced_config_map(
        "settings", flux.apps_namespace
    )
    assert settings.data == {"colour": "blue"}
    assert flux.get("apps")["status"]["lastAppliedRevision"].startswith("main@sha1:")
