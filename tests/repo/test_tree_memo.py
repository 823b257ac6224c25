"""A commit's file listing is read once per process, whichever `Repository` asks for it.

A long-lived preview process opens the repository afresh for every preview; the base it lists
is usually the one it listed before. The listing of a full commit id never changes, so a second
`Repository` on the same repository takes it without running `git ls-tree` again; a listing
asked by a branch name, which can move, is always read. A commit not listed yet is listed as
the repository's last listing changed by `git diff-tree`, exactly as `git ls-tree` lists it.
Where the git directory is, is asked once too, while what is at the path stays the same.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.errors import GitError
from core.render.carry import changed_paths
from core.repo import git as gitmodule
from core.repo.git import Repository
from tests.fixtures.gitserver import commit, git
from tests.fixtures.spies import record_calls


def _listings(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    listings = ("ls-tree", "diff-tree")
    return record_calls(
        monkeypatch,
        Repository,
        "_git",
        lambda repo, *args, **_: args if args[0] in listings else None,
    )


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
    assert [(call[0], call[-1]) for call in calls] == [("ls-tree", sha), ("ls-tree", "main")]


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
    assert [call[0] for call in calls] == ["ls-tree", "ls-tree"]
    assert len(gitmodule._TREES) <= gitmodule._TREE_CACHE_SIZE


def _gitlink(work: Path, path: str, target: str) -> None:
    git("update-index", "--add", "--cacheinfo", f"160000,{target},{path}", cwd=work)


def _listing(tree: gitmodule.Tree) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    return {path: (tree[path], tree.mode(path)) for path in tree}, dict(tree.submodules)


def test_a_commit_listed_after_another_is_their_diff_applied_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    git("init", "--quiet", "--initial-branch=main", str(work))
    odd = "caf\udce9.yaml"  # a name that is not UTF-8
    base = commit(
        work,
        {
            "keep.yaml": b"k: 1\n",
            "edit.yaml": b"e: 1\n",
            "run.sh": b"#!/bin/sh\n",
            "becomes/link.yaml": b"l: 1\n",
            "dir/a.yaml": b"a: 1\n",
            "dir/b/c.yaml": b"c: 1\n",
        },
        "base",
    )
    (work / odd).write_bytes(b"o: 1\n")
    (work / "run.sh").chmod(0o755)
    (work / "link").symlink_to("keep.yaml")
    git("add", "-A", cwd=work)
    _gitlink(work, "vendor/old", base)
    git("commit", "--quiet", "-m", "odd entries", cwd=work)
    base = git("rev-parse", "HEAD", cwd=work)
    (work / "run.sh").chmod(0o644)
    (work / "becomes/link.yaml").unlink()
    (work / "becomes/link.yaml").symlink_to("../keep.yaml")
    (work / "link").unlink()
    (work / "link").write_bytes(b"now a file\n")
    git("rm", "--quiet", "-r", "dir", cwd=work)
    for path, content in (("edit.yaml", b"e: 2\n"), ("dir", b"a file now\n"), ("new", b"n\n")):
        (work / path).write_bytes(content)
    (work / "deep/er").mkdir(parents=True)
    (work / "deep/er/still.yaml").write_bytes(b"d: 1\n")
    git("add", "-A", cwd=work)  # also removes the gitlink vendor/old, absent from the work tree
    _gitlink(work, "vendor/new", base)
    git("commit", "--quiet", "-m", "head", cwd=work)
    head = git("rev-parse", "HEAD", cwd=work)
    calls = _listings(monkeypatch)

    with Repository(work) as repo:
        at_base = repo.tree(base)
        at_base.listdir("")  # the base's directory index exists: the head's follows the diff
        derived = repo.tree(head)
    gitmodule._TREES.clear()
    with Repository(work) as repo:
        listed = repo.tree(head)

    assert _listing(derived) == _listing(listed)
    assert derived._children is not None
    assert derived._index() == listed._index()
    assert derived.is_file("dir")
    assert not derived.is_dir("dir")
    assert derived.listdir("deep") == ["er"]
    assert listed.submodules == {"vendor/new": base}
    assert listed.mode("becomes/link.yaml") == gitmodule.SYMLINK_MODE
    assert [call[0] for call in calls] == ["ls-tree", "diff-tree", "ls-tree"]
    # What changed is git's diff for the derived listing, compared file by file for the other:
    # the same paths, either way round.
    assert listed.changes_against(at_base) is None
    compared = changed_paths(at_base, listed)
    assert compared == {
        "edit.yaml", "run.sh", "becomes/link.yaml", "link", "dir", "dir/a.yaml", "dir/b/c.yaml",
        "new", "deep/er/still.yaml",
    }  # fmt: skip
    assert derived.changes_against(at_base) == at_base.changes_against(derived) == compared
    assert changed_paths(at_base, derived) is derived.changes_against(at_base)


def test_a_diff_git_cannot_make_falls_back_to_the_listing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    git("init", "--quiet", "--initial-branch=main", str(work))
    first = commit(work, {"a.yaml": b"a: 1\n"}, "first")
    second = commit(work, {"b.yaml": b"b: 1\n"}, "second")
    calls = _listings(monkeypatch)

    with Repository(work) as repo:
        listed = repo.tree(first)
        # The commit the last listing names is gone (a repository rewritten under a long-lived
        # process): the diff fails and the revision is listed.
        gone = "0" * 40
        gitmodule._TREES[(repo._git_dir, gone)] = gitmodule.Tree(gone, dict(listed))
        tree = repo.tree(second)

    assert set(tree) == {"a.yaml", "b.yaml"}
    assert [call[0] for call in calls] == ["ls-tree", "diff-tree", "ls-tree"]


def _git_dir_questions(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    return record_calls(
        monkeypatch,
        gitmodule,
        "run",
        lambda argv, **_: argv if "--absolute-git-dir" in argv else None,
    )


def test_the_git_directory_is_asked_again_only_when_the_repository_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    git("init", "--quiet", "--initial-branch=main", str(work))
    commit(work, {"a.yaml": b"a: 1\n"}, "first")
    calls = _git_dir_questions(monkeypatch)

    for _ in range(3):
        with Repository(work) as repo:
            repo.resolve("main")
    asked_once = len(calls)
    shutil.rmtree(work / ".git")
    with pytest.raises(GitError, match="is not a git repository"):
        Repository(work)
    git("init", "--quiet", "--initial-branch=main", str(work))
    commit(work, {"b.yaml": b"b: 1\n"}, "again")
    with Repository(work) as repo:
        files = set(repo.tree("main"))

    assert asked_once == 1
    assert len(calls) == 3
    assert files == {"a.yaml", "b.yaml"}
