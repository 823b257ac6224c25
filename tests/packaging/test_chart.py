"""The Helm chart lints and renders with the pinned helm into a locked-down Deployment."""

from __future__ import annotations

import subprocess
from pathlib import Path

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
