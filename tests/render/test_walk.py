"""The set of repository files a kustomize build reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import InputError
from core.host.files import DirectorySource
from core.render.walk import kustomize_inputs
from tests.render.helpers import write_tree

DEPLOY = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec: {template: {spec: {containers: [{name: web, image: nginx}]}}}
"""


def test_overlay_inputs_cover_every_referenced_file(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "apps/base/kustomization.yaml": "resources: [deploy.yaml]\n",
            "apps/base/deploy.yaml": DEPLOY,
            "apps/base/unused.yaml": DEPLOY,
            "apps/comp/kustomization.yaml": "kind: Component\npatches: [{path: p.yaml}]\n",
            "apps/comp/p.yaml": "[]\n",
            "apps/patches/replicas.yaml": "[]\n",
            "apps/prod/kustomization.yaml": """
                resources: [../base, ns.yaml]
                components: [../comp]
                patches:
                - path: ../patches/replicas.yaml
                  target: {kind: Deployment}
                patchesStrategicMerge: [smp.yaml]
                patchesJson6902: [{path: j.yaml, target: {kind: Deployment, name: web}}]
                configMapGenerator:
                - name: cfg
                  files: [app.conf, key=other.conf]
                  envs: [a.env]
                secretGenerator:
                - name: sec
                  env: s.env
                replacements: [{path: r.yaml}]
                openapi: {path: schema.json}
                crds: [crd.json]
                configurations: [conf.yaml]
            """,
            "apps/prod/ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: prod}\n",
            "apps/other/untouched.yaml": DEPLOY,
        },
    )
    inputs = kustomize_inputs(DirectorySource(tmp_path), "apps/prod")
    assert inputs == {
        "apps/prod/kustomization.yaml",
        "apps/prod/ns.yaml",
        "apps/base/kustomization.yaml",
        "apps/base/deploy.yaml",
        "apps/comp/kustomization.yaml",
        "apps/comp/p.yaml",
        "apps/patches/replicas.yaml",
        "apps/prod/smp.yaml",
        "apps/prod/j.yaml",
        "apps/prod/app.conf",
        "apps/prod/other.conf",
        "apps/prod/a.env",
        "apps/prod/s.env",
        "apps/prod/r.yaml",
        "apps/prod/schema.json",
        "apps/prod/crd.json",
        "apps/prod/conf.yaml",
    }
    assert "apps/other/untouched.yaml" not in inputs
    assert "apps/base/unused.yaml" not in inputs


def test_generated_kustomization_takes_all_yaml_and_stops_at_nested_kustomizations(
    tmp_path: Path,
) -> None:
    write_tree(
        tmp_path,
        {
            "plain/a.yaml": DEPLOY,
            "plain/sub/b.yml": DEPLOY,
            "plain/README.md": "not read",
            "plain/.github/workflow.yaml": "on: push",
            "plain/nested/kustomization.yaml": "resources: [c.yaml]\n",
            "plain/nested/c.yaml": DEPLOY,
            "plain/nested/stray.yaml": DEPLOY,
        },
    )
    inputs = kustomize_inputs(DirectorySource(tmp_path), "plain")
    assert inputs == {
        "plain/a.yaml",
        "plain/sub/b.yml",
        "plain/nested/kustomization.yaml",
        "plain/nested/c.yaml",
    }


def test_extra_components_are_relative_to_the_path(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "app/kustomization.yaml": "resources: []\n",
            "comp/kustomization.yaml": "kind: Component\nresources: [x.yaml]\n",
            "comp/x.yaml": DEPLOY,
        },
    )
    inputs = kustomize_inputs(DirectorySource(tmp_path), "app", extra_components=["../comp"])
    assert {"comp/kustomization.yaml", "comp/x.yaml"} <= inputs


@pytest.mark.parametrize(
    "entry",
    [
        "https://github.com/org/repo//deploy?ref=v1",
        "github.com/org/repo/deploy?ref=main",
        "git@github.com:org/repo.git",
        "git::https://example.com/repo.git",
    ],
)
def test_remote_bases_are_refused_naming_file_and_field(tmp_path: Path, entry: str) -> None:
    write_tree(tmp_path, {"app/kustomization.yaml": f"resources: ['{entry}']\n"})
    with pytest.raises(InputError) as caught:
        kustomize_inputs(DirectorySource(tmp_path), "app")
    assert caught.value.file == "app/kustomization.yaml"
    assert caught.value.field == "resources[0]"
    assert "remote" in str(caught.value)


def test_allow_listed_remote_base_passes(tmp_path: Path) -> None:
    url = "https://github.com/org/repo//deploy?ref=v1"
    write_tree(tmp_path, {"app/kustomization.yaml": f"resources: ['{url}']\n"})
    inputs = kustomize_inputs(
        DirectorySource(tmp_path), "app", allowed_remotes=["https://github.com/org/"]
    )
    assert inputs == {"app/kustomization.yaml"}


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("resources: [../../outside]\n", "resources[0]"),
        ("patches: [{path: /etc/passwd}]\n", "patches[0].path"),
        (
            "configMapGenerator: [{name: x, files: [k=../../../x]}]\n",
            "configMapGenerator[0].files[0]",
        ),
    ],
)
def test_paths_leaving_the_repository_are_refused(tmp_path: Path, text: str, field: str) -> None:
    write_tree(tmp_path, {"app/kustomization.yaml": text})
    with pytest.raises(InputError) as caught:
        kustomize_inputs(DirectorySource(tmp_path), "app")
    assert caught.value.field == field


def test_plugins_are_refused(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "app/kustomization.yaml": "transformers: [fn.yaml]\n",
            "app/fn.yaml": """
                apiVersion: example.com/v1
                kind: Exec
                metadata:
                  name: x
                  annotations:
                    config.kubernetes.io/function: |
                      exec: {path: ./run.sh}
            """,
        },
    )
    with pytest.raises(InputError, match="not allowed") as caught:
        kustomize_inputs(DirectorySource(tmp_path), "app")
    assert caught.value.field == "transformers[0]"


def test_builtin_transformer_configs_are_inputs(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "app/kustomization.yaml": "transformers: [labels.yaml]\n",
            "app/labels.yaml": """
                apiVersion: builtin
                kind: LabelTransformer
                metadata: {name: l}
                labels: {team: a}
                fieldSpecs: [{path: metadata/labels, create: true}]
            """,
        },
    )
    assert kustomize_inputs(DirectorySource(tmp_path), "app") == {
        "app/kustomization.yaml",
        "app/labels.yaml",
    }


def test_helm_chart_inflation_is_refused(tmp_path: Path) -> None:
    write_tree(tmp_path, {"app/kustomization.yaml": "helmCharts: [{name: x}]\n"})
    with pytest.raises(InputError, match="enable-helm"):
        kustomize_inputs(DirectorySource(tmp_path), "app")


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    write_tree(tmp_path, {"app/kustomization.yaml": "resources: [a.yaml\n"})
    with pytest.raises(InputError) as caught:
        kustomize_inputs(DirectorySource(tmp_path), "app")
    assert caught.value.file == "app/kustomization.yaml"


def test_directory_source_refuses_escaping_paths(tmp_path: Path) -> None:
    source = DirectorySource(tmp_path)
    with pytest.raises(InputError):
        source.read("../etc/passwd")
    with pytest.raises(InputError):
        source.is_file("/etc/passwd")


def test_directory_source_ignores_symlinks(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "secret").write_text("x")
    (tmp_path / "repo" / "link.yaml").symlink_to(tmp_path / "secret")
    source = DirectorySource(tmp_path / "repo")
    assert not source.is_file("link.yaml")
    assert source.listdir("") == []
