"""The set of repository files a kustomize build reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import InputError
from core.host.files import DirectorySource
from core.render.walk import kustomize_inputs
from core.repo.git import Repository
from core.repo.source import GitSource
from tests.preview.gitrepo import git, new_repo
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


GENERATOR_CONFIG = """
apiVersion: builtin
kind: {kind}
metadata: {{name: leak}}
{field}
"""


@pytest.mark.parametrize(
    ("kind", "field", "entry", "where"),
    [
        ("ConfigMapGenerator", "files: [/etc/passwd]", "/etc/passwd", "files[0]"),
        ("ConfigMapGenerator", "files: [k=../../../x]", "../../../x", "files[0]"),
        ("SecretGenerator", "envs: [../../../proc/self/environ]", "../../..", "envs[0]"),
        ("ConfigMapGenerator", "env: /proc/self/environ", "/proc/self/environ", "env"),
        ("PatchTransformer", "path: ../../x.yaml", "../../x.yaml", "path"),
        ("PatchStrategicMergeTransformer", "paths: [/etc/passwd]", "/etc/passwd", "paths[0]"),
        ("ReplacementTransformer", "replacements: [{path: /etc/hosts}]", "/etc/hosts", "path"),
    ],
)
@pytest.mark.parametrize("form", ["file", "inline", "directory"])
def test_builtin_configs_reading_outside_files_are_refused_in_every_form(
    tmp_path: Path, kind: str, field: str, entry: str, where: str, form: str
) -> None:
    config = GENERATOR_CONFIG.format(kind=kind, field=field)
    key = "transformers" if "Transformer" in kind else "generators"
    files = {
        "file": {
            "app/kustomization.yaml": f"{key}: [gen.yaml]\n",
            "app/gen.yaml": config,
        },
        "inline": {"app/kustomization.yaml": f"{key}:\n- |\n" + _indent(config)},
        "directory": {
            "app/kustomization.yaml": f"{key}: [gens]\n",
            "app/gens/kustomization.yaml": "resources: [gen.yaml]\n",
            "app/gens/gen.yaml": config,
        },
    }[form]
    write_tree(tmp_path, files)
    with pytest.raises(InputError) as caught:
        kustomize_inputs(DirectorySource(tmp_path), "app")
    assert caught.value.field is not None
    assert caught.value.field.startswith(f"{key}[0]")
    assert caught.value.field.endswith(where)
    assert entry in str(caught.value)
    assert caught.value.file == (
        "app/gens/gen.yaml"
        if form == "directory"
        else "app/gen.yaml"
        if form == "file"
        else "app/kustomization.yaml"
    )


def _indent(text: str) -> str:
    return "".join(f"  {line}\n" for line in text.strip().splitlines())


def test_builtin_config_paths_are_inputs_relative_to_the_kustomization(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "app/kustomization.yaml": "generators: [gens]\n",
            "app/gens/kustomization.yaml": "resources: [gen.yaml]\n",
            "app/gens/gen.yaml": GENERATOR_CONFIG.format(
                kind="ConfigMapGenerator", field="files: [k=data/a.txt]\nenvs: [b.env]"
            ),
        },
    )
    assert kustomize_inputs(DirectorySource(tmp_path), "app") == {
        "app/kustomization.yaml",
        "app/gens/kustomization.yaml",
        "app/gens/gen.yaml",
        "app/data/a.txt",
        "app/b.env",
    }


def test_plugins_in_a_generator_directory_are_refused(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "app/kustomization.yaml": "generators: [gens]\n",
            "app/gens/kustomization.yaml": "resources: [fn.yaml]\n",
            "app/gens/fn.yaml": "apiVersion: example.com/v1\nkind: Exec\nmetadata: {name: x}\n",
        },
    )
    with pytest.raises(InputError, match="plugin 'Exec' is not allowed") as caught:
        kustomize_inputs(DirectorySource(tmp_path), "app")
    assert caught.value.file == "app/gens/fn.yaml"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("crds: [../../crd.json]\n", "crds[0]"),
        ("configurations: [/etc/passwd]\n", "configurations[0]"),
        ("openapi: {path: ../../../schema.json}\n", "openapi.path"),
        ("replacements: [{path: /etc/hosts}]\n", "replacements[0].path"),
        ("secretGenerator: [{name: s, env: /proc/self/environ}]\n", "secretGenerator[0].env"),
        (
            "configMapGenerator: [{name: c, envs: [../../../a.env]}]\n",
            "configMapGenerator[0].envs[0]",
        ),
        ("helmGlobals: {chartHome: /}\n", "helmGlobals"),
    ],
)
def test_other_file_fields_leaving_the_repository_are_refused(
    tmp_path: Path, text: str, field: str
) -> None:
    write_tree(tmp_path, {"app/kustomization.yaml": text})
    with pytest.raises(InputError) as caught:
        kustomize_inputs(DirectorySource(tmp_path), "app")
    assert caught.value.field == field
    assert caught.value.file == "app/kustomization.yaml"


def test_symlinked_inputs_are_refused_naming_file_and_field(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {"repo/app/kustomization.yaml": "configMapGenerator: [{name: c, files: [link]}]\n"},
    )
    (tmp_path / "canary").write_text("canary")
    (tmp_path / "repo/app/link").symlink_to(tmp_path / "canary")
    with pytest.raises(InputError, match="app/link is a symlink") as caught:
        kustomize_inputs(DirectorySource(tmp_path / "repo"), "app")
    assert caught.value.field == "configMapGenerator[0].files[0]"
    assert caught.value.file == "app/kustomization.yaml"


def test_symlinks_committed_to_git_are_refused(tmp_path: Path) -> None:
    work, _ = new_repo(tmp_path / "repo", {"app/kustomization.yaml": "resources: [escape.yaml]\n"})
    (work / "app/escape.yaml").symlink_to("../../../../etc/passwd")
    git(work, "add", "--all")
    git(work, "commit", "--quiet", "-m", "link")
    with Repository(work) as repo:
        source = GitSource(repo, repo.tree("HEAD"))
        assert source.is_symlink("app/escape.yaml")
        assert not source.is_symlink("app/kustomization.yaml")
        with pytest.raises(InputError, match=r"app/escape\.yaml is a symlink") as caught:
            kustomize_inputs(source, "app")
    assert caught.value.field == "resources[0]"
