"""Cluster entry points are found from the files under clusters/, and read once per content.

`core.preview.find_clusters` keeps its answer per process by a digest of the paths and blob ids
under clusters/: a head that changes nothing there gets the base's answer without reading a file
again, and any change there (a new cluster, a file that no longer names a Flux Kustomization)
is read and answered afresh.
"""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from core import preview
from core.repo.git import Repository
from tests.fixtures.gitserver import commit, git
from tests.fixtures.spies import record_calls

FLUX = b"apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\n"
PLAIN = b"apiVersion: v1\nkind: ConfigMap\n"


def _reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return record_calls(monkeypatch, Repository, "read_file", lambda repo, tree, path: path)


def test_a_head_that_changes_nothing_under_clusters_reads_nothing_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    git("init", "--quiet", "--initial-branch=main", str(work))
    files = {"clusters/prod/flux.yaml": FLUX, "clusters/docs/readme.yaml": PLAIN}
    base = commit(work, {**files, "apps/web/app.yaml": PLAIN}, "base")
    head = commit(work, {"apps/web/app.yaml": PLAIN + b"# edited\n"}, "edit an app")
    reads = _reads(monkeypatch)

    with Repository(work) as repo:
        at_base = preview.find_clusters(repo, repo.tree(base))
        read_for_base = len(reads)
        at_head = preview.find_clusters(repo, repo.tree(head))

    assert at_base == at_head == ["clusters/prod"]
    assert read_for_base > 0
    assert len(reads) == read_for_base


def test_any_change_under_clusters_is_read_again(tmp_path: Path) -> None:
    work = tmp_path / "work"
    git("init", "--quiet", "--initial-branch=main", str(work))
    base = commit(work, {"clusters/prod/flux.yaml": FLUX, "clusters/dev/flux.yaml": FLUX}, "b")
    added = commit(work, {"clusters/edge/flux.yaml": FLUX}, "a new cluster")
    emptied = commit(work, {"clusters/dev/flux.yaml": PLAIN}, "dev holds no Flux object")

    with Repository(work) as repo:
        found = [preview.find_clusters(repo, repo.tree(sha)) for sha in (base, added, emptied)]

    assert found == [
        ["clusters/dev", "clusters/prod"],
        ["clusters/dev", "clusters/edge", "clusters/prod"],
        ["clusters/edge", "clusters/prod"],
    ]


@pytest.mark.parametrize(
    ("edit", "asked"),
    [("apps/web/app.yaml", ["base"]), ("clusters/edge/flux.yaml", ["base", "head"])],
    ids=["elsewhere", "under-clusters"],
)
def test_a_head_listed_by_diff_is_asked_only_when_the_diff_touches_clusters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit: str, asked: list[str]
) -> None:
    work = tmp_path / "work"
    git("init", "--quiet", "--initial-branch=main", str(work))
    base = commit(work, {"clusters/prod/flux.yaml": FLUX, "apps/web/app.yaml": PLAIN}, "base")
    head = commit(work, {edit: FLUX}, "edit")
    request = types.SimpleNamespace(clusters=())

    with Repository(work) as repo:
        base_tree = repo.tree(base)
        head_tree = repo.tree(head)  # listed as the base's listing and git's diff
        sides = {id(base_tree): "base", id(head_tree): "head"}
        calls = record_calls(
            monkeypatch, preview, "find_clusters", lambda repo, tree: sides[id(tree)]
        )
        found = preview._clusters(repo, request, base_tree, head_tree)

    assert calls == asked
    expected = (
        ["clusters/edge", "clusters/prod"] if edit.startswith("clusters/") else ["clusters/prod"]
    )
    assert found == expected
