"""Wires the policy gate to a git repository: the two revisions' files, rules and waivers.

The command line's only job here is adapting `core.repo` trees to `policies.gate.RevisionFiles`
and passing the approvals given on the command line; what is read from which revision is
decided in `policies.gate` and `policies.waivers`.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from core.changes import Preview
from core.repo.git import Repository, Tree
from policies import gate
from policies.cel.rules import load_user_rules
from policies.input import DEFAULT_KUBE_VERSION
from policies.rules import schemas
from policies.rules.api_versions import parse_minor
from policies.waivers import CODEOWNERS_OF, Approval, Waivers

__all__ = ["TreeFiles", "evaluate_preview", "warm_up"]


class TreeFiles:
    """One revision's files, read from git without a checkout."""

    def __init__(self, repo: Repository, tree: Tree) -> None:
        self.repo = repo
        self.tree = tree

    def read(self, path: str) -> bytes | None:
        """Return a file's content, or None when it is absent (or not a regular file)."""
        if not self.tree.is_file(path):
            return None
        return self.repo.read_file(self.tree, path)

    def files(self, directory: str) -> list[str]:
        """Return the files under a directory, sorted."""
        if not self.tree.is_dir(directory):
            return []
        return sorted(self.tree.walk(directory))


def evaluate_preview(
    repo: Repository,
    preview: Preview,
    *,
    approved_by: Sequence[str] = (),
    codeowners_of: str = "github",
) -> gate.GateOutcome:
    """Evaluate the policy gate of a preview with the base revision's configuration and rules."""
    base = TreeFiles(repo, repo.tree(preview.base))
    head = TreeFiles(repo, repo.tree(preview.head))
    # Approvals given on the command line stand for reviews of the head commit.
    approvals = [Approval(reviewer, preview.head) for reviewer in approved_by]
    today = datetime.datetime.now(datetime.UTC).date()
    return gate.run_gate(
        preview,
        base,
        head,
        user_rules=load_user_rules,
        waivers=lambda policy_input, b, h, rules: Waivers(
            policy_input,
            b,
            h,
            rules,
            approvals=approvals,
            today=today,
            codeowners_files=CODEOWNERS_OF[codeowners_of],
        ),
    )


def warm_up() -> None:
    """Compile now what the gate compiles on first use: the default release's common schemas.

    For a process that serves previews one after another, so that its first pull request with a
    change does not pay for them. Changes no result.
    """
    schemas.preload(parse_minor(DEFAULT_KUBE_VERSION))
