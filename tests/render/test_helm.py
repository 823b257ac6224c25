"""Rendering Flux HelmReleases with the real helm binary and a loopback chart repository."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from core.errors import RenderError
from core.fetch import FetchPolicy
from core.host.command import Limits, run
from core.host.files import DirectorySource
from core.model import Manifest, ObjectRef
from core.render import helm
from core.render.helm import chart_from_source, chart_inputs, merge_values
from core.secrets import Masker, is_token
from core.sources.helmrepo import ChartPuller
from core.units import HelmReleaseSpec, parse_unit
from tests.render.helpers import write_tree

CANARY = "canary-0b5d2a77-helm"


def render_helm_release(*args: Any, masker: Masker, **kwargs: Any) -> tuple[Manifest, ...]:
    """Render, and mask as the unit renderer does at its boundary."""
    return tuple(obj.masked(masker) for obj in helm.render_helm_release(*args, **kwargs))


CHART = {
    "values.yaml": """
        replicas: 1
        image: {repository: nginx, tag: "1.25"}
        password: ""
        config: {}
    """,
    "templates/deploy.yaml": """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: {{ .Release.Name }}
          labels: {app: web}
        spec:
          replicas: {{ .Values.replicas }}
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web}}
            spec:
              containers:
              - name: web
                image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
    """,
    "templates/config.yaml": """
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: {{ .Release.Name }}-config
          namespace: explicit
        data:
        {{- toYaml .Values.config | nindent 2 }}
    """,
    "templates/secret.yaml": """
        apiVersion: v1
        kind: Secret
        metadata: {name: {{ .Release.Name }}-secret}
        stringData:
          password: {{ .Values.password | quote }}
    """,
    "templates/role.yaml": """
        apiVersion: rbac.authorization.k8s.io/v1
        kind: ClusterRole
        metadata: {name: {{ .Release.Name }}-reader}
        rules: []
    """,
    "templates/widget.yaml": """
        apiVersion: example.com/v1
        kind: Widget
        metadata: {name: {{ .Release.Name }}}
    """,
    "templates/hook.yaml": """
        apiVersion: batch/v1
        kind: Job
        metadata:
          name: migrate
          annotations: {"helm.sh/hook": pre-install}
        spec: {template: {spec: {restartPolicy: Never, containers: [{name: m, image: busybox}]}}}
    """,
    "templates/tests/test.yaml": """
        apiVersion: v1
        kind: Pod
        metadata:
          name: smoke
          annotations: {"helm.sh/hook": test}
        spec: {containers: [{name: t, image: busybox}]}
    """,
    "crds/widget.yaml": """
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata: {name: widgets.example.com}
        spec:
          group: example.com
          scope: Namespaced
          names: {kind: Widget, plural: widgets, singular: widget}
          versions:
          - name: v1
            served: true
            storage: true
            schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
    """,
}


def write_chart(root: Path, version: str) -> Path:
    files = {
        "Chart.yaml": f"apiVersion: v2\nname: webapp\nversion: {version}\n",
        **CHART,
    }
    return write_tree(root, files)


def helm_limits(home: Path) -> Limits:
    return Limits(
        env={
            "HOME": str(home),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }
    )


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve `directory` over HTTP on the loopback interface."""
    handler = functools.partial(_Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def build_repository(helm_bin: Path, root: Path, versions: tuple[str, ...]) -> Path:
    """Package the chart in each version and index them into `root/repo`."""
    repo = root / "repo"
    repo.mkdir(parents=True)
    for version in versions:
        chart = write_chart(root / f"src-{version}" / "webapp", version)
        run(
            [str(helm_bin), "package", str(chart), "--destination", str(repo)],
            limits=helm_limits(root / "home"),
        )
    run([str(helm_bin), "repo", "index", str(repo)], limits=helm_limits(root / "home"))
    return repo


@pytest.fixture(scope="module")
def chart_repo(helm_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("charts")
    with serve(build_repository(helm_bin, root, ("1.0.0", "1.1.0", "2.0.0"))) as url:
        yield url


def hr_spec(**spec: Any) -> HelmReleaseSpec:
    obj = {
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {"name": "web", "namespace": "flux-system"},
        "spec": {
            "interval": "10m",
            "targetNamespace": "apps",
            "releaseName": "web",
            "chart": {
                "spec": {
                    "chart": "webapp",
                    "version": ">=1.0.0 <2.0.0",
                    "sourceRef": {"kind": "HelmRepository", "name": "charts"},
                }
            },
            **spec,
        },
    }
    parsed = parse_unit(obj, file="apps/web.yaml")
    assert isinstance(parsed, HelmReleaseSpec)
    return parsed


def pull(url: str, version: str | None, cache_dir: Path) -> Path:
    """Download the test chart from a loopback chart repository."""
    port = url.rsplit(":", 1)[1].split("/", 1)[0]
    policy = FetchPolicy(allowed_hosts=frozenset({f"127.0.0.1:{port}"}), allow_loopback=True)
    return ChartPuller(cache_dir).pull(url, "webapp", version, policy)


def by_ref(manifests: tuple[Manifest, ...]) -> dict[ObjectRef, Manifest]:
    return {m.ref: m for m in manifests}


def test_merge_values_in_flux_order() -> None:
    documents = [
        ({"replicas": 2, "image": {"repository": "a", "tag": "1"}}, None),
        ({"image": {"tag": "2"}, "config": {"k": "v"}}, None),
        ("from-target", "config.nested\\.key"),
        ("7", "list[1].value"),
        (None, None),
    ]
    merged = merge_values(documents, {"replicas": 5, "config": {"inline": "yes"}})
    assert merged == {
        "replicas": 5,
        "image": {"repository": "a", "tag": "2"},
        "config": {"k": "v", "nested.key": "from-target", "inline": "yes"},
        "list": [None, {"value": "7"}],
    }


def test_render_from_a_helm_repository(chart_repo: str, helm_bin: Path, tmp_path: Path) -> None:
    spec = hr_spec(values={"replicas": 3, "config": {"mode": "fast"}})
    chart = pull(chart_repo, spec.version, tmp_path / "c")
    values = merge_values([({"password": CANARY, "image": {"tag": "1.26"}}, None)], spec.values)
    work = tmp_path / "work"
    work.mkdir()
    manifests = render_helm_release(
        spec, chart, values, helm=helm_bin, workdir=work, masker=Masker(b"h" * 32)
    )
    objects = by_ref(manifests)
    assert set(objects) == {
        ObjectRef("apps", "Deployment", "apps", "web"),
        ObjectRef("", "ConfigMap", "explicit", "web-config"),
        ObjectRef("", "Secret", "apps", "web-secret"),
        ObjectRef("rbac.authorization.k8s.io", "ClusterRole", "", "web-reader"),
        ObjectRef("example.com", "Widget", "apps", "web"),
        ObjectRef("apiextensions.k8s.io", "CustomResourceDefinition", "", "widgets.example.com"),
    }
    deploy = objects[ObjectRef("apps", "Deployment", "apps", "web")].body
    assert deploy["spec"]["replicas"] == 3
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"
    assert deploy["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    for manifest in manifests:
        labels = manifest.body["metadata"]["labels"]
        assert labels["helm.toolkit.fluxcd.io/name"] == "web"
        assert labels["helm.toolkit.fluxcd.io/namespace"] == "flux-system"
        assert manifest.source == "apps/web.yaml"
    config = objects[ObjectRef("", "ConfigMap", "explicit", "web-config")].body
    assert config["data"] == {"mode": "fast"}
    secret = objects[ObjectRef("", "Secret", "apps", "web-secret")].body
    assert is_token(secret["data"]["password"])
    assert CANARY not in repr([m.body for m in manifests])
    assert str(work) not in repr([m.body for m in manifests])


def test_render_from_a_git_repository_chart(helm_bin: Path, tmp_path: Path) -> None:
    write_chart(tmp_path / "repo" / "charts" / "webapp", "0.1.0")
    write_tree(tmp_path / "repo", {"charts/other/Chart.yaml": "apiVersion: v2\nname: o\n"})
    source = DirectorySource(tmp_path / "repo")
    inputs = chart_inputs(source, "./charts/webapp")
    assert "charts/webapp/Chart.yaml" in inputs
    assert "charts/webapp/templates/deploy.yaml" in inputs
    assert "charts/webapp/crds/widget.yaml" in inputs
    assert not any(path.startswith("charts/other") for path in inputs)
    work = tmp_path / "work"
    work.mkdir()
    chart = chart_from_source(source, "./charts/webapp", work / "chart")
    spec = hr_spec(targetNamespace="team", releaseName="")
    manifests = render_helm_release(
        spec, chart, {}, helm=helm_bin, workdir=work, masker=Masker(b"h" * 32)
    )
    # Every object of the chart, under the target namespace and the default release name
    # (<targetNamespace>-<name>); the hook and the test Pod are left out, as Flux leaves them.
    assert {m.ref for m in manifests} == {
        ObjectRef("apps", "Deployment", "team", "team-web"),
        ObjectRef("", "ConfigMap", "explicit", "team-web-config"),
        ObjectRef("", "Secret", "team", "team-web-secret"),
        ObjectRef("rbac.authorization.k8s.io", "ClusterRole", "", "team-web-reader"),
        ObjectRef("example.com", "Widget", "team", "team-web"),
        ObjectRef("apiextensions.k8s.io", "CustomResourceDefinition", "", "widgets.example.com"),
    }
    assert all(m.source == "apps/web.yaml" for m in manifests)


def test_post_renderer_kustomize_patches_and_images(
    chart_repo: str, helm_bin: Path, kustomize_bin: Path, tmp_path: Path
) -> None:
    spec = hr_spec(
        postRenderers=[
            {
                "kustomize": {
                    "patches": [
                        {
                            "target": {"kind": "Deployment"},
                            "patch": "- op: replace\n  path: /spec/replicas\n  value: 9\n",
                        }
                    ],
                    "images": [{"name": "nginx", "newName": "mirror/nginx"}],
                }
            }
        ]
    )
    chart = pull(chart_repo, "1.0.0", tmp_path / "c")
    work = tmp_path / "work"
    work.mkdir()
    manifests = render_helm_release(
        spec,
        chart,
        {},
        helm=helm_bin,
        workdir=work,
        masker=Masker(b"h" * 32),
        kustomize=kustomize_bin,
    )
    deploy = by_ref(manifests)[ObjectRef("apps", "Deployment", "apps", "web")].body
    assert deploy["spec"]["replicas"] == 9
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "mirror/nginx:1.25"
    assert deploy["metadata"]["labels"]["helm.toolkit.fluxcd.io/name"] == "web"


def test_unsupported_post_renderer_fails_closed(
    chart_repo: str, helm_bin: Path, tmp_path: Path
) -> None:
    chart = pull(chart_repo, "1.0.0", tmp_path / "c")
    work = tmp_path / "work"
    work.mkdir()
    for renderers, message in (
        ([{"exec": {"command": "sed"}}], "not supported"),
        ([{"kustomize": {"images": [{"name": "x"}]}}], "needs kustomize"),
    ):
        with pytest.raises(RenderError, match=message):
            render_helm_release(
                hr_spec(postRenderers=renderers),
                chart,
                {},
                helm=helm_bin,
                workdir=work,
                masker=Masker(b"h" * 32),
            )


def test_template_errors_hide_the_workdir(helm_bin: Path, tmp_path: Path) -> None:
    chart = write_tree(
        tmp_path / "chart",
        {
            "Chart.yaml": "apiVersion: v2\nname: broken\nversion: 0.1.0\n",
            "templates/x.yaml": '{{ fail "deliberate" }}\n',
        },
    )
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(RenderError) as caught:
        render_helm_release(
            hr_spec(), chart, {}, helm=helm_bin, workdir=work, masker=Masker(b"h" * 32)
        )
    assert "deliberate" in str(caught.value)
    assert str(work) not in str(caught.value)


def test_chart_crds_are_taken_out_of_the_release(helm_bin: Path, tmp_path: Path) -> None:
    write_chart(tmp_path / "repo" / "charts" / "webapp", "0.1.0")
    write_tree(
        tmp_path / "repo" / "charts" / "webapp",
        {
            # A second document in a crds file has no `# Source:` line of its own; a non-CRD
            # there is dropped, as helm-controller drops it.
            "crds/more.yaml": """
                apiVersion: apiextensions.k8s.io/v1
                kind: CustomResourceDefinition
                metadata: {name: gadgets.example.com}
                spec:
                  group: example.com
                  scope: Cluster
                  names: {kind: Gadget, plural: gadgets}
                  versions: [{name: v1, served: true, storage: true}]
                ---
                apiVersion: v1
                kind: ConfigMap
                metadata: {name: not-a-crd}
            """,
            # A template under a directory named crds is an ordinary template.
            "templates/crds/templated.yaml": """
                apiVersion: apiextensions.k8s.io/v1
                kind: CustomResourceDefinition
                metadata: {name: templated.example.com}
                spec:
                  group: example.com
                  scope: Namespaced
                  names: {kind: Templated, plural: templated}
                  versions: [{name: v1, served: true, storage: true}]
            """,
        },
    )
    source = DirectorySource(tmp_path / "repo")
    work = tmp_path / "work"
    work.mkdir()
    chart = chart_from_source(source, "./charts/webapp", work / "chart")
    chart_crds: set[ObjectRef] = set()
    manifests = by_ref(
        render_helm_release(
            hr_spec(targetNamespace="team"),
            chart,
            {},
            helm=helm_bin,
            workdir=work,
            masker=Masker(b"h" * 32),
            chart_crds=chart_crds,
        )
    )

    crd = "apiextensions.k8s.io", "CustomResourceDefinition", ""
    assert {ref.name for ref in chart_crds} == {"widgets.example.com", "gadgets.example.com"}
    templated = manifests[ObjectRef(*crd, "templated.example.com")]
    assert templated.ref not in chart_crds
    assert "helm.toolkit.fluxcd.io/name" in templated.body["metadata"]["labels"]
    widget_crd = manifests[ObjectRef(*crd, "widgets.example.com")]
    assert widget_crd.body["metadata"]["labels"]["helm.toolkit.fluxcd.io/name"] == "web"
    assert not any(ref.name == "not-a-crd" for ref in manifests)
    assert ObjectRef("example.com", "Widget", "team", "web") in manifests
