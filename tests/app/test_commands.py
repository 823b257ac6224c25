"""Comment commands: help, unknown commands, and re-runs only for users with write access."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.review import HELP
from devenv.github_api import FakeGitHub
from tests.app.conftest import Service
from tests.app.test_review_github import fleet, push_change
from tests.fixtures.gitserver import RemoteRepo


def comment_event(body: str, user: str, clone_url: str = "https://example.com/x.git") -> Any:
    return {
        "action": "created",
        "issue": {"number": 1, "pull_request": {"url": "https://example.com/pulls/1"}},
        "comment": {"id": 77, "body": body, "user": {"login": user}},
        "repository": {"full_name": "acme/fleet", "clone_url": clone_url},
        "installation": {"id": 7},
    }


def test_help_and_unknown_commands_get_the_help(service: Service, github: FakeGitHub) -> None:
    service.deliver("issue_comment", comment_event("/tidegate help", "reader"))
    service.deliver("issue_comment", comment_event("/tidegate deploy prod", "writer"))
    service.deliver("issue_comment", comment_event("looks good", "writer"))
    assert service.drain() == 2
    help_reply, unknown_reply = github.comment_bodies("acme/fleet")
    assert help_reply == HELP
    assert unknown_reply.startswith("Unknown command `deploy prod`")


def test_only_writers_may_rerun(
    tmp_path: Path, service: Service, github: FakeGitHub, git_remote: RemoteRepo
) -> None:
    work = fleet(tmp_path, git_remote)
    sha = push_change(work, git_remote, "      mode: green")
    github.add_pull("acme/fleet", 1, head=sha)
    github.repos["acme/fleet"].permissions.update({"writer": "write", "reader": "read"})
    service.deliver("issue_comment", comment_event("/tidegate preview", "reader", git_remote.url))
    service.drain()
    [refusal] = github.comment_bodies("acme/fleet")
    assert "only users with write access" in refusal
    assert github.repos["acme/fleet"].check_runs == {}

    service.deliver("issue_comment", comment_event("/tidegate preview", "writer", git_remote.url))
    service.drain()
    refusal_again, preview = github.comment_bodies("acme/fleet")
    assert refusal_again == refusal
    assert "green" in preview
    [check] = github.repos["acme/fleet"].check_runs.values()
    assert (check["head_sha"], check["conclusion"]) == (sha, "success")
