"""The GitLab adapter of the code-host port, on python-gitlab.

Reports are commit statuses on the head (`running` while rendering, then `success` or
`failed`). GitLab's status state machine refuses to re-post a state a status already has
("Cannot transition status via :run from :running"): that answer means the status already says
what we want, so it is taken as success. Notes are listed oldest first and system notes are
skipped. 5xx answers and rate limits are retried with backoff (`core.vcs.retry`); python-gitlab's
own retrying is off so there is one policy.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import gitlab
import requests
from gitlab.exceptions import GitlabError

from core.vcs.port import Comment, CommitReport, PullHead, ReportState, VcsError
from core.vcs.retry import RetryPolicy, Transient, call_with_retries

__all__ = ["GitLabHost", "connect"]

T = TypeVar("T")

_STATES = {
    ReportState.PENDING: "running",
    ReportState.SUCCESS: "success",
    ReportState.FAILURE: "failed",
    ReportState.ERROR: "failed",
}
_REPORT_STATES = {
    "running": ReportState.PENDING,
    "pending": ReportState.PENDING,
    "success": ReportState.SUCCESS,
    "failed": ReportState.FAILURE,
}
_NOTE = 1_000_000
"""GitLab's limit on a note's length, in characters."""
_DEVELOPER = 30
"""GitLab's access level that may push: Developer and above."""
_DEFAULT_RETRY = RetryPolicy()
_GROUP = re.compile(r"[A-Za-z0-9_.-]{1,255}(?:/[A-Za-z0-9_.-]{1,255}){0,20}")
"""A group's full path; anything else never reaches a URL (CODEOWNERS is repository text)."""


def connect(url: str, token: str, *, timeout: float = 30.0) -> gitlab.Gitlab:
    """Return a client authenticated with a project, group or personal access token."""
    return gitlab.Gitlab(
        url, private_token=token, timeout=timeout, retry_transient_errors=False, keep_base_url=True
    )


class GitLabHost:
    """One GitLab project behind the `CodeHost` port."""

    def __init__(
        self,
        client: gitlab.Gitlab,
        project: int | str,
        *,
        retry: RetryPolicy = _DEFAULT_RETRY,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self._client = client
        self._project = client.projects.get(project, lazy=True)
        self._name = str(project)
        self._retry = retry
        self._on_error = on_error or (lambda _call: None)

    def report(self, sha: str, report: CommitReport) -> None:
        """Set the commit status named `report.name` on `sha`."""
        fields: dict[str, Any] = {
            "state": _STATES[report.state],
            "name": report.name,
            "description": report.title[:255],
        }
        if report.details_url:
            fields["target_url"] = report.details_url

        def post() -> None:
            commit = self._project.commits.get(sha, lazy=True)
            try:
                commit.statuses.create(fields)
            except GitlabError as exc:
                if exc.response_code == 400 and "Cannot transition status" in str(exc):
                    return  # the status already has this state
                raise

        self._call("set commit status", post)

    def latest_status(self, sha: str, name: str) -> tuple[ReportState, str] | None:
        """State and description of the newest commit status named `name` on `sha`, if any."""

        def read() -> tuple[ReportState, str] | None:
            commit = self._project.commits.get(sha, lazy=True)
            statuses = commit.statuses.list(name=name, get_all=False)
            newest = max(
                (s for s in statuses if s.name == name), key=lambda s: int(s.id), default=None
            )
            if newest is None or newest.status not in _REPORT_STATES:
                return None
            return _REPORT_STATES[newest.status], newest.description or ""

        return self._call("list commit statuses", read)

    def comment_on_commit(self, sha: str, body: str) -> None:
        """Add a note to the commit itself (no merge request needed)."""

        def create() -> None:
            commit = self._project.commits.get(sha, lazy=True)
            commit.comments.create({"note": body[:_NOTE]})

        self._call("create commit comment", create)

    def pull(self, number: int) -> PullHead:
        """The merge request's head, target branch and whether it comes from a fork."""

        def read() -> PullHead:
            mr = self._project.mergerequests.get(number)
            return PullHead(
                sha=mr.sha,
                base_ref=mr.target_branch,
                fork=mr.source_project_id != mr.target_project_id,
                open=mr.state == "opened",
            )

        return self._call("read merge request", read)

    def comments(self, number: int) -> list[Comment]:
        """The merge request's notes by people and bots, oldest first (system notes left out)."""

        def read() -> list[Comment]:
            mr = self._project.mergerequests.get(number, lazy=True)
            notes = mr.notes.list(get_all=True, sort="asc", order_by="created_at")
            return [
                Comment(id=n.id, body=n.body, author=n.author["username"])
                for n in notes
                if not getattr(n, "system", False)
            ]

        return self._call("list notes", read)

    def create_comment(self, number: int, body: str) -> Comment:
        """Add a note."""

        def create() -> Comment:
            mr = self._project.mergerequests.get(number, lazy=True)
            note = mr.notes.create({"body": body})
            return Comment(id=note.id, body=note.body, author=note.author["username"])

        return self._call("create note", create)

    def edit_comment(self, number: int, comment_id: int, body: str) -> None:
        """Replace a note's body."""

        def edit() -> None:
            mr = self._project.mergerequests.get(number, lazy=True)
            mr.notes.update(comment_id, {"body": body})

        self._call("edit note", edit)

    def delete_comment(self, number: int, comment_id: int) -> None:
        """Delete a note."""

        def delete() -> None:
            mr = self._project.mergerequests.get(number, lazy=True)
            mr.notes.delete(comment_id)

        self._call("delete note", delete)

    def can_write(self, user: str) -> bool:
        """Whether `user` is a member with Developer access or more (inherited included)."""

        def read() -> bool:
            users = self._client.users.list(username=user, get_all=False)
            if not users:
                return False
            try:
                member = self._project.members_all.get(users[0].id)
            except GitlabError as exc:
                if exc.response_code == 404:
                    return False
                raise
            return int(member.access_level) >= _DEVELOPER

        return self._call("read membership", read)

    def approvers(self, number: int, sha: str) -> Sequence[str]:
        """Users whose approval of the merge request stands while `sha` is its head.

        GitLab records approvals per merge request, not per commit, and removes them on a push
        when the project says so ("Remove all approvals when commits are added"); the approvals
        it lists are those it counts for merging, so they are the ones that count here, and
        none once the head moved past `sha`.
        """

        def read() -> list[str]:
            mr = self._project.mergerequests.get(number)
            if mr.sha != sha:
                return []
            approvals = mr.approvals.get()
            return sorted(a["user"]["username"] for a in approvals.approved_by)

        return self._call("read approvals", read)

    def in_team(self, user: str, team: str) -> bool:
        """Whether `user` is a direct member of the group (or subgroup) at path `team`.

        GitLab counts a group's direct members as its code owners, not members it inherits
        from a parent group; a membership awaiting approval is none.
        """
        if not _GROUP.fullmatch(team) or ".." in team:
            return False

        def read() -> bool:
            users = self._client.users.list(username=user, get_all=False)
            if not users:
                return False
            group = self._client.groups.get(team, lazy=True)
            try:
                member = group.members.get(users[0].id)
            except GitlabError as exc:
                if exc.response_code == 404:
                    return False
                raise
            return getattr(member, "state", "active") == "active"

        return self._call("read group membership", read)

    def _call(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call_with_retries(call, _classify, self._retry)
        except (GitlabError, requests.RequestException) as exc:
            self._on_error(what)
            raise VcsError(f"GitLab {what} in {self._name} failed: {_reason(exc)}") from None


def _classify(exc: Exception) -> Transient:
    if isinstance(exc, GitlabError):
        code = exc.response_code or 0
        return Transient(retry=code >= 500 or code == 429)
    return Transient(retry=isinstance(exc, requests.ConnectionError | requests.Timeout))


def _reason(exc: Exception) -> str:
    if isinstance(exc, GitlabError):
        return f"HTTP {exc.response_code}: {str(exc.error_message)[:200]}"
    return type(exc).__name__
