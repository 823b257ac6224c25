"""The kustomize output memo: identical inputs skip kustomize; Secrets are never kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.host.files import DirectorySource
from core.render import kustomize
from core.render.clear import build_kustomization
from core.render.memo import BuildMemo, key
from tests.render.helpers import ks_spec, write_tree

CONFIG_MAP = """
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: c, namespace: a}
    data: {a: "1"}
"""


def _build(repo: Path, kustomize_bin: Path, memo: BuildMemo, **spec: Any) -> list[Any]:
    built = build_kustomization(
        ks_spec("app", **spec),
        DirectorySource(repo),
        kustomize_bin=kustomize_bin,
        variables=None,
        memo=memo,
    )
    return [obj.body for obj in built.objects]


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
