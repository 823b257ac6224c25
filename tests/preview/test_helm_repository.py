"""A HelmRelease whose chart comes from a HelmRepository, previewed end to end.

Covers: the chart is pulled over HTTP from a loopback chart repository (semver range resolved),
`valuesFrom` a ConfigMap rendered by the same cluster (and a change to it re-rendering the
release), an update through values, the chart's Secret masked, and helm-controller's ownership
labels on the rendered objects.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from core import preview as engine
from core.fetch import FetchPolicy
from core.model import ObjectRef, UnitKind, UnitRef
from core.render.cache import RenderCache
from core.render.unit import RenderOptions, RenderSettings
from core.repo.git import Repository
from core.sources.helmrepo import ChartPuller
from tests.preview.conftest import Preview
from tests.preview.gitrepo import commit, flux_cluster, new_repo
from tests.render.test_helm import build_repository, serve

PROD = "clusters/production"
CANARY = "canary-6f1c9a3e-values-password"


@pytest.fixture(scope="module")
def chart_url(helm_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("chart-repo")
    with serve(build_repository(helm_bin, root, ("1.0.0", "1.1.0", "2.0.0"))) as url:
        yield url


def _release(replicas: int, password: str) -> str:
    return f"""
        apiVersion: helm.toolkit.fluxcd.io/v2
        kind: HelmRelease
        metadata: {{name: web, namespace: flux-system}}
        spec:
          interval: 10m
          targetNamespace: apps
          releaseName: web
          chart:
            spec:
              chart: webapp
              version: ">=1.0.0 <2.0.0"
              sourceRef: {{kind: HelmRepository, name: charts}}
          valuesFrom:
            - kind: ConfigMap
              name: web-values
          values:
            replicas: {replicas}
            password: {password}
    """


def test_helm_repository_release_is_previewed(
    tmp_path: Path, chart_url: str, preview: Preview, kustomize_bin: Path, helm_bin: Path
) -> None:
    repo, base = new_repo(
        tmp_path / "repo",
        {
            **flux_cluster(),
            f"{PROD}/charts.yaml": f"""
                apiVersion: source.toolkit.fluxcd.io/v1
                kind: HelmRepository
                metadata: {{name: charts, namespace: flux-system}}
                spec: {{interval: 1h, url: "{chart_url}"}}
            """,
            f"{PROD}/web-values.yaml": """
                apiVersion: v1
                kind: ConfigMap
                metadata: {name: web-values, namespace: flux-system}
                data:
                  values.yaml: |
                    image: {tag: "1.27"}
            """,
            f"{PROD}/web.yaml": _release(1, CANARY + "-v1"),
        },
    )
    head = commit(
        repo,
        {
            f"{PROD}/web.yaml": _release(3, CANARY + "-v2"),
            f"{PROD}/web-values.yaml": (repo / f"{PROD}/web-values.yaml")
            .read_text()
            .replace("1.27", "1.28"),
        },
        "scale web and move it to nginx 1.28 through its values ConfigMap",
    )

    # The chart repository is on loopback, which only the operator can allow.
    operator = tmp_path / "operator.yaml"
    operator.write_text("fetch: {allowLoopback: true}\n")
    json_out = preview(repo, base, head, "--config", str(operator))
    markdown_out = preview(repo, base, head, "--config", str(operator), fmt="markdown")

    assert json_out.code == 1, json_out.stderr
    web = json_out.unit(PROD, "web")
    assert web["kind"] == "HelmRelease"
    deployment = next(c for c in web["changes"] if c["kind"] == "Deployment")
    assert deployment["action"] == "update"
    assert deployment["fields"] == ["spec.replicas", "spec.template.spec.containers[0].image"]
    lines = deployment["diff"].splitlines()
    assert any(line[0] == "-" and line.endswith("image: nginx:1.27") for line in lines), lines
    assert any(line[0] == "+" and line.endswith("image: nginx:1.28") for line in lines), lines
    with Repository(repo) as git_repo:
        options = RenderOptions(
            kustomize=kustomize_bin,
            helm=helm_bin,
            fetch_policy=FetchPolicy(allowed_hosts=None, allow_loopback=True),
        )
        settings = RenderSettings(options, RenderCache(tmp_path / "direct"))
        rendered = engine.render_revision(git_repo, git_repo.tree(head), [PROD], settings)
    objects = rendered[PROD].units[UnitRef(UnitKind.HELM_RELEASE, "flux-system", "web")].objects
    labels = (objects or {})[ObjectRef("apps", "Deployment", "apps", "web")].body["metadata"][
        "labels"
    ]
    assert labels["helm.toolkit.fluxcd.io/name"] == "web"
    assert labels["helm.toolkit.fluxcd.io/namespace"] == "flux-system"
    # The HelmRelease's own values are plain configuration in git; the Secret the chart renders
    # from them must never show the value, only that it changed.
    secret = next(c for c in web["changes"] if c["kind"] == "Secret")
    assert CANARY not in secret["diff"]
    assert "*** (before)" in secret["diff"]
    assert "*** (after)" in secret["diff"]
    assert CANARY not in json_out.stderr + markdown_out.stderr


class _HoldRecorder(ChartPuller):
    """A chart puller that notes, for each pull, whether the preview held it."""

    def __init__(self, cache_dir: Path) -> None:
        super().__init__(cache_dir)
        self.holding = False
        self.pulls_held: list[bool] = []

    @contextmanager
    def held(self) -> Iterator[None]:
        with super().held():
            self.holding = True
            try:
                yield
            finally:
                self.holding = False

    def pull(self, repo_url: str, chart: str, version: str | None, policy: FetchPolicy) -> Path:
        self.pulls_held.append(self.holding)
        return super().pull(repo_url, chart, version, policy)


def test_a_preview_holds_its_chart_answers_for_both_sides(
    tmp_path: Path, chart_url: str, kustomize_bin: Path, helm_bin: Path
) -> None:
    files = {
        **flux_cluster(),
        f"{PROD}/charts.yaml": f"""
            apiVersion: source.toolkit.fluxcd.io/v1
            kind: HelmRepository
            metadata: {{name: charts, namespace: flux-system}}
            spec: {{interval: 1h, url: "{chart_url}"}}
        """,
        f"{PROD}/web-values.yaml": """
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: web-values, namespace: flux-system}
            data: {values.yaml: "image: {tag: '1.27'}"}
        """,
        f"{PROD}/web.yaml": _release(1, "v1"),
    }
    repo, base = new_repo(tmp_path / "repo", files)
    head = commit(repo, {f"{PROD}/web.yaml": _release(2, "v1")}, "scale web")
    options = RenderOptions(
        kustomize=kustomize_bin,
        helm=helm_bin,
        fetch_policy=FetchPolicy(allowed_hosts=None, allow_loopback=True),
    )
    puller = _HoldRecorder(tmp_path / "charts")
    settings = RenderSettings(options, RenderCache(tmp_path / "cache"), charts=puller)

    with Repository(repo) as git_repo:
        result = engine.run_preview(git_repo, engine.PreviewRequest(base=base, head=head), settings)

    assert result.changed
    # Index and failures cannot expire between the base's pulls and the head's.
    assert puller.pulls_held
    assert all(puller.pulls_held)
    assert not puller.holding
