"""Chart and OCI downloads share the render cache's byte budget and its LRU rules.

Real components: charts from a loopback HTTP chart repository (pulled by `ChartPuller`), Flux
artifacts from the token-authenticated registry (pulled by `RegistryClient`), and `tidegate
preview` with the pinned tools. The least recently used downloads go first, a hit keeps one, an
entry used within the grace period stays over budget, the masking key and the tool digests are
never touched, and what was removed is downloaded again with the same result.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from core import yamlio
from core.fetch import FetchPolicy
from core.host.command import run
from core.host.files import DirectorySource
from core.model import FLUX_SOURCE_GROUP, Manifest, ObjectRef
from core.oci.reference import parse_repository
from core.oci.registry import RegistryClient
from core.oci.source import unpacked
from core.render import evict, ocisource
from core.render.cache import RenderCache
from core.sources.helmrepo import ChartPuller
from core.units import SourceRef
from devenv.registry import Registry
from tests.fixtures.registry import push_artifact, push_chart
from tests.preview.conftest import Preview
from tests.preview.gitrepo import commit, flux_cluster, new_repo
from tests.preview.test_oci import _APP_KS, _oci_source
from tests.render.helpers import write_tree
from tests.render.test_helm import build_repository, helm_limits, serve

PROD = "clusters/production"
VERSIONS = ("1.0.0", "1.1.0", "2.0.0")
POLICY = FetchPolicy(allowed_hosts=None, allow_loopback=True)
DAY = 24 * 3600.0


@pytest.fixture(scope="module")
def chart_url(helm_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("chart-repo")
    with serve(build_repository(helm_bin, root, VERSIONS)) as url:
        yield url


@pytest.fixture(scope="module")
def artifacts(oci_registry: Registry) -> dict[str, str]:
    """fleet/app at each version, one ConfigMap saying which: tag -> digest."""
    return {
        tag: push_artifact(oci_registry, "fleet/app", tag, {"deploy/version.yaml": _version(tag)})
        for tag in VERSIONS
    }


def _version(tag: str) -> str:
    return (
        "apiVersion: v1\nkind: ConfigMap\n"
        f"metadata: {{name: app-version, namespace: apps}}\ndata: {{version: '{tag}'}}\n"
    )


def _downloads(root: Path) -> dict[str, bytes]:
    """Every downloaded file (charts, manifests, blobs, unpacked files) by path, with content."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for top in ("charts", "oci")
        for path in sorted((root / top).rglob("*"))
        if path.is_file()
    }


def _age(root: Path, days: float) -> None:
    """Make every download (files and unpacked directories) look last used `days` ago."""
    when = os.path.getmtime(root) - days * DAY
    for top in ("charts", "oci"):
        for path in (root / top).rglob("*"):
            os.utime(path, (when, when))


class _Downloads:
    """Pulls charts and artifacts into one cache directory, as a preview does."""

    def __init__(self, root: Path, chart_url: str, registry: Registry) -> None:
        self.root = root
        self.chart_url = chart_url
        self.repository = parse_repository(f"oci://{registry.host}/fleet/app")

    def chart(self, version: str) -> Path:
        # A new puller each time, as each preview has its own: only the disk is shared.
        return ChartPuller(self.root / "charts").pull(self.chart_url, "webapp", version, POLICY)

    def artifact(self, tag: str) -> tuple[Path, Path]:
        """The artifact's blob and its unpacked directory."""
        client = RegistryClient(POLICY, self.root / "oci")
        manifest = client.manifest(self.repository, tag)
        blob = client.blob(self.repository, manifest.layers[0])
        return blob, unpacked(client, blob)


@pytest.fixture
def downloads(tmp_path: Path, chart_url: str, oci_registry: Registry) -> _Downloads:
    return _Downloads(tmp_path / "cache", chart_url, oci_registry)


def test_the_least_recently_used_downloads_go_and_recently_hit_ones_stay(
    downloads: _Downloads, artifacts: dict[str, str]
) -> None:
    root = downloads.root
    charts = {version: downloads.chart(version) for version in VERSIONS}
    pulled = {tag: downloads.artifact(tag) for tag in artifacts}
    key = RenderCache(root).masking_key()
    (root / "tools").mkdir()
    (root / "tools" / "kustomize.digest").write_text("sha256:0\n")
    _age(root, 2)
    # 1.0.0 is the oldest download; a preview hits its chart and artifact now.
    assert downloads.chart("1.0.0") == charts["1.0.0"]
    assert downloads.artifact("1.0.0") == pulled["1.0.0"]
    # What the hits marked: the files, and the unpacked directory as a whole.
    marked = [root / p for p in _downloads(root)] + [pulled["1.0.0"][1]]
    recent = {p for p in marked if p.stat().st_mtime > os.path.getmtime(root) - DAY}
    hit = {
        path: content
        for path, content in _downloads(root).items()
        if recent & {root / path, *(root / path).parents}
    }
    budget = sum(len(content) for content in hit.values())

    result = evict.enforce(str(root), budget)

    assert result.after <= budget < result.before
    assert _downloads(root) == hit  # all of it, the chart's pointer and the tag's manifest too
    assert charts["1.0.0"].is_file()
    assert pulled["1.0.0"][1].is_dir()
    for old in ("1.1.0", "2.0.0"):
        assert not charts[old].exists()
        assert not pulled[old][0].exists()
        assert not pulled[old][1].exists()
    # Directories are renamed away, then deleted: nothing of them is left behind.
    assert [p.name for p in (root / "oci" / "unpacked").iterdir()] == [pulled["1.0.0"][1].name]
    assert RenderCache(root).masking_key() == key
    assert (root / "tools" / "kustomize.digest").read_text() == "sha256:0\n"


def test_downloads_used_within_the_grace_period_stay_over_budget(
    downloads: _Downloads, artifacts: dict[str, str]
) -> None:
    downloads.chart("1.1.0")
    downloads.artifact("1.1.0")
    before = _downloads(downloads.root)

    result = evict.enforce(str(downloads.root), 1)

    assert result.removed == 0
    assert _downloads(downloads.root) == before


def test_a_reader_whose_downloads_were_evicted_downloads_them_again(
    downloads: _Downloads, artifacts: dict[str, str]
) -> None:
    chart = downloads.chart("2.0.0")
    blob, directory = downloads.artifact("2.0.0")
    before = _downloads(downloads.root)
    # Removed by another process between two hits of this one.
    evict.enforce(str(downloads.root), 0, grace=0)
    assert _downloads(downloads.root) == {}

    assert downloads.chart("2.0.0") == chart
    assert downloads.artifact("2.0.0") == (blob, directory)
    assert _downloads(downloads.root) == before
    assert (directory / "deploy" / "version.yaml").read_text() == _version("2.0.0")


def test_leftovers_of_a_crashed_writer_go_once_old_and_fresh_ones_stay(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    (root / "charts" / "archives").mkdir(parents=True)
    (root / "oci" / "unpacked" / ".unpack-old" / "deploy").mkdir(parents=True)
    (root / "oci" / "unpacked" / ".unpack-old" / "deploy" / "a.yaml").write_text("a: 1\n")
    (root / "charts" / "archives" / ".part-old").write_bytes(b"x" * 10)
    _age(root, 2)
    (root / "charts" / "archives" / ".part-new").write_bytes(b"x" * 10)

    evict.enforce(str(root), 0)

    assert sorted(_downloads(root)) == ["charts/archives/.part-new"]
    assert list((root / "oci" / "unpacked").iterdir()) == []


def _repository(tmp_path: Path, chart_url: str, registry: Registry) -> tuple[Path, str, str]:
    """A cluster with a HelmRelease from the chart repository and a Kustomization over OCI."""

    def files(version: str) -> dict[str, str]:
        return {
            f"{PROD}/charts.yaml": f"""
                apiVersion: source.toolkit.fluxcd.io/v1
                kind: HelmRepository
                metadata: {{name: charts, namespace: flux-system}}
                spec: {{interval: 1h, url: "{chart_url}"}}
            """,
            f"{PROD}/web.yaml": f"""
                apiVersion: helm.toolkit.fluxcd.io/v2
                kind: HelmRelease
                metadata: {{name: web, namespace: flux-system}}
                spec:
                  interval: 10m
                  targetNamespace: apps
                  chart:
                    spec:
                      chart: webapp
                      version: "{version}"
                      sourceRef: {{kind: HelmRepository, name: charts}}
            """,
            f"{PROD}/app-source.yaml": _oci_source(
                f"oci://{registry.host}/fleet/app", f'{{tag: "{version}"}}'
            ),
            f"{PROD}/app.yaml": _APP_KS,
        }

    repo, base = new_repo(tmp_path / "repo", {**flux_cluster(), **files("1.0.0")})
    head = commit(repo, files("1.1.0"), "move web and app to 1.1.0")
    return repo, base, head


def test_a_preview_after_its_downloads_were_evicted_downloads_again_and_reports_the_same(
    tmp_path: Path,
    chart_url: str,
    oci_registry: Registry,
    artifacts: dict[str, str],
    preview: Preview,
) -> None:
    repo, base, head = _repository(tmp_path, chart_url, oci_registry)
    operator = tmp_path / "operator.yaml"
    operator.write_text("fetch: {allowLoopback: true}\n")
    cache = tmp_path / "cache"

    first = preview(repo, base, head, "--config", str(operator))
    assert first.code == 1, first.report + first.stderr
    assert (PROD, "app", "update", "ConfigMap", "apps/app-version") in first.changes()
    # Rendered from the downloaded chart (the two versions differ only in their number).
    assert (first.unit(PROD, "web")["status"], first.unit(PROD, "web")["error"]) == (
        "unchanged",
        None,
    )
    pulled = _downloads(cache)
    assert any(p.startswith("charts/archives/") for p in pulled), sorted(pulled)
    assert any(p.startswith("oci/unpacked/") for p in pulled), sorted(pulled)
    # Everything goes, the renders too, so the next preview must download and render again.
    RenderCache(cache).enforce_budget(0, grace=0)
    assert _downloads(cache) == {}

    again = preview(repo, base, head, "--config", str(operator))

    assert (again.code, again.report) == (first.code, first.report)
    assert _downloads(cache) == pulled


class _EvictedMidRead(DirectorySource):
    """Reads an unpacked artifact while another process evicts everything after its first file."""

    cache: Path
    reads = 0

    def read(self, path: str) -> bytes:
        content = super().read(path)
        type(self).reads += 1
        if type(self).reads == 1:
            evict.enforce(str(self.cache), 0, grace=0)
        return content


def test_an_artifact_evicted_while_it_is_read_is_pulled_again_and_read_whole(
    downloads: _Downloads, oci_registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {f"deploy/{name}.yaml": _version(name) for name in ("a", "b", "c")}
    push_artifact(oci_registry, "fleet/three", "1.0.0", files)
    source = f"""
        apiVersion: source.toolkit.fluxcd.io/v1
        kind: OCIRepository
        metadata: {{name: three, namespace: flux-system}}
        spec: {{url: "oci://{oci_registry.host}/fleet/three", ref: {{tag: "1.0.0"}}}}
    """
    ref = ObjectRef(FLUX_SOURCE_GROUP, "OCIRepository", "flux-system", "three")
    objects = {ref: Manifest("source.toolkit.fluxcd.io/v1", yamlio.load(source.encode()))}
    sources = ocisource.OCISources(POLICY, downloads.root / "oci")
    content = sources.repository(
        SourceRef("OCIRepository", "flux-system", "three"), objects, as_directory=True
    )
    monkeypatch.setattr(_EvictedMidRead, "cache", downloads.root, raising=False)
    monkeypatch.setattr(_EvictedMidRead, "reads", 0)
    monkeypatch.setattr(ocisource, "DirectorySource", _EvictedMidRead)

    view = sources.view(content)

    assert _EvictedMidRead.reads > len(files)  # the first walk was cut short, then redone
    assert {path: view.read(path).decode() for path in files} == files
    assert content.artifact.path.is_dir()  # unpacked again, under the same digest


@pytest.fixture(scope="module")
def oci_charts(
    oci_registry: Registry, helm_bin: Path, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """webapp 1.0.0 pushed with helm to oci://<registry>/charts; returns that URL."""
    root = tmp_path_factory.mktemp("oci-charts")
    chart = write_tree(
        root / "src" / "webapp",
        {
            "Chart.yaml": "apiVersion: v2\nname: webapp\nversion: 1.0.0\n",
            "templates/info.yaml": """
                apiVersion: v1
                kind: ConfigMap
                metadata: {name: '{{ .Release.Name }}-info'}
                data: {replicas: '{{ .Values.replicas }}'}
            """,
        },
    )
    run(
        [str(helm_bin), "package", str(chart), "--destination", str(root / "pkg")],
        limits=helm_limits(root / "home"),
    )
    push_chart(oci_registry, helm_bin, root / "pkg" / "webapp-1.0.0.tgz", "charts", root / "home")
    return f"oci://{oci_registry.host}/charts"


def _three_charts(chart_url: str, oci_charts: str, replicas: int) -> dict[str, str]:
    """HelmReleases from an HTTP chart repository, an OCI one and a chartRef to an OCI chart."""

    def release(name: str, chart: str) -> str:
        return f"""
            apiVersion: helm.toolkit.fluxcd.io/v2
            kind: HelmRelease
            metadata: {{name: {name}, namespace: flux-system}}
            spec:
              interval: 10m
              targetNamespace: {name}
              {chart}
              values: {{replicas: {replicas}}}
        """

    def from_repository(name: str) -> str:
        source = f"{{kind: HelmRepository, name: {name}}}"
        return f"chart: {{spec: {{chart: webapp, version: 1.0.0, sourceRef: {source}}}}}"

    return {
        f"{PROD}/sources.yaml": f"""
            apiVersion: source.toolkit.fluxcd.io/v1
            kind: HelmRepository
            metadata: {{name: http, namespace: flux-system}}
            spec: {{interval: 1h, url: "{chart_url}"}}
            ---
            apiVersion: source.toolkit.fluxcd.io/v1
            kind: HelmRepository
            metadata: {{name: oci, namespace: flux-system}}
            spec: {{interval: 1h, type: oci, url: "{oci_charts}"}}
            ---
            apiVersion: source.toolkit.fluxcd.io/v1
            kind: OCIRepository
            metadata: {{name: webapp, namespace: flux-system}}
            spec:
              interval: 10m
              url: {oci_charts}/webapp
              ref: {{tag: 1.0.0}}
              layerSelector:
                mediaType: application/vnd.cncf.helm.chart.content.v1.tar+gzip
                operation: copy
        """,
        f"{PROD}/web.yaml": release("web", from_repository("http")),
        f"{PROD}/api.yaml": release("api", from_repository("oci")),
        f"{PROD}/ref.yaml": release("ref", "chartRef: {kind: OCIRepository, name: webapp}"),
    }


def test_charts_evicted_between_their_download_and_helm_are_pulled_again(
    tmp_path: Path,
    chart_url: str,
    oci_charts: str,
    preview: Preview,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another process's pass empties the cache right after each chart is downloaded."""
    repo, base = new_repo(
        tmp_path / "repo", {**flux_cluster(), **_three_charts(chart_url, oci_charts, 1)}
    )
    head = commit(repo, _three_charts(chart_url, oci_charts, 2), "scale")
    operator = tmp_path / "operator.yaml"
    operator.write_text("fetch: {allowLoopback: true}\n")
    cache = tmp_path / "cache"
    expected = preview(repo, base, head, "--config", str(operator))
    assert expected.code == 1, expected.report + expected.stderr
    for name in ("web", "api", "ref"):
        unit = expected.unit(PROD, name)
        assert unit["error"] is None, expected.report
        assert unit["changes"], expected.report
    evict.enforce(str(cache), 0, grace=0)
    evicted: list[str] = []

    def evicting(name: str, pull: Callable[..., Any]) -> Callable[..., Any]:
        def pulled(*args: Any, **kwargs: Any) -> Any:
            found = pull(*args, **kwargs)
            if name not in evicted and kwargs.get("as_directory") is not True:
                evicted.append(name)
                evict.enforce(str(cache), 0, grace=0)
            return found

        return pulled

    for owner, method in (
        (ChartPuller, "pull"),
        (ocisource.OCISources, "helm_repository_chart"),
        (ocisource.OCISources, "repository"),
    ):
        monkeypatch.setattr(owner, method, evicting(method, getattr(owner, method)))

    again = preview(repo, base, head, "--config", str(operator))

    assert sorted(evicted) == ["helm_repository_chart", "pull", "repository"]
    assert (again.code, again.report) == (expected.code, expected.report)
