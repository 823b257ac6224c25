"""Start `tidegate reconcile` (the controller) as a process for a test's Flux namespace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["controller_command", "start_controller"]

ROOT = Path(__file__).resolve().parents[2]


def controller_command(
    kubeconfig: Path | None, kustomize: Path, work: Path, *extra: str, storage_port: int = 0
) -> list[str]:
    """`tidegate reconcile` for tests: loopback artifacts, free probe ports, its work directory.

    Without a kubeconfig it configures itself as in a pod (the ServiceAccount's files).
    """
    return [
        sys.executable,
        "-m",
        "cli.main",
        "reconcile",
        *(["--kubeconfig", str(kubeconfig)] if kubeconfig is not None else []),
        "--watch-all-namespaces=false",
        "--artifact-allow-loopback",
        "--metrics-addr=127.0.0.1:0",
        "--health-addr=127.0.0.1:0",
        f"--storage-addr=127.0.0.1:{storage_port}",
        "--storage-path",
        str(work / "storage"),
        "--kustomize",
        str(kustomize),
        "--work-dir",
        str(work),
        *extra,
    ]


def start_controller(
    kubeconfig: Path,
    namespace: str,
    kustomize: Path,
    work: Path,
    *extra: str,
    storage_port: int = 0,
) -> subprocess.Popen[str]:
    """The controller, out of cluster, watching `namespace`; its JSON log on stderr."""
    return subprocess.Popen(
        controller_command(kubeconfig, kustomize, work, *extra, storage_port=storage_port),
        cwd=ROOT,
        env={**os.environ, "RUNTIME_NAMESPACE": namespace},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
