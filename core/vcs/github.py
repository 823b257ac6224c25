"""The GitHub adapter of the code-host port, on PyGithub.

App mode reports through a check run (summary, text and annotations, which GitHub accepts 50 at a
time per request); token mode, where check runs are not writable, through a commit status.
Requests that fail with a 5xx or a rate limit are retried with backoff (`core.vcs.retry`);
PyGithub's own retrying is switched off so there is one policy, with a sleep tests can replace.
Tokens live only in the PyGithub client: nothing here logs or returns them.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from github import Auth, Github, GithubException, RateLimitExceededException
from github.CheckRun import CheckRun
from github.GithubObject import NotSet
from github.Repository import Repository

from core.vcs.github_tokens import InstallationTokenAuth, InstallationTokens
from core.vcs.port import Annotation, Comment, CommitReport, PullHead, ReportState, VcsError
from core.vcs.retry import RetryPolicy, Transient, call_with_retries

__all__ = ["ANNOTATION_BATCH", "GitHubAuth", "GitHubHost", "connect"]

T = TypeVar("T")

ANNOTATION_BATCH = 50
"""GitHub takes at most 50 annotations per check run request."""

_STATUS_DESCRIPTION = 140
_CHECK_TEXT = 65_535
_COMMENT = 65_536
_STATUS_STATES = {
    ReportState.PENDING: "pending",
    ReportState.SUCCESS: "success",
    ReportState.FAILURE: "failure",
    ReportState.ERROR: "error",
}
# Check runs have no "error" conclusion; both failures block the merge and the title says which.
_CONCLUSIONS = {
    ReportState.SUCCESS: "success",
    ReportState.FAILURE: "failure",
    ReportState.ERROR: "failure",
}
_DEFAULT_RETRY = RetryPolicy()
_WRITE_PERMISSIONS = frozenset({"admin", "maintain", "write"})
# Names as GitHub allows them; anything else never reaches a URL (CODEOWNERS is repository text).
_ORG = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")
_SLUG = re.compile(r"[A-Za-z0-9_.-]{1,100}")
_USER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")


@dataclass(frozen=True)
class GitHubAuth:
    """How to authenticate: an App installation (check runs) or a token (commit statuses)."""

    token: str = ""
    app_id: str = ""
    private_key: str = ""
    installation_id: int = 0

    @property
    def app(self) -> bool:
        """Whether this is GitHub App authentication."""
        return bool(self.app_id)

    def __repr__(self) -> str:
        return f"GitHubAuth(app_id={self.app_id!r}, installation_id={self.installation_id})"


def connect(
    base_url: str,
    auth: GitHubAuth,
    *,
    timeout: float = 30.0,
    tokens: InstallationTokens | None = None,
) -> tuple[Github, Auth.Auth]:
    """Return a client and its credentials.

    In App mode every request takes the installation's token from `tokens` (cached, renewed
    before it expires; pass one `InstallationTokens` per process so jobs share it); without it
    the client gets a cache of its own. Give the credentials to `GitHubHost(reauthenticate=...)`
    so that a 401 renews the token.
    """
    credentials: Auth.Auth
    if auth.app:
        minted = tokens or InstallationTokens(
            base_url, auth.app_id, auth.private_key, timeout=timeout
        )
        credentials = minted.auth(auth.installation_id)
    else:
        credentials = Auth.Token(auth.token)
    client = Github(base_url=base_url, auth=credentials, retry=None, timeout=int(timeout))
    return client, credentials


class GitHubHost:
    """One GitHub repository behind the `CodeHost` port."""

    def __init__(
        self,
        client: Github,
        repository: str,
        *,
        checks: bool,
        retry: RetryPolicy = _DEFAULT_RETRY,
        on_error: Callable[[str], None] | None = None,
        credentials: Auth.Auth | None = None,
    ) -> None:
        """Wrap `client` for `repository`.

        `credentials`: the client's App credentials from `connect`; a 401 then renews the
        installation token and repeats the call once.
        """
        self._client = client
        self._renew = (
            credentials.refused if isinstance(credentials, InstallationTokenAuth) else None
        )
        self._name = repository
        self._checks = checks
        self._retry = retry
        self._on_error = on_error or (lambda _call: None)
        self._repository: Repository | None = None

    @property
    def rate_limit_remaining(self) -> int:
        """Requests left in the current rate-limit window, as the last response said."""
        return self._client.rate_limiting[0]

    def report(self, sha: str, report: CommitReport) -> None:
        """Set the check run (App) or commit status (token) named `report.name` on `sha`."""
        if self._checks:
            self._check_run(sha, report)
        else:
            self._call("create status", lambda: self._status(sha, report))

    def latest_status(self, sha: str, name: str) -> tuple[ReportState, str] | None:
        """State and description of the newest commit status named `name` on `sha`, if any.

        Only the first page (newest first) is read, as Flux does before posting a duplicate. An
        App reports through check runs: then the newest check run of that name and its title.
        """
        if self._checks:
            return self._call("list check runs", lambda: self._latest_check(sha, name))

        def read() -> tuple[ReportState, str] | None:
            # PyGithub lists through the legacy `/statuses/{sha}` route, which GitHub's API
            # description no longer has; this is the documented one.
            _, statuses = self._client.requester.requestJsonAndCheck(
                "GET", f"{self._repo().url}/commits/{sha}/statuses", parameters={"per_page": 50}
            )
            for status in statuses if isinstance(statuses, list) else []:
                if isinstance(status, dict) and status.get("context") == name:
                    return ReportState(status["state"]), str(status.get("description") or "")
            return None

        return self._call("list statuses", read)

    def comment_on_commit(self, sha: str, body: str) -> None:
        """Add a comment to the commit itself (no pull request needed)."""
        self._call(
            "create commit comment",
            lambda: self._repo().get_commit(sha).create_comment(body[:_COMMENT]),
        )

    def pull(self, number: int) -> PullHead:
        """The pull request's head commit, base branch and whether it comes from a fork."""

        def read() -> PullHead:
            pull = self._repo().get_pull(number)
            head_repo = pull.head.repo.full_name if pull.head.repo is not None else ""
            return PullHead(
                sha=pull.head.sha,
                base_ref=pull.base.ref,
                fork=head_repo != self._name,
                open=pull.state == "open",
            )

        return self._call("read pull request", read)

    def comments(self, number: int) -> list[Comment]:
        """Every comment of the pull request, oldest first."""

        def read() -> list[Comment]:
            issue = self._repo().get_issue(number)
            return [
                Comment(id=c.id, body=c.body or "", author=c.user.login if c.user else "")
                for c in issue.get_comments()
            ]

        return self._call("list comments", read)

    def create_comment(self, number: int, body: str) -> Comment:
        """Add a comment to the pull request."""

        def create() -> Comment:
            made = self._repo().get_issue(number).create_comment(body)
            return Comment(id=made.id, body=made.body or "", author=made.user.login)

        return self._call("create comment", create)

    def edit_comment(self, number: int, comment_id: int, body: str) -> None:
        """Replace one comment's body."""
        self._call(
            "edit comment",
            lambda: self._repo().get_issue(number).get_comment(comment_id).edit(body),
        )

    def delete_comment(self, number: int, comment_id: int) -> None:
        """Delete one comment."""
        self._call(
            "delete comment",
            lambda: self._repo().get_issue(number).get_comment(comment_id).delete(),
        )

    def can_write(self, user: str) -> bool:
        """Whether `user` has write, maintain or admin permission on the repository."""

        def read() -> bool:
            try:
                permission = self._repo().get_collaborator_permission(user)
            except GithubException as exc:
                if exc.status == 404:
                    return False
                raise
            return permission in _WRITE_PERMISSIONS

        return self._call("read permission", read)

    def approvers(self, number: int, sha: str) -> Sequence[str]:
        """Users whose latest review approves commit `sha` of the pull request.

        A user's latest review that is not a comment decides (a later "changes requested" or a
        dismissal withdraws an approval), as GitHub counts reviews. An approval of an older
        commit does not count even where branch protection keeps stale approvals: that setting
        is readable only with administration rights, so Tidegate takes the stricter reading.
        """

        def read() -> list[str]:
            latest: dict[str, Any] = {}
            for review in self._repo().get_pull(number).get_reviews():
                if review.user is not None and review.state != "COMMENTED":
                    latest[review.user.login] = review
            return sorted(
                login
                for login, review in latest.items()
                if review.state == "APPROVED" and review.commit_id == sha
            )

        return self._call("read reviews", read)

    def in_team(self, user: str, team: str) -> bool:
        """Whether `user` is an active member of the organization's team `org/slug`.

        GitHub counts members of child teams too, and so does this membership endpoint; an
        invitation not yet accepted (`pending`) is no membership. Reading it takes the App's
        organization permission "Members: read".
        """
        org, _, slug = team.partition("/")
        if not (_ORG.fullmatch(org) and _SLUG.fullmatch(slug) and _USER.fullmatch(user)):
            return False
        route = f"/orgs/{org}/teams/{slug}/memberships/{user}"

        def read() -> bool:
            try:
                _, membership = self._client.requester.requestJsonAndCheck("GET", route)
            except GithubException as exc:
                if exc.status == 404:
                    return False
                raise
            return isinstance(membership, dict) and membership.get("state") == "active"

        return self._call("read team membership", read)

    def _repo(self) -> Repository:
        if self._repository is None:
            self._repository = self._client.get_repo(self._name)
        return self._repository

    def _status(self, sha: str, report: CommitReport) -> None:
        description = report.title
        if len(description) > _STATUS_DESCRIPTION:
            description = description[: _STATUS_DESCRIPTION - 1] + "…"
        self._repo().get_commit(sha).create_status(
            state=_STATUS_STATES[report.state],
            target_url=report.details_url or NotSet,
            description=description,
            context=report.name,
        )

    def _check_run(self, sha: str, report: CommitReport) -> None:
        batches = [
            report.annotations[i : i + ANNOTATION_BATCH]
            for i in range(0, len(report.annotations), ANNOTATION_BATCH)
        ] or [()]
        fields: dict[str, Any] = {"status": "in_progress"}
        if report.state is not ReportState.PENDING:
            fields = {"status": "completed", "conclusion": _CONCLUSIONS[report.state]}
        if report.details_url:
            fields["details_url"] = report.details_url
        existing = self._call("list check runs", lambda: self._open_check(sha, report.name))
        repo = self._repo()
        for batch in batches:
            output: dict[str, Any] = {
                "title": report.title,
                "summary": report.summary[:_CHECK_TEXT] or report.title,
                "text": report.text[:_CHECK_TEXT],
                "annotations": [_annotation(a) for a in batch],
            }
            if existing is None:
                create = functools.partial(
                    repo.create_check_run, name=report.name, head_sha=sha, output=output, **fields
                )
                existing = self._call("create check run", create)
            else:
                # Annotations add up across requests, so later batches carry only their own.
                edit = functools.partial(existing.edit, output=output, **fields)
                self._call("update check run", edit)

    def _latest_check(self, sha: str, name: str) -> tuple[ReportState, str] | None:
        for run in self._repo().get_commit(sha).get_check_runs(check_name=name):
            title = str((run.output.title if run.output is not None else "") or "")
            if run.status != "completed":
                return ReportState.PENDING, title
            success = run.conclusion in ("success", "neutral", "skipped")
            return (ReportState.SUCCESS if success else ReportState.FAILURE), title
        return None

    def _open_check(self, sha: str, name: str) -> CheckRun | None:
        """The run still in progress under `name` on `sha`, if any.

        A completed run is never reopened: its annotations would pile up with the new ones.
        """
        for run in self._repo().get_commit(sha).get_check_runs(check_name=name):
            if run.status != "completed":
                return run
        return None

    def _call(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call_with_retries(lambda: self._authenticated(call), _classify, self._retry)
        except (GithubException, requests.RequestException) as exc:
            self._on_error(what)
            raise VcsError(f"GitHub {what} in {self._name} failed: {_reason(exc)}") from None

    def _authenticated(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except GithubException as exc:
            if exc.status != 401 or self._renew is None:
                raise
        # The installation token was revoked or expired early: one more try with a new one.
        self._renew()
        return call()


def _annotation(annotation: Annotation) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "path": annotation.path,
        "start_line": annotation.line,
        "end_line": annotation.line,
        "annotation_level": annotation.level,
        "message": annotation.message[:64_000],
    }
    if annotation.title:
        entry["title"] = annotation.title[:255]
    return entry


def _classify(exc: Exception) -> Transient:
    if isinstance(exc, RateLimitExceededException):
        return Transient(retry=True, wait=_reset_wait(exc.headers or {}))
    if isinstance(exc, GithubException):
        headers = exc.headers or {}
        if exc.status == 429 or (exc.status == 403 and headers.get("x-ratelimit-remaining") == "0"):
            return Transient(retry=True, wait=_reset_wait(headers))
        return Transient(retry=exc.status >= 500)
    return Transient(retry=isinstance(exc, requests.ConnectionError | requests.Timeout))


def _reset_wait(headers: dict[str, str]) -> float:
    if "retry-after" in headers:
        try:
            return float(headers["retry-after"])
        except ValueError:
            return 0.0
    try:
        return max(0.0, float(headers.get("x-ratelimit-reset", "0")) - time.time())
    except ValueError:
        return 0.0


def _reason(exc: Exception) -> str:
    if isinstance(exc, GithubException):
        message = exc.data.get("message") if isinstance(exc.data, dict) else None
        return f"HTTP {exc.status}" + (f": {str(message)[:200]}" if message else "")
    return type(exc).__name__
