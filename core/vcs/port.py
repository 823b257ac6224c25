"""The provider-neutral port through which Tidegate talks to a code host.

The pull-request app publishes reviews through it and the reconciler will report deploys through
it, so it names only what both need: a commit's status (a check run or a commit status), the
comments of one pull/merge request, and who may command Tidegate. Each provider adapter
(`core.vcs.github`, `core.vcs.gitlab`) maps these calls onto its client library; nothing here
performs I/O or knows a provider's wire format.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "Annotation",
    "CodeHost",
    "Comment",
    "CommitReport",
    "PullHead",
    "ReportState",
    "VcsError",
]


class VcsError(Exception):
    """A code host refused or failed a request after retries; the message names the call."""


class ReportState(enum.StrEnum):
    """The states a commit report moves through: pending, then one final state."""

    PENDING = "pending"
    SUCCESS = "success"
    FAILURE = "failure"
    """Blocking findings, or a render that could not prove the change safe."""
    ERROR = "error"
    """Tidegate itself could not finish."""


@dataclass(frozen=True)
class Annotation:
    """A finding pinned to a file of the repository."""

    path: str
    message: str
    title: str = ""
    line: int = 1
    level: str = "failure"
    """`notice`, `warning` or `failure`, as GitHub's check run annotations have them."""


@dataclass(frozen=True)
class CommitReport:
    """What Tidegate says about one commit under one name (`tidegate/preview`)."""

    name: str
    state: ReportState
    title: str
    summary: str = ""
    text: str = ""
    annotations: tuple[Annotation, ...] = ()
    details_url: str = ""


@dataclass(frozen=True)
class PullHead:
    """Where a pull/merge request stands now."""

    sha: str
    base_ref: str
    fork: bool
    open: bool


@dataclass(frozen=True)
class Comment:
    """One comment of a pull/merge request."""

    id: int
    body: str
    author: str


class CodeHost(Protocol):
    """One repository (GitHub) or project (GitLab) on a code host."""

    def report(self, sha: str, report: CommitReport) -> None:
        """Set the report on `sha`, replacing an earlier report of the same name on that sha."""

    def pull(self, number: int) -> PullHead:
        """The pull/merge request's current head and base."""

    def comments(self, number: int) -> list[Comment]:
        """Every comment of the pull/merge request, oldest first."""

    def create_comment(self, number: int, body: str) -> Comment:
        """Add a comment to the pull/merge request."""

    def edit_comment(self, number: int, comment_id: int, body: str) -> None:
        """Replace the body of one comment."""

    def delete_comment(self, number: int, comment_id: int) -> None:
        """Delete one comment."""

    def can_write(self, user: str) -> bool:
        """Whether `user` may push to the repository (and so command Tidegate)."""

    def approvers(self, number: int, sha: str) -> Sequence[str]:
        """Users whose approval of the pull/merge request counts for its head `sha`.

        As the provider counts approvals for merging, never more loosely: nobody while `sha`
        is no longer the head.
        """

    def in_team(self, user: str, team: str) -> bool:
        """Whether `user` belongs to `team` as the provider counts code owners.

        `team` is a CODEOWNERS owner without its `@`: `org/team-slug` on GitHub (an active
        member of the organization's team), `group/subgroup` on GitLab (a direct member of the
        group). A team or user that does not exist is no membership; a failed lookup raises
        `VcsError`.
        """
