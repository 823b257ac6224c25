"""The kustomize output memo: identical inputs skip kustomize; Secrets are never kept.

Keyed by an artifact's digest, a build of the same artifact copies and hashes no file, and the
memo stays exact: every variant of the spec or the files gives what a build without the memo gives.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from core.host.files import DirectorySource
from core.render import kustomize
from core.render.clear import build_kustomization
from core.render.memo import BuildMemo, artifact_key, key
from tests.render.helpers import ks_spec, write_tree

CONFIG_MAP = """
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: c, namespace: a}
    data: {a: "1"}
"""


def _build(
    repo: Path,
    kustomize_bin: Path,
    memo: BuildMemo | None,
    *,
    path: str = "app",
    digest: str | None = None,
    **spec: Any,
) -> list[Any]:
    built = build_kustomization(
        ks_spec(path, **spec),
        DirectorySource(repo),
        kustomize_bin=kustomize_bin,
        variables=None,
        memo=memo,
        source_digest=digest,
    )
    return [obj.body for obj in built.objects]


def _artifact_digest(repo: Path) -> str:
    """What an artifact's digest is to the memo: a name for every byte of its files."""
    hasher = hashlib.sha256()
    for path in sorted(p for p in repo.rglob("*") if p.is_file()):
        hasher.update(path.relative_to(repo).as_posix().encode() + b"\0")
        hasher.update(hashlib.sha256(path.read_bytes()).digest())
    return f"sha256:{hasher.hexdigest()}"


def _no_kustomize(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> bytes:
        raise AssertionError("kustomize ran")

    monkeypatch.setattr(kustomize, "_build", refuse)


def test_the_same_files_are_built_once(
    tmp_path: Path, kustomize_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = write_tree(tmp_path / "repo", {"app/cm.yaml": CONFIG_MAP})
    memo = BuildMemo()
    first = _build(repo, kustomize_bin, memo, targetNamespace="apps")
    _no_kustomize(monkeypatch)

    again = _build(repo, kustomize_bin, memo, targetNamespace="apps")

    assert again == first
    assert again[0]["metadata"]["namespace"] == "apps"
    assert memo.hits == 1


def test_a_changed_file_or_spec_is_built_again(tmp_path: Path, kustomize_bin: Path) -> None:
    repo = write_tree(tmp_path / "repo", {"app/cm.yaml": CONFIG_MAP})
    memo = BuildMemo()
    _build(repo, kustomize_bin, memo)
    (repo / "app/cm.yaml").write_text(CONFIG_MAP.replace('"1"', '"2"'))

    changed = _build(repo, kustomize_bin, memo)
    moved = _build(repo, kustomize_bin, memo, targetNamespace="other")

    assert changed[0]["data"] == {"a": "2"}
    assert moved[0]["metadata"]["namespace"] == "other"
    assert memo.hits == 0
    assert len(memo) == 3


def test_output_that_may_hold_a_secret_is_never_kept(tmp_path: Path, kustomize_bin: Path) -> None:
    repo = write_tree(
        tmp_path / "repo",
        {
            "app/cm.yaml": CONFIG_MAP,
            "app/secret.yaml": """
                apiVersion: v1
                kind: Secret
                metadata: {name: s, namespace: a}
                data: {token: c2VjcmV0}
            """,
        },
    )
    memo = BuildMemo()

    _build(repo, kustomize_bin, memo)
    _build(repo, kustomize_bin, memo)

    assert len(memo) == 0
    assert memo.hits == 0


def test_the_key_covers_paths_contents_and_the_binary(tmp_path: Path) -> None:
    binary = tmp_path / "tool"
    binary.write_bytes(b"v1")
    tree = write_tree(tmp_path / "tree", {"a/x.yaml": "x: 1"})
    base = key(binary, ["build", "a"], tree)

    (tree / "a/x.yaml").rename(tree / "a/y.yaml")
    renamed = key(binary, ["build", "a"], tree)
    (tree / "a/y.yaml").write_text("x: 2")
    edited = key(binary, ["build", "a"], tree)
    binary.write_bytes(b"v2 longer")
    rebuilt = key(binary, ["build", "a"], tree)

    assert len({base, renamed, edited, rebuilt, key(binary, ["build", "b"], tree)}) == 5


def test_the_least_recently_used_output_goes_first_and_large_output_is_not_kept() -> None:
    memo = BuildMemo(budget=100)
    for name in "abcd":
        assert memo.put(name, name.encode() * 20)
    assert memo.get("a") == b"a" * 20  # now the most recently used

    assert memo.put("e", b"e" * 20)  # exactly the budget: nothing goes
    assert memo.put("f", b"f" * 20)  # over it: "b", the least recently used, goes
    assert not memo.put("g", b"g" * 26)  # over a quarter of the budget

    assert [name for name in "abcdefg" if memo.get(name) is not None] == ["a", "c", "d", "e", "f"]


OVERLAY = {
    "base/cm.yaml": CONFIG_MAP,
    "base/kustomization.yaml": "resources: [cm.yaml]",
    "app/kustomization.yaml": """
        resources: [../base]
        patches:
          - path: patch.yaml
    """,
    "app/patch.yaml": """
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: c, namespace: a}
        data: {b: "1"}
    """,
    "components/extra/kustomization.yaml": """
        apiVersion: kustomize.config.k8s.io/v1alpha1
        kind: Component
        commonLabels: {extra: "yes"}
    """,
}


def test_a_second_build_of_an_artifact_copies_and_hashes_nothing(
    tmp_path: Path, kustomize_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = write_tree(tmp_path / "repo", OVERLAY)
    memo = BuildMemo()
    digest = _artifact_digest(repo)
    first = _build(repo, kustomize_bin, memo, digest=digest)
    _no_kustomize(monkeypatch)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a file was copied or hashed")

    monkeypatch.setattr(kustomize, "_materialize", refuse)
    monkeypatch.setattr(kustomize, "memo_key", refuse)

    assert _build(repo, kustomize_bin, memo, digest=digest) == first
    assert memo.hits == 1


@pytest.mark.parametrize(
    ("edit", "spec"),
    [
        ({}, {"targetNamespace": "other"}),
        ({}, {"namePrefix": "p-"}),
        ({}, {"components": ["../components/extra"]}),
        (
            {},
            {
                "patches": [
                    {
                        "patch": '[{"op": "add", "path": "/data/c", "value": "1"}]',
                        "target": {"kind": "ConfigMap"},
                    }
                ]
            },
        ),
        ({"base/cm.yaml": CONFIG_MAP.replace('"1"', '"2"')}, {}),
        ({"app/patch.yaml": OVERLAY["app/patch.yaml"].replace('"1"', '"3"')}, {}),
        (
            {
                "components/extra/kustomization.yaml": OVERLAY[
                    "components/extra/kustomization.yaml"
                ].replace("yes", "no")
            },
            {"components": ["../components/extra"]},
        ),
        (
            {
                "base/kustomization.yaml": "resources: [cm.yaml, more.yaml]",
                "base/more.yaml": CONFIG_MAP.replace("name: c", "name: d"),
            },
            {},
        ),
    ],
    ids=[
        "targetNamespace",
        "namePrefix",
        "components",
        "patches",
        "base file",
        "patch file",
        "component file",
        "new file",
    ],
)
def test_a_build_keyed_by_the_artifact_matches_a_build_without_the_memo(
    tmp_path: Path, kustomize_bin: Path, edit: dict[str, str], spec: dict[str, Any]
) -> None:
    # A memo that has seen the unchanged artifact and spec must not answer for the changed one.
    repo = write_tree(tmp_path / "repo", OVERLAY)
    memo = BuildMemo()
    _build(repo, kustomize_bin, memo, digest=_artifact_digest(repo))
    write_tree(repo, edit)

    memoized = _build(repo, kustomize_bin, memo, digest=_artifact_digest(repo), **spec)

    assert memoized == _build(repo, kustomize_bin, None, **spec)
    assert memo.hits == 0


def test_the_artifact_key_covers_the_artifact_the_paths_and_the_written_file(
    tmp_path: Path,
) -> None:
    binary = tmp_path / "tool"
    binary.write_bytes(b"v1")
    argv = ["build", "app"]
    written = {"app/kustomization.yaml": b"resources: [cm.yaml]"}
    inputs = ["app/cm.yaml", "app/kustomization.yaml"]
    base = artifact_key(binary, argv, "sha256:aa", inputs, written)
    variants = [
        artifact_key(binary, argv, "sha256:ab", inputs, written),
        artifact_key(binary, argv, "sha256:aa", [*inputs, "app/more.yaml"], written),
        artifact_key(
            binary, argv, "sha256:aa", ["app/cm2.yaml", "app/kustomization.yaml"], written
        ),
        artifact_key(
            binary, argv, "sha256:aa", inputs, {"app/kustomization.yaml": b"resources: []"}
        ),
        artifact_key(
            binary,
            argv,
            "sha256:aa",
            inputs,
            {"app/kustomization.yml": written["app/kustomization.yaml"]},
        ),
        artifact_key(binary, ["build", "other"], "sha256:aa", inputs, written),
        key(binary, argv, write_tree(tmp_path / "tree", {"app/cm.yaml": "x: 1"})),
    ]
    # The order the inputs come in is not an input.
    assert artifact_key(binary, argv, "sha256:aa", reversed(inputs), written) == base
    binary.write_bytes(b"v2 longer")
    variants.append(artifact_key(binary, argv, "sha256:aa", inputs, written))

    assert len({base, *variants}) == len(variants) + 1
