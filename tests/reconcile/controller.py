"""Start `tidegate reconcile` (the controller) as a process for a test's Flux namespace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["ControllerProcess", "controller_command", "start_controller"]

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


class ControllerProcess(subprocess.Popen[str]):
    """The controller's process, its JSON log written to a file.

    A pipe nobody reads while the controller runs fills up after 64 KiB, and then the controller
    blocks on its next log line: how soon depends on how much a slow machine makes it retry.
    """

    log_path: Path

    def log(self) -> str:
        """Everything the controller has logged so far."""
        return self.log_path.read_text(errors="replace")


def start_controller(
    kubeconfig: Path,
    namespace: str,
    kustomize: Path,
    work: Path,
    *extra: str,
    storage_port: int = 0,
) -> ControllerProcess:
    """The controller, out of cluster, watching `namespace`; its JSON log in a file beside
    `work` (`ControllerProcess.log`)."""
    log_path = work.with_name(f"{work.name}.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a") as log:
        process = ControllerProcess(
            controller_command(kubeconfig, kustomize, work, *extra, storage_port=storage_port),
            cwd=ROOT,
            env={**os.environ, "RUNTIME_NAMESPACE": namespace},
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )
    process.log_path = log_path
    return process
