"""Commits in the demo's scratch work trees: git with the demo's fixed identity.

`tidegate demo` builds its example repositories (the `--preview-only` fleet and the story's
fleet) by committing whole work trees; both go through here so that they commit the same way.
It runs git through the command runner and nothing else: no pushing, no network.
"""

from __future__ import annotations

from pathlib import Path

from core.host.command import run

__all__ = ["commit_all", "git"]

# A fixed identity, passed per command: the demo must not depend on (or change) the user's config.
_IDENTITY = ("-c", "user.name=Tidegate Demo", "-c", "user.email=demo@tidegate.dev")


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` and return its stdout."""
    return run(["git", *_IDENTITY, *args], cwd=repo).decode()


def commit_all(repo: Path, message: str) -> None:
    """Stage every change in the work tree (deletions included) and commit it."""
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", message)
