"""Webhook deliveries from GitHub and GitLab: verify them, then read what Tidegate acts on.

Pure functions over headers and raw bytes, no web framework: the app calls `verify_*` on the raw
body before parsing anything (GitHub signs the body with HMAC-SHA256, GitLab sends the shared
token in plain text; both are compared in constant time), then `parse_*` turns the JSON into one
`Delivery`. Payloads come from the network and are trusted only as far as the signature goes:
every field read is type-checked, and a payload that lacks a field Tidegate needs is a
`WebhookError`, which the app answers with a 4xx. Events Tidegate does not act on parse to a
delivery with `work=None` ("ignored"), so they are acknowledged and never stored.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "COMMAND_PREFIX",
    "Delivery",
    "Provider",
    "WebhookError",
    "Work",
    "WorkKind",
    "parse_github",
    "parse_gitlab",
    "verify_github",
    "verify_gitlab",
]

COMMAND_PREFIX = "/tidegate"


class WebhookError(Exception):
    """A delivery that is unsigned, forged or malformed; the message is safe to return."""


class Provider(enum.StrEnum):
    """The code host a delivery came from."""

    GITHUB = "github"
    GITLAB = "gitlab"


class WorkKind(enum.StrEnum):
    """What a delivery asks Tidegate to do."""

    REVIEW = "review"
    """Preview the pull/merge request's head and publish the result."""
    CLOSE = "close"
    """The pull/merge request was closed or merged: drop its queued work."""
    COMMAND = "command"
    """A `/tidegate ...` comment: run it if the author may."""


@dataclass(frozen=True)
class Work:
    """The provider-neutral job a delivery creates."""

    kind: WorkKind
    repository: str
    """`owner/name` (GitHub) or the project's full path (GitLab)."""
    number: int
    """Pull request number or merge request iid."""
    head_sha: str = ""
    base_ref: str = ""
    clone_url: str = ""
    fork: bool = False
    """Whether the head lives in another repository than the base."""
    installation_id: int = 0
    project_id: int = 0
    command: str = ""
    actor: str = ""
    comment_id: int = 0


@dataclass(frozen=True)
class Delivery:
    """One verified delivery: its id, its event and the work it asks for (None: ignored)."""

    provider: Provider
    delivery_id: str
    event: str
    work: Work | None


def verify_github(secret: bytes, body: bytes, signature: str | None) -> None:
    """Check `X-Hub-Signature-256` against HMAC-SHA256 of the raw body.

    Raises:
        WebhookError: the header is missing, malformed or does not match.
    """
    if not secret:
        raise WebhookError("no webhook secret is configured")
    if not signature or not signature.startswith("sha256="):
        raise WebhookError("missing or malformed X-Hub-Signature-256")
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise WebhookError("signature does not match")


def verify_gitlab(secret: bytes, token: str | None) -> None:
    """Check `X-Gitlab-Token` against the configured secret in constant time.

    Raises:
        WebhookError: the header is missing or does not match.
    """
    if not secret:
        raise WebhookError("no webhook secret is configured")
    if not token or not hmac.compare_digest(secret, token.encode("utf-8", "replace")):
        raise WebhookError("missing or wrong X-Gitlab-Token")


def parse_github(headers: Mapping[str, str], body: bytes) -> Delivery:
    """Read a verified GitHub delivery.

    Raises:
        WebhookError: missing headers, invalid JSON, or a payload without a needed field.
    """
    event = _header(headers, "X-GitHub-Event")
    delivery_id = _header(headers, "X-GitHub-Delivery")
    payload = _json(body)
    reader = _GITHUB.get(event)
    work = reader(payload) if reader else None
    return Delivery(Provider.GITHUB, delivery_id, event, work)


def parse_gitlab(headers: Mapping[str, str], body: bytes) -> Delivery:
    """Read a verified GitLab delivery (its id is `X-Gitlab-Event-UUID`).

    Raises:
        WebhookError: missing headers, invalid JSON, or a payload without a needed field.
    """
    event = _header(headers, "X-Gitlab-Event")
    delivery_id = _header(headers, "X-Gitlab-Event-UUID")
    payload = _json(body)
    reader = _GITLAB.get(event)
    work = reader(payload) if reader else None
    return Delivery(Provider.GITLAB, delivery_id, event, work)


# GitHub


_GITHUB_REVIEW_ACTIONS = frozenset({"opened", "synchronize", "reopened", "ready_for_review"})


def _github_pull_request(payload: Mapping[str, Any]) -> Work | None:
    action = _str(payload, "action")
    pull = _obj(payload, "pull_request")
    repository = _obj(payload, "repository")
    name = _str(repository, "full_name")
    number = _int(payload, "number")
    if action == "closed":
        return Work(WorkKind.CLOSE, name, number)
    if action not in _GITHUB_REVIEW_ACTIONS or pull.get("draft") is True:
        return None
    head, base = _obj(pull, "head"), _obj(pull, "base")
    head_repo = head.get("repo")
    head_name = _str(head_repo, "full_name") if isinstance(head_repo, Mapping) else ""
    return Work(
        WorkKind.REVIEW,
        name,
        number,
        head_sha=_sha(head, "sha"),
        base_ref=_str(base, "ref"),
        clone_url=_str(repository, "clone_url"),
        fork=head_name != name,
        installation_id=_installation(payload),
    )


def _github_review(payload: Mapping[str, Any]) -> Work | None:
    # A review submitted or dismissed may change which findings are approved: review the head
    # again (approvals are read from the API then, never from this payload).
    if _str(payload, "action") not in ("submitted", "dismissed"):
        return None
    if _obj(payload, "pull_request").get("state") != "open":
        return None
    return _github_pull_request(
        {**payload, "action": "synchronize", "number": _pull_number(payload)}
    )


def _pull_number(payload: Mapping[str, Any]) -> int:
    return _int(_obj(payload, "pull_request"), "number")


def _github_issue_comment(payload: Mapping[str, Any]) -> Work | None:
    issue = _obj(payload, "issue")
    if _str(payload, "action") != "created" or not isinstance(issue.get("pull_request"), Mapping):
        return None
    comment = _obj(payload, "comment")
    command = _command(_str(comment, "body"))
    if command is None:
        return None
    return Work(
        WorkKind.COMMAND,
        _str(_obj(payload, "repository"), "full_name"),
        _int(issue, "number"),
        clone_url=_str(_obj(payload, "repository"), "clone_url"),
        installation_id=_installation(payload),
        command=command,
        actor=_str(_obj(comment, "user"), "login"),
        comment_id=_int(comment, "id"),
    )


def _github_check_rerequest(key: str) -> Any:
    def read(payload: Mapping[str, Any]) -> Work | None:
        if _str(payload, "action") != "rerequested":
            return None
        suite = _obj(payload, key)
        if key == "check_run":
            suite = _obj(suite, "check_suite")
        pulls = suite.get("pull_requests")
        if not isinstance(pulls, list) or not pulls or not isinstance(pulls[0], Mapping):
            return None
        repository = _obj(payload, "repository")
        return Work(
            WorkKind.REVIEW,
            _str(repository, "full_name"),
            _int(pulls[0], "number"),
            head_sha=_sha(suite, "head_sha"),
            base_ref=_str(_obj(pulls[0], "base"), "ref"),
            clone_url=_str(repository, "clone_url"),
            installation_id=_installation(payload),
        )

    return read


def _github_push(payload: Mapping[str, Any]) -> Work | None:
    # Pushes to a pull request's branch arrive as `pull_request.synchronize`; a push alone names
    # no pull request, so it is acknowledged and left to that event.
    _str(_obj(payload, "repository"), "full_name")
    return None


def _installation(payload: Mapping[str, Any]) -> int:
    installation = payload.get("installation")
    if isinstance(installation, Mapping):
        return _int(installation, "id")
    return 0


_GITHUB = {
    "pull_request": _github_pull_request,
    "pull_request_review": _github_review,
    "issue_comment": _github_issue_comment,
    "check_suite": _github_check_rerequest("check_suite"),
    "check_run": _github_check_rerequest("check_run"),
    "push": _github_push,
}


# GitLab


_GITLAB_REVIEW_ACTIONS = frozenset({"open", "reopen", "update"})
_GITLAB_APPROVAL_ACTIONS = frozenset({"approved", "unapproved", "approval", "unapproval"})
"""Approvals change which findings are approved: the head is reviewed again."""


def _gitlab_merge_request(payload: Mapping[str, Any]) -> Work | None:
    attributes = _obj(payload, "object_attributes")
    project = _obj(payload, "project")
    action = attributes.get("action")
    path, iid = _str(project, "path_with_namespace"), _int(attributes, "iid")
    if action in ("close", "merge"):
        return Work(WorkKind.CLOSE, path, iid)
    if action not in _GITLAB_REVIEW_ACTIONS | _GITLAB_APPROVAL_ACTIONS:
        return None
    if action == "update" and "oldrev" not in attributes:
        return None  # a title, label or description edit: the code did not change
    if attributes.get("draft") is True:
        return None
    return Work(
        WorkKind.REVIEW,
        path,
        iid,
        head_sha=_sha(_obj(attributes, "last_commit"), "id"),
        base_ref=_str(attributes, "target_branch"),
        clone_url=_str(project, "git_http_url"),
        fork=_int(attributes, "source_project_id") != _int(attributes, "target_project_id"),
        project_id=_int(project, "id"),
    )


def _gitlab_note(payload: Mapping[str, Any]) -> Work | None:
    attributes = _obj(payload, "object_attributes")
    if attributes.get("noteable_type") != "MergeRequest":
        return None
    command = _command(_str(attributes, "note"))
    if command is None:
        return None
    project = _obj(payload, "project")
    return Work(
        WorkKind.COMMAND,
        _str(project, "path_with_namespace"),
        _int(_obj(payload, "merge_request"), "iid"),
        clone_url=_str(project, "git_http_url"),
        project_id=_int(project, "id"),
        command=command,
        actor=_str(_obj(payload, "user"), "username"),
        comment_id=_int(attributes, "id"),
    )


def _gitlab_push(payload: Mapping[str, Any]) -> Work | None:
    _str(_obj(payload, "project"), "path_with_namespace")
    return None  # merge requests learn of pushes through their own `update` hook


_GITLAB = {
    "Merge Request Hook": _gitlab_merge_request,
    "Note Hook": _gitlab_note,
    "Push Hook": _gitlab_push,
}


# Typed reading


def _command(body: str) -> str | None:
    """The `/tidegate ...` command on the comment's first line, or None if it is not one."""
    first = body.strip().split("\n", 1)[0].strip()
    if first != COMMAND_PREFIX and not first.startswith(COMMAND_PREFIX + " "):
        return None
    return first[len(COMMAND_PREFIX) :].strip()[:100]


def _header(headers: Mapping[str, str], name: str) -> str:
    # HTTP header names are case-insensitive; servers and proxies normalise them differently.
    value = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
    if not value or len(value) > 200:
        raise WebhookError(f"missing or invalid header {name}")
    return value


def _json(body: bytes) -> Mapping[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookError("the body is not valid JSON") from None
    if not isinstance(payload, Mapping):
        raise WebhookError("the body is not a JSON object")
    return payload


def _obj(parent: Any, key: str) -> Mapping[str, Any]:
    value = parent.get(key) if isinstance(parent, Mapping) else None
    if not isinstance(value, Mapping):
        raise WebhookError(f"payload field {key!r} is missing or not an object")
    return value


def _str(parent: Any, key: str) -> str:
    value = parent.get(key) if isinstance(parent, Mapping) else None
    if not isinstance(value, str):
        raise WebhookError(f"payload field {key!r} is missing or not a string")
    return value


def _int(parent: Any, key: str) -> int:
    value = parent.get(key) if isinstance(parent, Mapping) else None
    if not isinstance(value, int) or isinstance(value, bool):
        raise WebhookError(f"payload field {key!r} is missing or not an integer")
    return value


def _sha(parent: Any, key: str) -> str:
    value = _str(parent, key)
    if len(value) not in (40, 64) or any(c not in "0123456789abcdef" for c in value):
        raise WebhookError(f"payload field {key!r} is not a commit id")
    return value
