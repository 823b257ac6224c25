"""Webhook verification and parsing, with GitHub's published example payloads."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from typing import Any

import pytest

from core.vcs.webhooks import (
    Provider,
    WebhookError,
    WorkKind,
    parse_github,
    parse_gitlab,
    verify_github,
    verify_gitlab,
)
from devenv.openapi import NPM_CACHE

EXAMPLES = NPM_CACHE / "node_modules/@octokit/webhooks-examples/api.github.com/index.json"


@functools.cache
def examples(event: str) -> list[dict[str, Any]]:
    """GitHub's published example payloads of one event."""
    for entry in json.loads(EXAMPLES.read_bytes()):
        if entry["name"] == event:
            return list(entry["examples"])
    raise AssertionError(f"no examples for {event}")


def github_headers(event: str) -> dict[str, str]:
    return {"X-GitHub-Event": event, "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}


def test_github_signature_matches_the_documented_test_vector() -> None:
    signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    verify_github(b"It's a Secret to Everybody", b"Hello, World!", signature)


@pytest.mark.parametrize(
    "signature",
    [None, "", "sha1=abc", "sha256=" + "0" * 64, "sha256=757107ea0eb2509fc211221cce984b8a"],
)
def test_bad_github_signatures_are_refused(signature: str | None) -> None:
    with pytest.raises(WebhookError):
        verify_github(b"It's a Secret to Everybody", b"Hello, World!", signature)


def test_a_signature_over_another_body_is_refused() -> None:
    secret, body = b"s3cret", b'{"action": "opened"}'
    signature = "sha256=" + hmac.new(secret, body + b" ", hashlib.sha256).hexdigest()
    with pytest.raises(WebhookError, match="does not match"):
        verify_github(secret, body, signature)


def test_gitlab_token_is_compared_exactly() -> None:
    verify_gitlab(b"tok en", "tok en")
    for wrong in (None, "", "tok", "tok en "):
        with pytest.raises(WebhookError):
            verify_gitlab(b"tok en", wrong)


def test_no_configured_secret_refuses_everything() -> None:
    with pytest.raises(WebhookError, match="no webhook secret"):
        verify_github(b"", b"{}", "sha256=" + hmac.new(b"", b"{}", hashlib.sha256).hexdigest())


@pytest.mark.parametrize(
    "event",
    ["pull_request", "pull_request_review", "issue_comment", "check_suite", "check_run", "push"],
)
def test_every_published_github_example_parses(event: str) -> None:
    for payload in examples(event):
        delivery = parse_github(github_headers(event), json.dumps(payload).encode())
        assert delivery.provider is Provider.GITHUB
        assert delivery.event == event


def test_pull_request_opened_becomes_a_review() -> None:
    payload = next(p for p in examples("pull_request") if p["action"] == "opened")
    work = parse_github(github_headers("pull_request"), json.dumps(payload).encode()).work
    assert work is not None
    assert work.kind is WorkKind.REVIEW
    assert work.repository == payload["repository"]["full_name"]
    assert work.number == payload["number"]
    assert work.head_sha == payload["pull_request"]["head"]["sha"]
    assert work.base_ref == payload["pull_request"]["base"]["ref"]
    assert work.fork is (payload["pull_request"]["head"]["repo"]["full_name"] != work.repository)


@pytest.mark.parametrize("action", ["submitted", "dismissed"])
def test_a_submitted_or_dismissed_review_reviews_the_head_again(action: str) -> None:
    payload = json.loads(json.dumps(examples("pull_request_review")[0]))
    payload["action"] = action
    payload["pull_request"]["state"] = "open"
    payload["pull_request"]["draft"] = False
    work = parse_github(github_headers("pull_request_review"), json.dumps(payload).encode()).work
    assert work is not None
    assert work.kind is WorkKind.REVIEW
    assert work.number == payload["pull_request"]["number"]
    assert work.head_sha == payload["pull_request"]["head"]["sha"]


def test_an_edited_review_or_a_review_of_a_closed_pull_request_is_ignored() -> None:
    payload = json.loads(json.dumps(examples("pull_request_review")[0]))
    payload["pull_request"]["state"] = "open"
    payload["action"] = "edited"
    assert (
        parse_github(github_headers("pull_request_review"), json.dumps(payload).encode()).work
        is None
    )
    payload["action"], payload["pull_request"]["state"] = "submitted", "closed"
    assert (
        parse_github(github_headers("pull_request_review"), json.dumps(payload).encode()).work
        is None
    )


def test_closed_pull_requests_drop_their_work() -> None:
    payload = next(p for p in examples("pull_request") if p["action"] == "closed")
    work = parse_github(github_headers("pull_request"), json.dumps(payload).encode()).work
    assert work is not None
    assert work.kind is WorkKind.CLOSE


def test_a_fork_is_recognised() -> None:
    payload = next(p for p in examples("pull_request") if p["action"] == "opened")
    payload["pull_request"]["head"]["repo"]["full_name"] = "mallory/fleet"
    work = parse_github(github_headers("pull_request"), json.dumps(payload).encode()).work
    assert work is not None
    assert work.fork


def test_comment_commands_are_read_from_the_first_line() -> None:
    payload = next(p for p in examples("issue_comment") if p["action"] == "created")
    # The published examples comment on plain issues; a pull request's issue carries this link.
    payload["issue"]["pull_request"] = {"url": "https://api.github.com/repos/o/r/pulls/1"}
    for body, command in [
        ("/tidegate preview\nplease", "preview"),
        ("/tidegate", ""),
        ("/tidegatex", None),
        ("lgtm /tidegate preview", None),
    ]:
        payload["comment"]["body"] = body
        work = parse_github(github_headers("issue_comment"), json.dumps(payload).encode()).work
        assert (work.command if work else None) == command


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"action": "opened"}', "'pull_request' is missing"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_malformed_github_payloads_are_errors(body: bytes, message: str) -> None:
    with pytest.raises(WebhookError, match=message):
        parse_github(github_headers("pull_request"), body)


def test_a_wrong_head_sha_is_an_error() -> None:
    payload = next(p for p in examples("pull_request") if p["action"] == "opened")
    payload["pull_request"]["head"]["sha"] = "--upload-pack=evil"
    with pytest.raises(WebhookError, match="not a commit id"):
        parse_github(github_headers("pull_request"), json.dumps(payload).encode())


def test_unknown_events_are_acknowledged_and_ignored() -> None:
    delivery = parse_github(github_headers("star"), b'{"action": "created"}')
    assert delivery.work is None


def test_missing_delivery_headers_are_errors() -> None:
    with pytest.raises(WebhookError, match="X-GitHub-Delivery"):
        parse_github({"X-GitHub-Event": "push"}, b"{}")


GITLAB_MR = {
    "object_kind": "merge_request",
    "user": {"username": "root"},
    "project": {
        "id": 1,
        "path_with_namespace": "gitlabhq/gitlab-test",
        "git_http_url": "http://example.com/gitlabhq/gitlab-test.git",
        "default_branch": "master",
    },
    "object_attributes": {
        "iid": 1,
        "action": "open",
        "state": "opened",
        "source_branch": "ms-viewport",
        "target_branch": "master",
        "source_project_id": 14,
        "target_project_id": 14,
        "last_commit": {"id": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"},
        "draft": False,
    },
}


def gitlab_headers(event: str) -> dict[str, str]:
    return {"X-Gitlab-Event": event, "X-Gitlab-Event-UUID": "13792a34-cac6-4fda-95a8-c58e00a3954e"}


def test_gitlab_merge_request_open_becomes_a_review() -> None:
    work = parse_gitlab(gitlab_headers("Merge Request Hook"), json.dumps(GITLAB_MR).encode()).work
    assert work is not None
    assert (work.kind, work.repository, work.number) == (WorkKind.REVIEW, "gitlabhq/gitlab-test", 1)
    assert work.head_sha == "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
    assert work.project_id == 1
    assert not work.fork


def test_gitlab_update_without_new_commits_is_ignored() -> None:
    payload = json.loads(json.dumps(GITLAB_MR))
    payload["object_attributes"]["action"] = "update"
    assert (
        parse_gitlab(gitlab_headers("Merge Request Hook"), json.dumps(payload).encode()).work
        is None
    )
    payload["object_attributes"]["oldrev"] = "0" * 40
    work = parse_gitlab(gitlab_headers("Merge Request Hook"), json.dumps(payload).encode()).work
    assert work is not None
    assert work.kind is WorkKind.REVIEW


@pytest.mark.parametrize("action", ["approved", "unapproved", "approval", "unapproval"])
def test_gitlab_approvals_review_the_head_again(action: str) -> None:
    payload = json.loads(json.dumps(GITLAB_MR))
    payload["object_attributes"]["action"] = action
    work = parse_gitlab(gitlab_headers("Merge Request Hook"), json.dumps(payload).encode()).work
    assert work is not None
    assert (work.kind, work.head_sha) == (
        WorkKind.REVIEW,
        "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
    )


def test_gitlab_merge_closes() -> None:
    payload = json.loads(json.dumps(GITLAB_MR))
    payload["object_attributes"]["action"] = "merge"
    work = parse_gitlab(gitlab_headers("Merge Request Hook"), json.dumps(payload).encode()).work
    assert work is not None
    assert work.kind is WorkKind.CLOSE


def test_gitlab_note_command() -> None:
    payload = {
        "object_kind": "note",
        "user": {"username": "root"},
        "project": GITLAB_MR["project"],
        "object_attributes": {
            "id": 1244,
            "note": "/tidegate help",
            "noteable_type": "MergeRequest",
        },
        "merge_request": {"iid": 1},
    }
    work = parse_gitlab(gitlab_headers("Note Hook"), json.dumps(payload).encode()).work
    assert work is not None
    assert (work.kind, work.command, work.actor, work.number) == (
        WorkKind.COMMAND,
        "help",
        "root",
        1,
    )


def test_header_names_are_case_insensitive() -> None:
    headers = {"x-github-event": "star", "X-Github-Delivery": "d-1"}
    assert parse_github(headers, b"{}").delivery_id == "d-1"
