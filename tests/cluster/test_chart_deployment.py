"""The whole chart (CRDs included) passes the real apiserver's server-side dry-run."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.cluster.kube import kubectl

pytestmark = pytest.mark.cluster

CHART = Path(__file__).resolve().parents[2] / "charts" / "tidegate"


@pytest.mark.parametrize("work", ["emptyDir", "volume"])
def test_the_rendered_chart_is_accepted_by_the_apiserver(
    helm_bin: Path, admin_kubeconfig: Path, namespace: str, tmp_path: Path, work: str
) -> None:
    """As installed by default, and with the work directory on a PersistentVolumeClaim."""
    persistence = work == "volume"
    sets = ["--set", f"reconciler.workDir.persistence.enabled={str(persistence).lower()}"]
    rendered = subprocess.run(
        [str(helm_bin), "template", "tg", str(CHART), "-n", namespace, "--include-crds", *sets],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    manifest = tmp_path / "chart.yaml"
    manifest.write_text(rendered)
    out = kubectl(
        admin_kubeconfig, "apply", "--server-side", "--dry-run=server", "-f", str(manifest)
    )
    assert "deployment.apps/tg-reconciler serverside-applied (server dry run)" in out
    assert "service/tg-artifacts serverside-applied (server dry run)" in out
    claim = "persistentvolumeclaim/tg-reconciler-work serverside-applied (server dry run)"
    assert (claim in out) is persistence
