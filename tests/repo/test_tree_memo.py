"""A commit's file listing is read once per process, whichever `Repository` asks for it.

A long-lived preview process opens the repository afresh for every preview; the base it lists
is usually the one it listed before. The listing of a full commit id never changes, so a second
`Repository` on the same repository takes it without running `git ls-tree` again; a listing
asked by a branch name, which can move, is always read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.repo import git as gitmodule
from core.repo.git import Repository
from tests.fixtures.gitserver import commit, git


def _listings(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    calls: list[tuple[str, ...]] = []
    real = Repository._git

    def spy(self: Repository, *args: str, **kwargs: Any) -> bytes:
        if args and args[0] == "ls-tree":
            calls.append(args)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Repository, "_git", spy)
    return calls


def test_a_commit_is_listed_once_across_repositories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    git("init", "--quiet", "--initial-branch=main", str(work))
    commit(work, {"a.yaml": b"a: 1\n"}, "first")
    calls = _listings(monkeypatch)

    with Repository(work) as first:
        sha = first.resolve("main")
        listed = dict(first.tree(sha))
    with Repository(work) as second:
        again = dict(second.tree(sha))
        by_branch = dict(second.tree("main"))

    assert listed == again == by_branch == {"a.yaml": listed["a.yaml"]}
    assert [call[-1] for call in calls] == [sha, "main"]


def test_another_repository_lists_its_own_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = []
    for name, content in (("one", b"x: 1\n"), ("two", b"x: 2\n")):
        path = tmp_path / name
        git("init", "--quiet", "--initial-branch=main", str(path))
        commit(path, {"f.yaml": content}, "c")
        paths.append(path)
    calls = _listings(monkeypatch)

    trees = []
    for path in paths:
        with Repository(path) as repo:
            trees.append(dict(repo.tree(repo.resolve("main"))))

    assert trees[0] != trees[1]
    assert len(calls) == 2
    assert len(gitmodule._TREES) <= gitmodule._TREE_CACHE_SIZE
