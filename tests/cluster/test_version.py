"""The apiserver reports the pinned Kubernetes release, and kubectl is the same release."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from kubernetes import client as k8s

from devenv import toolchain
from tests.cluster.kube import kubectl_json

pytestmark = pytest.mark.cluster


def _pinned_kubernetes() -> str:
    go_mod = (toolchain.TOOL_SETS["k8s"].module_dir / "go.mod").read_text()
    match = re.search(r"^\s*(?:require\s+)?k8s\.io/kubernetes\s+(v\S+)", go_mod, re.MULTILINE)
    assert match, "tools/k8s/go.mod does not pin k8s.io/kubernetes"
    return match.group(1)


def test_version_reports_the_pinned_release(kube_client: Any, admin_kubeconfig: Path) -> None:
    pinned = _pinned_kubernetes()

    server = k8s.VersionApi(kube_client).get_code()
    versions = kubectl_json(admin_kubeconfig, "version")

    assert server.git_version == pinned
    assert versions["serverVersion"]["gitVersion"] == pinned
    assert versions["clientVersion"]["gitVersion"] == pinned


def test_the_python_client_follows_the_server_minor(kube_client: Any) -> None:
    server = k8s.VersionApi(kube_client).get_code()

    # Client 33.x is generated from Kubernetes 1.33's OpenAPI.
    assert kubernetes.__version__.split(".")[0] == server.minor.rstrip("+")
