"""Cluster entry points are found from the files under clusters/, and read once per content.

`core.preview.find_clusters` keeps its answer per process by a digest of the paths and blob ids
under clusters/: a head that changes nothing there gets the base's answer without reading a file
again, and any change there (a new cluster, a file that no longer names a Flux Kustomization)
is read and answered afresh.
"""

from __future__ import annotations

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
