"""`tidegate dev cluster up/env/status/down`: a detached cluster a developer can point kubectl at.

Runs the real command in subprocesses against its own state root, so it neither clashes with a
developer's cluster nor with the session's control plane.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.kube import kubectl, kubectl_json

pytestmark = pytest.mark.cluster


def _tidegate(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TIDEGATE_CLUSTERS_DIR": str(root)}
    return subprocess.run(
        [sys.executable, "-m", "cli", "dev", "cluster", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
    )


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"{done.args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting for its reaper has stopped running)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A state root and a cluster name; whatever the test leaves running is brought down."""
    name = f"cli-{uuid.uuid4().hex[:8]}"
    yield tmp_path, name
    _tidegate(tmp_path, "down", "--name", name)


def test_up_env_kubectl_down(cluster: tuple[Path, str]) -> None:
    root, name = cluster

    up = _ok(_tidegate(root, "up", "--name", name, "--root", str(root)))
    again = _ok(_tidegate(root, "up", "--name", name))
    env = _ok(_tidegate(root, "env", "--name", name))
    status = _ok(_tidegate(root, "status", "--name", name))

    assert f"cluster {name} is up at https://127.0.0.1:" in up
    assert f"cluster {name} was already up" in again
    words = shlex.split(env)
    assert words[0] == "export"
    assert words[1].startswith("KUBECONFIG=")
    kubeconfig = Path(words[1].removeprefix("KUBECONFIG="))
    assert kubeconfig.is_relative_to(root / name)
    for component in (
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
    ):
        assert f"{component}\trunning" in status
    nodes = kubectl_json(kubeconfig, "get", "nodes")
    assert {n["metadata"]["name"] for n in nodes["items"]} == {"kwok-node-0", "kwok-node-1"}
    assert kubectl(kubeconfig, "get", "--raw", "/readyz").strip() == "ok"

    state = json.loads((root / name / "state.json").read_text())
    pids = [entry["pid"] for entry in state["components"].values()]

    down = _ok(_tidegate(root, "down", "--name", name))

    assert f"cluster {name} stopped" in down
    assert not (root / name).exists()
    assert not [pid for pid in pids if _running(pid)]
    gone = _tidegate(root, "env", "--name", name)
    assert gone.returncode != 0
    assert f"cluster {name} is not up" in gone.stderr
    assert _tidegate(root, "status", "--name", name).returncode == 1
