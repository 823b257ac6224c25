"""OCI sources previewed end to end against a real registry (with token authentication).

Covers a Kustomization over an OCIRepository (tag, semver, digest; layerSelector extract and
copy), a HelmRelease `chartRef` to an OCIRepository holding a chart (with helm-controller's digest
in the chart version) and to a HelmChart, a HelmRelease from a `type: oci` HelmRepository, a tag
or semver change between base and head showing as a change, and the failures: a registry a pull
request introduces that is not allowed, and one that cannot be reached.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.host.command import run
from devenv.ports import refusing_port
from devenv.registry import Registry
from tests.fixtures.registry import RegistryAPI, push_artifact, push_chart
from tests.preview.conftest import Outcome, Preview
from tests.preview.gitrepo import commit, configmap, flux_cluster, new_repo
from tests.render.helpers import write_tree
from tests.render.test_helm import helm_limits

PROD = "clusters/production"


def _app(version: str, replicas: int) -> dict[str, str]:
    return {
        "deploy/kustomization.yaml": "resources: [app.yaml]\n",
        "deploy/app.yaml": (
            "apiVersion: apps/v1\nkind: Deployment\n"
            "metadata: {name: app, namespace: apps}\n"
            f"spec:\n  replicas: {replicas}\n"
            "  selector: {matchLabels: {app: app}}\n"
            "  template:\n    metadata: {labels: {app: app}}\n"
            f"    spec: {{containers: [{{name: app, image: 'nginx:{version}'}}]}}\n"
        ),
    }


@pytest.fixture
def loopback(tmp_path: Path) -> list[str]:
    """Arguments for an operator configuration that opens loopback (the registry lives there)."""
    config = tmp_path / "operator.yaml"
    config.write_text("fetch: {allowLoopback: true}\n")
    return ["--config", str(config)]


@pytest.fixture(scope="module")
def artifacts(oci_registry: Registry) -> dict[str, str]:
    """fleet/app artifacts 1.0.0 (1 replica), 1.1.0 (2) and 2.0.0 (3), by tag -> digest."""
    return {
        tag: push_artifact(oci_registry, "fleet/app", tag, _app(tag, replicas))
        for tag, replicas in (("1.0.0", 1), ("1.1.0", 2), ("2.0.0", 3))
    }


@pytest.fixture(scope="module")
def charts(oci_registry: Registry, helm_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """webapp 1.0.0 and 1.1.0 pushed with helm to oci://<registry>/charts; returns that URL."""
    root = tmp_path_factory.mktemp("oci-charts")
    for version in ("1.0.0", "1.1.0"):
        chart = write_tree(
            root / f"src-{version}" / "webapp",
            {
                "Chart.yaml": f"apiVersion: v2\nname: webapp\nversion: {version}\n",
                "templates/info.yaml": """
                    apiVersion: v1
                    kind: ConfigMap
                    metadata: {name: '{{ .Release.Name }}-info'}
                    data:
                      chart: '{{ .Chart.Name }}-{{ .Chart.Version }}'
                      replicas: '{{ .Values.replicas }}'
                """,
            },
        )
        run(
            [str(helm_bin), "package", str(chart), "--destination", str(root / "pkg")],
            limits=helm_limits(root / "home"),
        )
        push_chart(
            oci_registry, helm_bin, root / "pkg" / f"webapp-{version}.tgz", "charts", root / "home"
        )
    return f"oci://{oci_registry.host}/charts"


def _oci_source(url: str, ref: str, extra: str = "") -> str:
    return f"""
        apiVersion: source.toolkit.fluxcd.io/v1
        kind: OCIRepository
        metadata: {{name: app, namespace: flux-system}}
        spec:
          interval: 5m
          url: {url}
          ref: {ref}
          {extra}
    """


_APP_KS = """
    apiVersion: kustomize.toolkit.fluxcd.io/v1
    kind: Kustomization
    metadata: {name: app, namespace: flux-system}
    spec:
      interval: 10m
      path: ./deploy
      prune: true
      sourceRef: {kind: OCIRepository, name: app}
"""


def _deployment_fields(out: Outcome) -> list[list[str]]:
    unit = out.unit(PROD, "app")
    return [c["fields"] for c in unit["changes"] if c["kind"] == "Deployment"]


@pytest.mark.parametrize(
    ("base_ref", "head_ref"),
    [
        ("{tag: 1.0.0}", "{tag: 1.1.0}"),
        ('{semver: "~1.0"}', '{semver: ">=1.1.0 <2.0.0"}'),
    ],
    ids=["tag", "semver"],
)
def test_a_kustomization_over_an_oci_artifact_shows_the_version_change(
    tmp_path: Path,
    oci_registry: Registry,
    artifacts: dict[str, str],
    preview: Preview,
    loopback: list[str],
    base_ref: str,
    head_ref: str,
) -> None:
    url = f"oci://{oci_registry.host}/fleet/app"
    repo, base = new_repo(
        tmp_path / "repo",
        {
            **flux_cluster(),
            f"{PROD}/app-source.yaml": _oci_source(url, base_ref),
            f"{PROD}/app.yaml": _APP_KS,
        },
    )
    head = commit(repo, {f"{PROD}/app-source.yaml": _oci_source(url, head_ref)}, "move app to 1.1")

    out = preview(repo, base, head, *loopback)

    assert out.code == 1, out.report + out.stderr
    assert _deployment_fields(out) == [["spec.replicas", "spec.template.spec.containers[0].image"]]
    deployment = next(c for c in out.unit(PROD, "app")["changes"] if c["kind"] == "Deployment")
    assert "+      - image: nginx:1.1.0" in deployment["diff"]


def test_digest_and_layer_selector_copy_render_the_same_content(
    tmp_path: Path,
    oci_registry: Registry,
    artifacts: dict[str, str],
    preview: Preview,
    loopback: list[str],
) -> None:
    url = f"oci://{oci_registry.host}/fleet/app"
    by_tag = _oci_source(url, "{tag: 2.0.0}")
    by_digest_copy = _oci_source(
        url,
        f"{{digest: '{artifacts['2.0.0']}', tag: 1.0.0}}",
        "layerSelector: {mediaType: application/vnd.cncf.flux.content.v1.tar+gzip, "
        "operation: copy}",
    )
    repo, base = new_repo(
        tmp_path / "repo",
        {**flux_cluster(), f"{PROD}/app-source.yaml": by_tag, f"{PROD}/app.yaml": _APP_KS},
    )
    head = commit(repo, {f"{PROD}/app-source.yaml": by_digest_copy}, "pin app by digest")

    out = preview(repo, base, head, *loopback)

    # The digest wins over the tag and names the same content: only the source object changes.
    assert out.code == 1, out.report + out.stderr
    assert out.unit(PROD, "app")["status"] == "unchanged"
    assert [c[2:4] for c in out.changes()] == [("update", "OCIRepository")]


def test_ignore_rules_apply_to_an_extracted_artifact(
    tmp_path: Path, oci_registry: Registry, preview: Preview, loopback: list[str]
) -> None:
    # No kustomization.yaml: Flux generates one from every YAML file the artifact keeps, and a
    # file that is not a Kubernetes object would fail it unless an ignore rule drops it.
    push_artifact(
        oci_registry,
        "fleet/ignored",
        "1.0.0",
        {
            "deploy/.sourceignore": "notes.yaml\n",
            "deploy/notes.yaml": "title: not a Kubernetes object\n",
            "deploy/app.yaml": _app("1.0.0", 1)["deploy/app.yaml"],
            "deploy/debug.yaml": "apiVersion: v1\nkind: ConfigMap\n"
            "metadata: {name: debug, namespace: apps}\n",
        },
    )
    url = f"oci://{oci_registry.host}/fleet/ignored"
    repo, base = new_repo(
        tmp_path / "repo",
        {
            **flux_cluster(),
            f"{PROD}/app-source.yaml": _oci_source(url, "{tag: 1.0.0}"),
            f"{PROD}/app.yaml": _APP_KS,
        },
    )
    head = commit(
        repo,
        {f"{PROD}/app-source.yaml": _oci_source(url, "{tag: 1.0.0}", "ignore: debug.yaml")},
        "stop shipping the debug ConfigMap",
    )

    copied = commit(
        repo,
        {
            f"{PROD}/app-source.yaml": _oci_source(
                url,
                "{tag: 1.0.0}",
                "layerSelector: {mediaType: application/vnd.cncf.flux.content.v1.tar+gzip, "
                "operation: copy}",
            )
        },
        "take the layer as it is",
    )

    out = preview(repo, base, head, *loopback)
    unfiltered = preview(repo, head, copied, *loopback)

    assert out.code == 1, out.report + out.stderr
    assert out.unit(PROD, "app")["status"] == "rendered"
    assert [c[2:] for c in out.changes() if c[1] == "app"] == [
        ("delete", "ConfigMap", "apps/debug")
    ]
    # A copied layer is stored unfiltered: the generated kustomization meets notes.yaml.
    assert unfiltered.code == 2
    assert "deploy/notes.yaml" in unfiltered.unit(PROD, "app")["error"]


def test_a_root_sourced_from_oci_is_previewed_from_the_repository(
    tmp_path: Path, preview: Preview
) -> None:
    # CI pushes this repository as the artifact the cluster's root OCIRepository pulls: the
    # pull request's files are what will be pushed, so they are what is previewed.
    bootstrap = """
        apiVersion: source.toolkit.fluxcd.io/v1
        kind: OCIRepository
        metadata: {name: flux-system, namespace: flux-system}
        spec: {interval: 1m, url: "oci://registry.invalid/fleet", ref: {tag: latest}}
        ---
        apiVersion: kustomize.toolkit.fluxcd.io/v1
        kind: Kustomization
        metadata: {name: flux-system, namespace: flux-system}
        spec:
          interval: 10m
          path: ./clusters/production
          prune: true
          sourceRef: {kind: OCIRepository, name: flux-system}
    """
    repo, base = new_repo(
        tmp_path / "repo",
        {
            **flux_cluster(),
            f"{PROD}/flux-system/gotk-sync.yaml": bootstrap,
            f"{PROD}/settings.yaml": configmap("settings", "apps", mode="slow"),
        },
    )
    head = commit(
        repo, {f"{PROD}/settings.yaml": configmap("settings", "apps", mode="fast")}, "faster"
    )

    out = preview(repo, base, head)

    assert out.code == 1, out.report + out.stderr
    assert out.changes() == [(PROD, "flux-system", "update", "ConfigMap", "apps/settings")]


def _release(chart_spec: str, name: str = "web") -> str:
    return f"""
        apiVersion: helm.toolkit.fluxcd.io/v2
        kind: HelmRelease
        metadata: {{name: {name}, namespace: flux-system}}
        spec:
          interval: 10m
          targetNamespace: apps
          releaseName: {name}
          {chart_spec}
          values: {{replicas: 2}}
    """


def test_chart_ref_to_an_oci_repository_tracks_the_digest(
    tmp_path: Path, oci_registry: Registry, charts: str, preview: Preview, loopback: list[str]
) -> None:
    def source(tag: str) -> str:
        return _chart_source(charts, f"{{tag: {tag}}}", "copy")

    chart_ref = "chartRef: {kind: OCIRepository, name: webapp}"
    repo, base = new_repo(
        tmp_path / "repo",
        {
            **flux_cluster(),
            f"{PROD}/webapp-source.yaml": source("1.0.0"),
            f"{PROD}/web.yaml": _release(chart_ref),
        },
    )
    head = commit(repo, {f"{PROD}/webapp-source.yaml": source("1.1.0")}, "webapp 1.1.0")

    out = preview(repo, base, head, *loopback)

    assert out.code == 1, out.report + out.stderr
    web = out.unit(PROD, "web")
    assert web["status"] == "rendered", web
    info = next(c for c in web["changes"] if c["kind"] == "ConfigMap")
    # helm-controller sets the chart version to <version>+<12 hex of the digest>.
    assert re.search(r"^-  chart: webapp-1\.0\.0\+[0-9a-f]{12}$", info["diff"], re.M), info["diff"]
    assert re.search(r"^\+  chart: webapp-1\.1\.0\+[0-9a-f]{12}$", info["diff"], re.M), info["diff"]


def _chart_source(charts: str, ref: str, operation: str) -> str:
    return f"""
        apiVersion: source.toolkit.fluxcd.io/v1
        kind: OCIRepository
        metadata: {{name: webapp, namespace: flux-system}}
        spec:
          interval: 10m
          url: {charts}/webapp
          ref: {ref}
          layerSelector:
            mediaType: application/vnd.cncf.helm.chart.content.v1.tar+gzip
            operation: {operation}
    """


def test_chart_ref_with_an_extracted_chart_and_a_tag_that_is_not_its_version(
    tmp_path: Path, oci_registry: Registry, charts: str, preview: Preview, loopback: list[str]
) -> None:
    RegistryAPI(oci_registry, "charts/webapp").retag("1.0.0", "1.2.0")
    chart_ref = "chartRef: {kind: OCIRepository, name: webapp}"
    repo, base = new_repo(tmp_path / "repo", {**flux_cluster()})
    added = commit(
        repo,
        {
            f"{PROD}/webapp-source.yaml": _chart_source(charts, '{semver: "1.0.x"}', "extract"),
            f"{PROD}/web.yaml": _release(chart_ref),
        },
        "add web",
    )
    retagged = commit(
        repo,
        {f"{PROD}/webapp-source.yaml": _chart_source(charts, "{tag: 1.2.0}", "copy")},
        "follow a tag that holds another chart version",
    )

    # The registry is new in `added`: the operator allows it.
    out = preview(repo, base, added, *loopback, "--allow-host", oci_registry.host)
    mismatch = preview(repo, added, retagged, *loopback)

    assert out.code == 1, out.report + out.stderr
    web = out.unit(PROD, "web")
    assert web["status"] == "added"
    info = next(c for c in web["changes"] if c["kind"] == "ConfigMap")
    assert re.search(r"^\+  chart: webapp-1\.0\.0\+[0-9a-f]{12}$", info["diff"], re.M), info["diff"]
    # helm-controller refuses a tag that is not the chart's version; so does the preview.
    assert mismatch.code == 2
    assert (
        "artifact revision 1.2.0 does not match chart version 1.0.0"
        in (mismatch.unit(PROD, "web")["error"])
    )


def test_chart_ref_to_a_helm_chart_and_an_oci_helm_repository(
    tmp_path: Path, oci_registry: Registry, charts: str, preview: Preview, loopback: list[str]
) -> None:
    helm_repository = f"""
        apiVersion: source.toolkit.fluxcd.io/v1
        kind: HelmRepository
        metadata: {{name: charts, namespace: flux-system}}
        spec: {{interval: 1h, type: oci, url: "{charts}"}}
    """

    def helm_chart(version: str) -> str:
        return f"""
            apiVersion: source.toolkit.fluxcd.io/v1
            kind: HelmChart
            metadata: {{name: webapp, namespace: flux-system}}
            spec:
              interval: 10m
              chart: webapp
              version: "{version}"
              sourceRef: {{kind: HelmRepository, name: charts}}
        """

    def chart_spec(version: str) -> str:
        return (
            "chart: {spec: {chart: webapp, version: '" + version + "', "
            "sourceRef: {kind: HelmRepository, name: charts}}}"
        )

    repo, base = new_repo(
        tmp_path / "repo",
        {
            **flux_cluster(),
            f"{PROD}/charts.yaml": helm_repository,
            f"{PROD}/webapp-chart.yaml": helm_chart("1.0.x"),
            f"{PROD}/web.yaml": _release("chartRef: {kind: HelmChart, name: webapp}"),
            f"{PROD}/api.yaml": _release(chart_spec("1.0.0"), name="api"),
        },
    )
    head = commit(
        repo,
        {
            f"{PROD}/webapp-chart.yaml": helm_chart("~1.1.0"),
            f"{PROD}/api.yaml": _release(chart_spec("~1.1"), name="api"),
        },
        "webapp 1.1 everywhere",
    )

    out = preview(repo, base, head, *loopback)

    assert out.code == 1, out.report + out.stderr
    for name in ("web", "api"):
        changes = out.unit(PROD, name)["changes"]
        info = next(c for c in changes if c["kind"] == "ConfigMap")
        # Charts from a HelmChart or a HelmRepository get no digest in their version.
        assert re.search(r"^-  chart: webapp-1\.0\.0$", info["diff"], re.M), info["diff"]
        assert re.search(r"^\+  chart: webapp-1\.1\.0$", info["diff"], re.M), info["diff"]


def test_a_registry_the_pull_request_introduces_must_be_allowed(
    tmp_path: Path,
    oci_registry: Registry,
    artifacts: dict[str, str],
    preview: Preview,
    loopback: list[str],
) -> None:
    url = f"oci://{oci_registry.host}/fleet/app"
    repo, base = new_repo(tmp_path / "repo", {**flux_cluster()})
    head = commit(
        repo,
        {f"{PROD}/app-source.yaml": _oci_source(url, "{tag: 1.0.0}"), f"{PROD}/app.yaml": _APP_KS},
        "add app from a new registry",
    )

    refused = preview(repo, base, head, *loopback)
    allowed = preview(repo, base, head, *loopback, "--allow-host", oci_registry.host)

    assert refused.code == 2
    error = refused.unit(PROD, "app")["error"]
    assert f"refused: host {oci_registry.host} is not on the allow-list" in error
    assert "OCIRepository/flux-system/app" in error
    assert allowed.code == 1, allowed.report + allowed.stderr
    assert allowed.unit(PROD, "app")["status"] == "added"


@pytest.fixture
def refused_port() -> Iterator[int]:
    with refusing_port() as port:
        yield port


def test_an_unreachable_registry_is_an_unavailable_source(
    tmp_path: Path,
    artifacts: dict[str, str],
    preview: Preview,
    loopback: list[str],
    refused_port: int,
) -> None:
    port = refused_port
    gone = f"oci://127.0.0.1:{port}/fleet/app"
    repo, base = new_repo(tmp_path / "repo", {**flux_cluster()})
    head = commit(
        repo,
        {f"{PROD}/app-source.yaml": _oci_source(gone, "{tag: 1.0.0}"), f"{PROD}/app.yaml": _APP_KS},
        "add app",
    )

    out = preview(repo, base, head, *loopback, "--allow-host", f"127.0.0.1:{port}")

    # Unreachable is the network's condition, not the repository's: reported as unavailable
    # (failing the preview by default, as for chart repositories).
    assert out.code == 2
    app = out.unit(PROD, "app")
    assert app["status"] == "unavailable"
    assert app["unavailableSource"].startswith(f"http://127.0.0.1:{port}/v2/fleet/app/")
    assert "OCIRepository/flux-system/app" in app["error"]
    assert "connection refused" in app["error"]
    skipped = preview(
        repo,
        base,
        head,
        *loopback,
        "--allow-host",
        f"127.0.0.1:{port}",
        "--unavailable-sources",
        "skip",
    )
    # Skipped: the preview does not fail; the source objects it adds are still changes.
    assert (skipped.code, skipped.data["failed"]) == (1, False), skipped.report
    assert skipped.unit(PROD, "app")["status"] == "unavailable"
