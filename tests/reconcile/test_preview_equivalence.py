"""For one revision, the objects the reconciler applies are the objects `tidegate preview` shows.

The preview renders the repository's cluster entry point through the shared engine (render cache,
masking at its boundary); the reconciler builds the same Kustomizations from the artifact with
variables read from the cluster. Masked with the preview's key, every unit's objects are equal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.preview import render_revision
from core.render.cache import RenderCache
from core.render.unit import RenderOptions, RenderSettings
from core.repo.git import Repository
from tests.fixtures.gitserver import git
from tests.reconcile.conftest import Flux
from tests.reconcile.repos import production

pytestmark = pytest.mark.cluster

CANARY = "canary-4d2a90-previewed"


def _canonical(bodies: Any) -> list[str]:
    return sorted(json.dumps(body, sort_keys=True) for body in bodies)


def test_applied_objects_equal_the_previewed_ones(
    flux: Flux, kustomize_bin: Path, helm_bin: Path, tmp_path: Path
) -> None:
    files = production(flux)
    # A Secret in the repository: both sides must show it masked, and the same way.
    files["apps/secret.yaml"] = f"""
        apiVersion: v1
        kind: Secret
        metadata: {{name: web-secret, namespace: {flux.apps_namespace}}}
        stringData: {{password: {CANARY}}}
    """
    files["apps/kustomization.yaml"] = """
        apiVersion: kustomize.config.k8s.io/v1beta1
        kind: Kustomization
        resources: [deployment.yaml, service.yaml, settings.yaml, keep.yaml, secret.yaml]
    """
    # As `flux bootstrap` writes it: the source and the root Kustomization live in the repository.
    files["clusters/production/flux-system/gotk-sync.yaml"] = f"""
        apiVersion: source.toolkit.fluxcd.io/v1
        kind: GitRepository
        metadata: {{name: flux-system, namespace: {flux.namespace}}}
        spec:
          interval: 1m
          url: {flux.repo.url}
          ref: {{branch: main}}
        ---
        apiVersion: kustomize.toolkit.fluxcd.io/v1
        kind: Kustomization
        metadata: {{name: flux-system, namespace: {flux.namespace}}}
        spec:
          interval: 10m
          path: ./clusters/production
          prune: true
          sourceRef: {{kind: GitRepository, name: flux-system}}
    """
    flux.commit(files, "bootstrap")
    flux.kustomization("flux-system", path="./clusters/production")
    outcomes = flux.driver.converge(flux.namespace)
    assert all(o.ready for o in outcomes.values()), {n: o.message for n, o in outcomes.items()}
    head = git("rev-parse", "HEAD", cwd=flux.work)

    cache = RenderCache(tmp_path / "cache")
    settings = RenderSettings(RenderOptions(kustomize_bin, helm_bin), cache)
    with Repository(flux.work) as repo:
        [cluster] = render_revision(
            repo, repo.tree(head), ["clusters/production"], settings
        ).values()

    previewed = {unit.name: unit for unit in cluster.units}
    assert sorted(previewed) == ["apps", "extras", "flux-system", "infrastructure"]
    key = cache.masking_key()
    for name, unit in previewed.items():
        shown = cluster.units[unit]
        assert shown.objects is not None, shown.error
        applied = flux.engines.masked(name, key)
        assert _canonical(applied) == _canonical(m.body for m in shown.objects.values()), name
        assert CANARY not in json.dumps(applied)
