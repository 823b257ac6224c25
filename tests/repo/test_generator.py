"""ArtifactGenerator copy rules, composed as views (source-watcher's builder semantics)."""

from __future__ import annotations

import io
import tarfile
from typing import Any

import pytest

from core import yamlio
from core.errors import InputError
from core.repo import generator
from core.repo.view import FileView, made_id

MONOREPO = {
    "apps/base/podinfo/kustomization.yaml": "resources: [deploy.yaml]\n",
    "apps/base/podinfo/deploy.yaml": "kind: Deployment\n",
    "apps/base/podinfo/README.md": "docs\n",
    "apps/base/podinfo/values.yaml": (
        "replicas: 1\nimage: {tag: '1.0', pull: Always}\nports: [80]\n"
    ),
    "apps/base/kustomization.yaml": "resources: [podinfo]\n",
    "apps/staging/kustomization.yaml": "resources: [../base/podinfo]\n",
    "apps/staging/values.yaml": "image: {tag: '2.0'}\nports: [8080]\n",
    "apps/staging/logo.png": "png\n",
    "infrastructure/controllers/kustomization.yaml": "resources: []\n",
    "infrastructure/configs/cluster-issuers.yaml": "kind: ClusterIssuer\n",
    "infrastructure/NOTES.md": "notes\n",
}


def view(files: dict[str, str | bytes]) -> FileView:
    raw = {p: c.encode() if isinstance(c, str) else c for p, c in files.items()}
    return FileView(
        "GitRepository",
        {p: made_id(c) for p, c in raw.items()},
        _no_blobs,
        made={made_id(c): c for c in raw.values()},
    )


def _no_blobs(blob: str) -> bytes:
    raise AssertionError(f"no repository blobs here: {blob}")


def gen(*copies: dict[str, Any], artifact: str = "apps") -> generator.GeneratorSpec:
    return generator.parse_generator(
        {
            "apiVersion": "source.extensions.fluxcd.io/v1beta1",
            "kind": "ArtifactGenerator",
            "metadata": {"name": "gen", "namespace": "flux-system"},
            "spec": {
                "sources": [{"alias": "monorepo", "kind": "GitRepository", "name": "flux-system"}],
                "artifacts": [{"name": artifact, "copy": list(copies)}],
            },
        },
        file="clusters/staging/artifacts.yaml",
    )


def compose(*copies: dict[str, Any], files: dict[str, str | bytes] | None = None) -> FileView:
    spec = gen(*copies)
    return generator.compose(
        spec, spec.artifacts[0], {"monorepo": view(files or dict(MONOREPO))}, _no_blobs
    )


def test_recursive_contents_land_under_the_destination_as_in_the_flux_example() -> None:
    result = compose(
        {"from": "@monorepo/apps/base/**", "to": "@artifact/base/"},
        {"from": "@monorepo/apps/staging/**", "to": "@artifact/staging/"},
    )
    assert sorted(result.files) == [
        "base/kustomization.yaml",
        "base/podinfo/README.md",
        "base/podinfo/deploy.yaml",
        "base/podinfo/kustomization.yaml",
        "base/podinfo/values.yaml",
        "staging/kustomization.yaml",
        "staging/values.yaml",
    ]  # logo.png: archived with Flux's default exclusions
    assert result.read("staging/kustomization.yaml") == b"resources: [../base/podinfo]\n"
    assert result.origin("base/podinfo/deploy.yaml") == "apps/base/podinfo/deploy.yaml"


def test_root_contents_directory_and_file_forms() -> None:
    result = compose(
        {"from": "@monorepo/infrastructure/**", "to": "@artifact/"},
        {"from": "@monorepo/apps/base", "to": "@artifact/copied"},
        {"from": "@monorepo/apps/staging/values.yaml", "to": "@artifact/one/"},
        {"from": "@monorepo/apps/staging/values.yaml", "to": "@artifact/renamed.yaml"},
        {"from": "@monorepo/apps/*/kustomization.yaml", "to": "@artifact/kept"},
    )
    assert sorted(result.files) == [
        "NOTES.md",
        "configs/cluster-issuers.yaml",
        "controllers/kustomization.yaml",
        "copied/base/kustomization.yaml",
        "copied/base/podinfo/README.md",
        "copied/base/podinfo/deploy.yaml",
        "copied/base/podinfo/kustomization.yaml",
        "copied/base/podinfo/values.yaml",
        "kept/apps/base/kustomization.yaml",
        "kept/apps/staging/kustomization.yaml",
        "one/values.yaml",
        "renamed.yaml",
    ]


def test_the_whole_source_root() -> None:
    result = compose({"from": "@monorepo/", "to": "@artifact/all/"})
    assert "all/apps/base/kustomization.yaml" in result.files
    assert "all/infrastructure/NOTES.md" in result.files


def test_excludes_match_source_paths_relative_paths_and_base_names() -> None:
    result = compose(
        {
            "from": "@monorepo/apps/*/*",
            "to": "@artifact/",
            "exclude": ["apps/base/kustomization.yaml", "staging/values.yaml", "*.png"],
        },
    )
    assert sorted(result.files) == [
        "apps/base/podinfo/README.md",
        "apps/base/podinfo/deploy.yaml",
        "apps/base/podinfo/kustomization.yaml",
        "apps/base/podinfo/values.yaml",
        "apps/staging/kustomization.yaml",
    ]  # a directory matched by the glob is copied whole
    dirs = compose({"from": "@monorepo/apps/**", "to": "@artifact/", "exclude": ["*.md"]})
    assert "base/podinfo/README.md" not in dirs.files
    assert "base/podinfo/deploy.yaml" in dirs.files


def test_excluded_directories_inside_a_copied_directory() -> None:
    result = compose(
        {"from": "@monorepo/apps", "to": "@artifact/", "exclude": ["staging/**", "**/*.md"]}
    )
    assert sorted(result.files) == [
        "apps/base/kustomization.yaml",
        "apps/base/podinfo/deploy.yaml",
        "apps/base/podinfo/kustomization.yaml",
        "apps/base/podinfo/values.yaml",
    ]


def test_merge_deep_merges_yaml_and_replaces_lists_while_overwrite_replaces() -> None:
    merged = compose(
        {"from": "@monorepo/apps/base/podinfo/values.yaml", "to": "@artifact/values.yaml"},
        {
            "from": "@monorepo/apps/staging/values.yaml",
            "to": "@artifact/values.yaml",
            "strategy": "Merge",
        },
    )
    assert yamlio.load(merged.read("values.yaml")) == {
        "replicas": 1,
        "image": {"tag": "2.0", "pull": "Always"},
        "ports": [8080],
    }
    assert merged.origin("values.yaml") == "apps/staging/values.yaml"
    overwritten = compose(
        {"from": "@monorepo/apps/base/podinfo/values.yaml", "to": "@artifact/values.yaml"},
        {"from": "@monorepo/apps/staging/values.yaml", "to": "@artifact/values.yaml"},
    )
    assert overwritten.read("values.yaml") == MONOREPO["apps/staging/values.yaml"].encode()


def test_merge_without_an_existing_file_copies() -> None:
    result = compose(
        {"from": "@monorepo/apps/staging/values.yaml", "to": "@artifact/", "strategy": "Merge"}
    )
    assert result.read("values.yaml") == MONOREPO["apps/staging/values.yaml"].encode()


def test_extract_unpacks_regular_files_of_a_tarball() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in (("chart/Chart.yaml", b"name: x\n"), ("chart/values.yaml", b"a: 1\n")):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
        link = tarfile.TarInfo("chart/escape")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        archive.addfile(link)
    files: dict[str, str | bytes] = {"charts/x.tgz": buffer.getvalue(), "charts/readme.txt": "x"}
    result = compose(
        {"from": "@monorepo/charts/*", "to": "@artifact/", "strategy": "Extract"}, files=files
    )
    assert sorted(result.files) == ["chart/Chart.yaml", "chart/values.yaml"]
    assert result.read("chart/values.yaml") == b"a: 1\n"


@pytest.mark.parametrize(
    ("copy", "message"),
    [
        ({"from": "@monorepo/nothing/**", "to": "@artifact/"}, "no files match"),
        ({"from": "@monorepo/apps/staging/*", "to": "@artifact/", "exclude": ["*"]}, "excluded"),
        ({"from": "@monorepo/missing.yaml", "to": "@artifact/"}, "does not exist"),
        ({"from": "@monorepo/apps/staging/values.yaml", "to": "@artifact/../../x"}, "leaves"),
        ({"from": "@monorepo/apps", "to": "@artifact/", "strategy": "Extract"}, "tarball"),
    ],
)
def test_copy_failures_name_the_file_object_and_rule(copy: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message) as caught:
        compose(copy)
    text = str(caught.value)
    assert "clusters/staging/artifacts.yaml" in text
    assert "ArtifactGenerator/flux-system/gen" in text
    assert "spec.artifacts[0].copy[0]" in text


@pytest.mark.parametrize(
    ("copy", "field"),
    [
        ({"from": "monorepo/apps", "to": "@artifact/"}, "copy[0].from"),
        ({"from": "@other/apps", "to": "@artifact/"}, "copy[0].from"),
        ({"from": "@monorepo/apps", "to": "/tmp/x"}, "copy[0].to"),
        ({"from": "@monorepo/apps", "to": "@artifact/", "strategy": "Append"}, "copy[0].strategy"),
        ({"from": "@monorepo/apps", "to": "@artifact/", "exclude": ["[a-"]}, "copy[0].exclude"),
    ],
)
def test_invalid_rules_are_refused_at_parse(copy: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError, match=field.replace("[", r"\[").replace("]", r"\]")):
        gen(copy)
