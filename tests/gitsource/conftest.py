"""A repository with every kind of ref, on the secure git servers, for the source tests."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.gitserver import SecureGit, commit, git

_names = itertools.count()


@dataclass(frozen=True)
class Fleet:
    """A repository on the secure servers, and the commits its refs point at."""

    name: str
    work: Path
    """A work tree whose pushes go to the repository."""
    bare: Path
    main: str
    """Head of `main` (also tagged v1.1.0, annotated)."""
    first: str
    """The first commit of `main` (tagged v1.0.0, lightweight)."""
    release: str
    """Head of the `release` branch and of `refs/pull/1/head`."""
    master: str
    """Head of `master`, the branch Flux's API defaults to."""

    def push(self, files: dict[str, bytes | None], branch: str = "main") -> str:
        """Commit `files` on `branch` and push it; return the new commit."""
        git("checkout", "--quiet", branch, cwd=self.work)
        head = commit(self.work, files)
        git("push", "--quiet", "--force", str(self.bare), f"{branch}:{branch}", cwd=self.work)
        return head


@pytest.fixture
def fleet(secure_git: SecureGit, tmp_path: Path) -> Fleet:
    name = secure_git.create_repo(f"fleet-{next(_names)}")
    bare = secure_git.https.root / f"{name}.git"
    work = tmp_path / "work"
    git("init", "--quiet", "--initial-branch=main", str(work))
    first = commit(work, {"deploy/app.yaml": b"kind: ConfigMap\n"}, "first")
    git("tag", "v1.0.0", cwd=work)
    main = commit(work, {"deploy/app.yaml": b"kind: ConfigMap\ndata: {}\n"}, "second")
    git("tag", "--annotate", "--message", "release 1.1", "v1.1.0", cwd=work)
    git("tag", "not-a-version", cwd=work)
    git("checkout", "--quiet", "-b", "release", first, cwd=work)
    release = commit(work, {"release.yaml": b"kind: Secret\n"}, "release")
    git("tag", "v2.0.0-rc.1", cwd=work)
    git("checkout", "--quiet", "-b", "master", first, cwd=work)
    master = commit(work, {"master.yaml": b"kind: Namespace\n"}, "master")
    git("checkout", "--quiet", "main", cwd=work)
    git("push", "--quiet", str(bare), "main", "release", "master", "--tags", cwd=work)
    git("push", "--quiet", str(bare), f"{release}:refs/pull/1/head", cwd=work)
    return Fleet(name, work, bare, main, first, release, master)
