"""The ownership index built from real renders: which units read each repository file.

Covers: kustomize inputs (bases, overlays), the files defining substitution sources, a file read
by no unit, and `affected` naming exactly the units a change can touch.
"""

from __future__ import annotations

from pathlib import Path

from core import preview as engine
from core.model import UnitKind, UnitRef
from core.render.cache import RenderCache
from core.render.unit import RenderOptions, RenderSettings
from core.repo import ownership
from core.repo.git import Repository
from tests.preview.gitrepo import configmap, flux_cluster, kustomization, new_repo

PROD = "clusters/production"
SUBSTITUTE = "postBuild: {substituteFrom: [{kind: ConfigMap, name: cluster-vars}]}"


def _unit(name: str) -> ownership.Owner:
    return ownership.Owner(PROD, UnitRef(UnitKind.KUSTOMIZATION, "flux-system", name))


def test_index_maps_files_to_the_units_that_read_them(
    tmp_path: Path, kustomize_bin: Path, helm_bin: Path
) -> None:
    repo_dir, head = new_repo(
        tmp_path / "repo",
        {
            **flux_cluster(),
            f"{PROD}/vars.yaml": configmap("cluster-vars", "flux-system", tier="gold"),
            f"{PROD}/web.yaml": kustomization("web", "./web/prod", extra=SUBSTITUTE),
            f"{PROD}/jobs.yaml": kustomization("jobs", "./jobs"),
            "web/base/kustomization.yaml": "resources: [config.yaml]\n",
            "web/base/config.yaml": configmap("web", "web", tier="${tier}"),
            "web/prod/kustomization.yaml": "resources: [../base]\nnamePrefix: prod-\n",
            "jobs/config.yaml": configmap("jobs", "jobs", schedule="hourly"),
            "docs/README.md": "not Kubernetes\n",
        },
    )
    settings = RenderSettings(
        RenderOptions(kustomize=kustomize_bin, helm=helm_bin), RenderCache(tmp_path / "c")
    )
    with Repository(repo_dir) as repo:
        renders = engine.render_revision(repo, repo.tree(head), [PROD], settings)

    index = ownership.build(renders)

    assert index["web/base/config.yaml"] == {_unit("web")}
    assert index["web/prod/kustomization.yaml"] == {_unit("web")}
    assert index[f"{PROD}/vars.yaml"] == {_unit("flux-system"), _unit("web")}
    assert "docs/README.md" not in index
    assert ownership.affected(index, ["jobs/config.yaml", "docs/README.md"]) == {_unit("jobs")}
