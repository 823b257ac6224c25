"""Install the Helm chart into the local control plane as `helm template | kubectl apply` does."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from tests.cluster.kube import kubectl

__all__ = ["CHART", "install_chart"]

CHART = Path(__file__).resolve().parents[2] / "charts" / "tidegate"


def install_chart(
    helm: Path, kubeconfig: Path, release: str, namespace: str, work: Path, *values: str
) -> None:
    """Render the chart with the pinned helm (`values` as `--set` pairs) and apply it."""
    sets = [arg for value in values for arg in ("--set", value)]
    rendered = subprocess.run(
        [str(helm), "template", release, str(CHART), "-n", namespace, *sets],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    descriptor, name = tempfile.mkstemp(prefix=f"{release}-", suffix=".yaml", dir=work)
    manifest = Path(name)
    with os.fdopen(descriptor, "w") as out:
        out.write(rendered)
    kubectl(
        kubeconfig, "apply", "--server-side", "--field-manager=helm-template", "-f", str(manifest)
    )
