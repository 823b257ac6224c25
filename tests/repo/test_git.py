"""Reading repositories at any revision, against repositories made by the real git.

Aspects: opening (work tree, bare, not a repository), resolving revisions, merge bases and the
default branch; tree listings, directory queries, symlinks, submodules and executables; digests
as content addresses; blob reads (binary, many, concurrent, through one process, recovery);
materializing files byte for byte and refusing paths that escape; a clone from the git server.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from core.errors import GitError
from core.repo.git import Repository, Tree
from tests.fixtures.gitserver import RemoteRepo, commit, git

BINARY = bytes(range(256)) * 64 + b"\r\n\0trailing without newline"

FILES: dict[str, bytes] = {
    "clusters/prod/flux-system/kustomization.yaml": b"resources:\n- gotk-sync.yaml\n",
    "clusters/prod/flux-system/gotk-sync.yaml": b"kind: Kustomization\n",
    "clusters/prod/apps.yaml": b"kind: Kustomization\npath: ./apps/prod\n",
    "apps/base/deployment.yaml": b"kind: Deployment\n",
    "apps/base/kustomization.yaml": b"resources:\n- deployment.yaml\n",
    "apps/prod/kustomization.yaml": b"resources:\n- ../base\n",
    "apps/prod/logo.png": BINARY,
    "apps/prod/empty.txt": b"",
    "README.md": b"# fleet\n",
}


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A work tree on `main` with FILES committed."""
    path = tmp_path / "work"
    git("init", "--quiet", "--initial-branch=main", str(path))
    commit(path, FILES, "initial")
    return path


@pytest.fixture
def repo(work: Path) -> Iterator[Repository]:
    with Repository(work) as repository:
        yield repository


def _cat_file_children(work: Path) -> list[int]:
    """Process ids of this process's running `git cat-file` children reading `work`'s repository
    (zombies excluded; readers other tests left open are not this test's)."""
    git_dir = os.fsencode(f"--git-dir={work.resolve()}")
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # it exited while we looked
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        ours = any(arg.startswith(git_dir) for arg in argv)
        if int(ppid) == os.getpid() and state != "Z" and b"cat-file" in argv and ours:
            found.append(int(entry.name))
    return found


# Opening


def test_opens_a_work_tree_and_a_bare_repository(work: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    git("clone", "--quiet", "--bare", str(work), str(bare))

    with Repository(work) as from_work, Repository(bare) as from_bare:
        assert from_work.resolve("main") == from_bare.resolve("main")
        assert from_bare.path == bare.resolve()


def test_a_directory_that_is_not_a_repository_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="is not a git repository"):
        Repository(tmp_path)


def test_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="is not a git repository: there is no such directory"):
        Repository(tmp_path / "missing")


def test_a_subdirectory_of_a_work_tree_is_not_a_repository(work: Path) -> None:
    # Opening must not silently pick up an enclosing repository.
    with pytest.raises(GitError, match="is not a git repository"):
        Repository(work / "apps")


# Revisions


def test_resolve_returns_full_commit_ids(work: Path, repo: Repository) -> None:
    head = git("rev-parse", "HEAD", cwd=work)
    git("tag", "--annotate", "v1", "--message", "release", cwd=work)

    assert repo.resolve("main") == head
    assert repo.resolve("HEAD") == head
    assert repo.resolve(head[:8]) == head
    assert repo.resolve("v1") == head  # an annotated tag peels to its commit
    assert repo.resolve("refs/heads/main") == head


def test_resolve_names_an_unknown_ref(repo: Repository) -> None:
    with pytest.raises(GitError, match="unknown revision 'feature/missing'"):
        repo.resolve("feature/missing")


@pytest.mark.parametrize("ref", ["--output=/tmp/x", "", "main\nHEAD"])
def test_resolve_refuses_what_git_would_misread(repo: Repository, ref: str) -> None:
    with pytest.raises(GitError, match="invalid revision"):
        repo.resolve(ref)


def test_resolve_of_a_tree_id_is_not_a_commit(work: Path, repo: Repository) -> None:
    tree_id = git("rev-parse", "HEAD^{tree}", cwd=work)

    with pytest.raises(GitError, match="unknown revision"):
        repo.resolve(tree_id)


def test_resolve_of_full_ids_asks_the_blob_reader_not_another_git_process(
    work: Path, repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A commit whose message is larger than one read of the blob reader's answer.
    commit(work, {"README.md": b"# fleet v2\n"})
    message = work.parent / "message.txt"
    message.write_text("m" * (3 << 20))
    git("commit", "--quiet", "--amend", "--file", str(message), cwd=work)
    head = git("rev-parse", "HEAD", cwd=work)
    git("tag", "--annotate", "v1", "--message", "release", cwd=work)
    tag, tree, blob = (
        git("rev-parse", name, cwd=work) for name in ("v1", "HEAD^{tree}", "HEAD:README.md")
    )

    def no_git(*args: str, ok: tuple[int, ...] = (0,)) -> bytes:
        raise AssertionError(f"git {args[0]} was run")

    monkeypatch.setattr(repo, "_git", no_git)

    assert repo.resolve(head) == head
    assert repo.resolve(tag) == head  # an annotated tag's id peels to its commit
    for other in (tree, blob, "0" * 40):
        with pytest.raises(GitError, match="unknown revision"):
            repo.resolve(other)
    assert repo.read_blob(blob) == b"# fleet v2\n"  # the reader is still in step


def test_merge_base_of_diverged_branches(work: Path, repo: Repository) -> None:
    fork = git("rev-parse", "HEAD", cwd=work)
    git("switch", "--quiet", "--create", "feature", cwd=work)
    commit(work, {"apps/prod/extra.yaml": b"kind: ConfigMap\n"})
    git("switch", "--quiet", "main", cwd=work)
    commit(work, {"README.md": b"# fleet v2\n"})

    assert repo.merge_base("main", "feature") == fork
    assert repo.merge_base("feature", "main") == fork


def test_merge_base_of_unrelated_histories_is_an_error(work: Path, repo: Repository) -> None:
    git("switch", "--quiet", "--orphan", "unrelated", cwd=work)
    commit(work, {"other.txt": b"x\n"})

    with pytest.raises(GitError, match="'main' and 'unrelated' have no common ancestor"):
        repo.merge_base("main", "unrelated")


def test_merge_base_names_an_unknown_ref(repo: Repository) -> None:
    with pytest.raises(GitError, match="'nope'"):
        repo.merge_base("main", "nope")


def test_default_branch_follows_origin_head(work: Path, tmp_path: Path) -> None:
    git("branch", "trunk", cwd=work)
    git("symbolic-ref", "HEAD", "refs/heads/trunk", cwd=work)
    clone = tmp_path / "clone"
    git("clone", "--quiet", str(work), str(clone))

    with Repository(clone) as repository:
        assert repository.default_branch() == "trunk"


@pytest.mark.parametrize(
    ("branches", "expected"),
    [(["main", "master"], "main"), (["master"], "master"), (["main"], "main")],
)
def test_default_branch_falls_back_to_main_then_master(
    tmp_path: Path, branches: list[str], expected: str
) -> None:
    path = tmp_path / "repo"
    git("init", "--quiet", f"--initial-branch={branches[0]}", str(path))
    commit(path, {"a": b"a\n"})
    for branch in branches[1:]:
        git("branch", branch, cwd=path)

    with Repository(path) as repository:
        assert repository.default_branch() == expected


def test_no_default_branch_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "repo"
    git("init", "--quiet", "--initial-branch=trunk", str(path))
    commit(path, {"a": b"a\n"})

    with Repository(path) as repository, pytest.raises(GitError, match="no default branch"):
        repository.default_branch()


# Trees


def test_tree_lists_every_file_with_its_blob_id(work: Path, repo: Repository) -> None:
    tree = repo.tree(repo.resolve("HEAD"))

    assert set(tree) == set(FILES)
    for path in FILES:
        assert tree[path] == git("rev-parse", f"HEAD:{path}", cwd=work)
    assert tree.mode("apps/base/deployment.yaml") == "100644"


def test_tree_directory_queries(repo: Repository) -> None:
    tree = repo.tree("main")

    assert tree.listdir("") == ["README.md", "apps", "clusters"]
    assert tree.listdir("apps/prod") == ["empty.txt", "kustomization.yaml", "logo.png"]
    assert tree.listdir("./clusters/prod/") == ["apps.yaml", "flux-system"]
    assert tree.is_dir("")
    assert tree.is_dir(".")
    assert tree.is_dir("apps/base")
    assert not tree.is_dir("apps/base/deployment.yaml")
    assert not tree.is_dir("nowhere")
    assert tree.is_file("apps/base/deployment.yaml")
    assert tree.is_file("./README.md")
    assert not tree.is_file("apps")
    assert not tree.is_file("../README.md")
    assert tree.walk("clusters") == [
        "clusters/prod/apps.yaml",
        "clusters/prod/flux-system/gotk-sync.yaml",
        "clusters/prod/flux-system/kustomization.yaml",
    ]
    assert tree.walk() == sorted(FILES)


def test_walk_does_not_mix_up_sibling_prefixes(work: Path, repo: Repository) -> None:
    commit(work, {"apps-extra/a.yaml": b"a\n", "apps.yaml": b"b\n", "apps/zz.yaml": b"c\n"})
    tree = repo.tree("HEAD")

    assert tree.walk("apps") == sorted(p for p in tree if p.startswith("apps/"))
    assert "apps-extra/a.yaml" in tree.walk("apps-extra")


def test_listing_a_non_directory_is_an_error(repo: Repository) -> None:
    tree = repo.tree("HEAD")

    with pytest.raises(NotADirectoryError, match=re.escape("README.md")):
        tree.listdir("README.md")
    with pytest.raises(NotADirectoryError, match="nowhere"):
        tree.walk("nowhere")


def test_tree_of_an_unknown_revision_names_it(repo: Repository) -> None:
    with pytest.raises(
        GitError, match=r"cannot list revision 'release/9'.*Not a valid object name"
    ):
        repo.tree("release/9")


def test_tree_is_immutable_and_cached_for_full_ids(repo: Repository) -> None:
    head = repo.resolve("HEAD")
    tree = repo.tree(head)

    assert repo.tree(head) is tree
    assert tree.revision == head
    with pytest.raises(TypeError):
        tree["new.yaml"] = "0" * 40  # type: ignore[index]


def test_symlinks_read_as_files_holding_their_target(
    work: Path, repo: Repository, tmp_path: Path
) -> None:
    (work / "escape").symlink_to("../../../../etc/passwd")
    (work / "apps/link.yaml").symlink_to("base/deployment.yaml")
    commit(work, {})
    tree = repo.tree("HEAD")

    assert tree.mode("escape") == "120000"
    assert repo.read_file(tree, "escape") == b"../../../../etc/passwd"
    assert repo.read_file(tree, "apps/link.yaml") == b"base/deployment.yaml"
    assert tree.is_file("escape")
    assert "escape" in tree.listdir("")

    dest = tmp_path / "out"
    repo.materialize(tree, ["escape"], dest)
    assert not (dest / "escape").is_symlink()
    assert (dest / "escape").read_bytes() == b"../../../../etc/passwd"


def test_submodules_are_left_out_but_reported(work: Path, repo: Repository) -> None:
    pinned = git("rev-parse", "HEAD", cwd=work)
    git("update-index", "--add", "--cacheinfo", f"160000,{pinned},vendor/lib", cwd=work)
    git("commit", "--quiet", "--message", "add submodule", cwd=work)
    tree = repo.tree("HEAD")

    assert "vendor/lib" not in tree
    assert not tree.is_dir("vendor")
    assert not tree.is_file("vendor/lib")
    assert tree.submodules == {"vendor/lib": pinned}


# Digests


def test_same_files_have_the_same_digest_at_any_revision(work: Path, repo: Repository) -> None:
    unit = ["apps/base/deployment.yaml", "apps/base/kustomization.yaml"]
    before = repo.tree(repo.resolve("HEAD"))
    commit(work, {"README.md": b"# changed\n"})
    after = repo.tree(repo.resolve("HEAD"))

    assert after.digest(unit) == before.digest(unit)
    assert after.digest(reversed(unit)) == before.digest(unit + unit)  # a set: order, repeats
    assert after.digest(["README.md"]) != before.digest(["README.md"])
    assert after.digest() != before.digest()
    assert len(before.digest(unit)) == 64


def test_changing_one_file_changes_only_digests_containing_it(work: Path, repo: Repository) -> None:
    base_unit = ["apps/base/deployment.yaml", "apps/base/kustomization.yaml"]
    prod_unit = ["apps/prod/kustomization.yaml", *base_unit]
    cluster_unit = ["clusters/prod/apps.yaml"]
    before = repo.tree("HEAD")
    commit(work, {"apps/base/deployment.yaml": b"kind: Deployment\nreplicas: 2\n"})
    after = repo.tree("HEAD")

    assert after.digest(base_unit) != before.digest(base_unit)
    assert after.digest(prod_unit) != before.digest(prod_unit)
    assert after.digest(cluster_unit) == before.digest(cluster_unit)


def test_digest_depends_on_paths_not_only_contents(work: Path, repo: Repository) -> None:
    before = repo.tree("HEAD")
    git("mv", "README.md", "README.txt", cwd=work)
    git("commit", "--quiet", "--message", "rename", cwd=work)
    after = repo.tree("HEAD")

    assert after.digest(["README.txt"]) != before.digest(["README.md"])


def test_a_missing_file_counts_as_absent_in_a_digest(work: Path, repo: Repository) -> None:
    inputs = ["apps/prod/kustomization.yaml", "apps/prod/kustomization.yml"]
    before = repo.tree("HEAD")
    commit(work, {"apps/prod/kustomization.yml": b"resources: []\n"})
    after = repo.tree("HEAD")

    assert before.digest(inputs) != before.digest(inputs[:1])
    assert after.digest(inputs) != before.digest(inputs)


def test_digest_matches_a_tree_built_by_hand(repo: Repository) -> None:
    tree = repo.tree("HEAD")
    copy = Tree("elsewhere", dict(tree))

    assert copy.digest() == tree.digest()
    assert copy == tree


# Blob reads


def test_read_file_is_byte_exact(repo: Repository) -> None:
    tree = repo.tree("HEAD")

    for path, content in FILES.items():
        assert repo.read_file(tree, path) == content


def test_read_blob_of_large_binary_content(work: Path, repo: Repository) -> None:
    payload = os.urandom(3 << 20)
    commit(work, {"big.bin": payload})

    assert repo.read_file(repo.tree("HEAD"), "big.bin") == payload


def test_many_reads_go_through_one_process(work: Path, repo: Repository) -> None:
    files = {f"many/{i:04d}.yaml": f"index: {i}\n".encode() * (i % 7) for i in range(500)}
    commit(work, files)
    tree = repo.tree("HEAD")

    for _ in range(4):
        for path, content in files.items():
            assert repo.read_file(tree, path) == content
    assert len(_cat_file_children(work)) == 1

    repo.close()
    assert _cat_file_children(work) == []


def test_concurrent_reads_from_threads(work: Path, repo: Repository) -> None:
    files = {f"t/{i}.bin": os.urandom(i * 37) for i in range(200)}
    commit(work, files)
    tree = repo.tree("HEAD")

    def read_all(_: int) -> bool:
        return all(repo.read_file(tree, path) == data for path, data in files.items())

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(read_all, range(16)))
    assert len(_cat_file_children(work)) == 1


def test_unknown_and_non_blob_ids_are_errors_that_keep_the_reader_usable(
    work: Path, repo: Repository
) -> None:
    head = repo.resolve("HEAD")
    tree = repo.tree(head)

    with pytest.raises(GitError, match="does not exist"):
        repo.read_blob("0" * 40)
    with pytest.raises(GitError, match="is a commit, not a blob"):
        repo.read_blob(head)
    with pytest.raises(GitError, match="not a full object id"):
        repo.read_blob("HEAD:README.md")
    assert repo.read_file(tree, "README.md") == FILES["README.md"]


def test_reader_restarts_after_its_process_dies(work: Path, repo: Repository) -> None:
    tree = repo.tree("HEAD")
    assert repo.read_file(tree, "README.md") == FILES["README.md"]
    (pid,) = _cat_file_children(work)

    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 120  # generous: a busy machine may be slow to end it
    while _cat_file_children(work) and time.monotonic() < deadline:
        time.sleep(0.01)

    assert repo.read_file(tree, "apps/prod/logo.png") == BINARY
    assert _cat_file_children(work) not in ([], [pid])


def test_read_file_of_a_missing_path_is_an_error(repo: Repository) -> None:
    with pytest.raises(
        GitError, match=re.escape("'apps/missing.yaml' does not exist at revision main")
    ):
        repo.read_file(repo.tree("main"), "apps/missing.yaml")


# Materializing


def test_materialize_writes_files_byte_exact_with_git_modes(
    work: Path, repo: Repository, tmp_path: Path
) -> None:
    (work / "scripts").mkdir()
    (work / "scripts/run.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    (work / "scripts/run.sh").chmod(0o755)
    commit(work, {})
    tree = repo.tree("HEAD")
    dest = tmp_path / "out"
    old_umask = os.umask(0o077)  # modes must come from git, not from the umask
    try:
        repo.materialize(tree, [*FILES, "scripts/run.sh"], dest)
    finally:
        os.umask(old_umask)

    for path, content in FILES.items():
        assert (dest / path).read_bytes() == content
        assert (dest / path).stat().st_mode & 0o777 == 0o644
    assert (dest / "scripts/run.sh").stat().st_mode & 0o777 == 0o755
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()) == sorted(
        [*FILES, "scripts/run.sh"]
    )


def test_materialize_only_the_chosen_files_and_overwrites(repo: Repository, tmp_path: Path) -> None:
    tree = repo.tree("HEAD")
    dest = tmp_path / "out"
    (dest / "apps/base").mkdir(parents=True)
    (dest / "apps/base/deployment.yaml").write_bytes(b"stale and much longer than the new one\n")

    repo.materialize(tree, ["apps/base/deployment.yaml"], dest)

    assert (dest / "apps/base/deployment.yaml").read_bytes() == FILES["apps/base/deployment.yaml"]
    assert [p.name for p in dest.rglob("*") if p.is_file()] == ["deployment.yaml"]


@pytest.mark.parametrize(
    "path", ["../evil.yaml", "a/../../evil.yaml", "/etc/evil.yaml", "a//evil.yaml", "./evil"]
)
def test_materialize_refuses_paths_that_escape(tmp_path: Path, repo: Repository, path: str) -> None:
    blob = repo.tree("HEAD")["README.md"]
    crafted = Tree("crafted", {path: blob})
    dest = tmp_path / "deep" / "out"

    with pytest.raises(GitError, match="refusing to write"):
        repo.materialize(crafted, [path], dest)
    assert not (tmp_path / "evil.yaml").exists()
    assert not (tmp_path / "deep" / "evil.yaml").exists()


def test_materialize_does_not_write_through_symlinks_in_dest(
    repo: Repository, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "apps").symlink_to(outside, target_is_directory=True)
    (dest / "README.md").symlink_to(outside / "readme")

    with pytest.raises(GitError, match="outside the destination"):
        repo.materialize(repo.tree("HEAD"), ["apps/base/deployment.yaml"], dest)
    with pytest.raises(OSError, match=re.escape("README.md")):
        repo.materialize(repo.tree("HEAD"), ["README.md"], dest)
    assert list(outside.iterdir()) == []


def test_materialize_of_a_missing_path_is_an_error(repo: Repository, tmp_path: Path) -> None:
    with pytest.raises(GitError, match=re.escape("'nope.yaml' does not exist")):
        repo.materialize(repo.tree("HEAD"), ["nope.yaml"], tmp_path / "out")


# Repositories from the git server


def test_reads_a_repository_cloned_from_the_git_server(
    work: Path, git_remote: RemoteRepo, tmp_path: Path
) -> None:
    git("push", "--quiet", git_remote.push_url, "main", cwd=work)
    git("switch", "--quiet", "--create", "feature", cwd=work)
    head = commit(work, {"apps/prod/kustomization.yaml": b"resources:\n- ../base\n- extra\n"})
    git("push", "--quiet", git_remote.push_url, "feature", cwd=work)
    clone = tmp_path / "clone"
    git("clone", "--quiet", "--no-checkout", git_remote.url, str(clone))

    with Repository(clone) as repository:
        branch = repository.default_branch()
        base = repository.merge_base(f"origin/{branch}", "origin/feature")
        changed = repository.tree(repository.resolve("origin/feature"))
        original = repository.tree(base)

        assert branch == "main"
        assert repository.resolve("origin/feature") == head
        assert repository.read_file(changed, "apps/prod/logo.png") == BINARY
        assert changed.digest(["apps/base/deployment.yaml"]) == original.digest(
            ["apps/base/deployment.yaml"]
        )
        assert changed.digest(["apps/prod/kustomization.yaml"]) != original.digest(
            ["apps/prod/kustomization.yaml"]
        )
