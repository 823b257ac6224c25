"""The GitHub adapter against the fake GitHub, through PyGithub over real HTTP."""

from __future__ import annotations

import pytest

from core.vcs.github import GitHubHost
from core.vcs.port import Annotation, CommitReport, ReportState, VcsError
from devenv.github_api import FakeGitHub

SHA = "a" * 40


def report(state: ReportState, annotations: int = 0, title: str = "3 changes") -> CommitReport:
    return CommitReport(
        name="tidegate/preview",
        state=state,
        title=title,
        summary="summary",
        text="text",
        annotations=tuple(
            Annotation(path=f"apps/a{i}.yaml", message=f"finding {i}") for i in range(annotations)
        ),
    )


def test_token_mode_posts_a_commit_status_with_a_bounded_description(
    github: FakeGitHub, token_host: GitHubHost
) -> None:
    token_host.report(SHA, report(ReportState.PENDING))
    token_host.report(SHA, report(ReportState.FAILURE, title="x" * 300))
    statuses = github.repos["acme/fleet"].statuses[SHA]
    assert [s["state"] for s in statuses] == ["pending", "failure"]
    assert {s["context"] for s in statuses} == {"tidegate/preview"}
    assert len(statuses[1]["description"]) == 140


def test_app_mode_sends_annotations_in_batches_of_fifty_on_one_run(
    github: FakeGitHub, app_host: GitHubHost
) -> None:
    app_host.report(SHA, report(ReportState.PENDING))
    app_host.report(SHA, report(ReportState.FAILURE, annotations=120))
    runs = list(github.repos["acme/fleet"].check_runs.values())
    assert len(runs) == 1
    assert runs[0]["status"] == "completed"
    assert runs[0]["conclusion"] == "failure"
    assert len(runs[0]["annotations"]) == 120
    assert github.requests.count(("PATCH", f"/repos/acme/fleet/check-runs/{runs[0]['id']}")) == 3


def test_a_completed_run_is_not_reopened(github: FakeGitHub, app_host: GitHubHost) -> None:
    app_host.report(SHA, report(ReportState.SUCCESS, annotations=1))
    app_host.report(SHA, report(ReportState.SUCCESS, annotations=1))
    runs = list(github.repos["acme/fleet"].check_runs.values())
    assert [len(r["annotations"]) for r in runs] == [1, 1]


def test_check_runs_need_the_app(token_host: GitHubHost) -> None:
    token_host_checks = GitHubHost(
        token_host._client, "acme/fleet", checks=True, retry=token_host._retry
    )
    with pytest.raises(VcsError, match="create check run in acme/fleet failed: HTTP 403"):
        token_host_checks.report(SHA, report(ReportState.PENDING))


def test_comments_round_trip(github: FakeGitHub, token_host: GitHubHost) -> None:
    made = token_host.create_comment(1, "one")
    token_host.create_comment(1, "two")
    token_host.edit_comment(1, made.id, "one, edited")
    assert [c.body for c in token_host.comments(1)] == ["one, edited", "two"]
    token_host.delete_comment(1, made.id)
    assert github.comment_bodies("acme/fleet") == ["two"]


def test_server_errors_are_retried_then_succeed(github: FakeGitHub, token_host: GitHubHost) -> None:
    github.fail_next = [502, 503]
    token_host.create_comment(1, "after two failures")
    assert github.comment_bodies("acme/fleet") == ["after two failures"]


def test_persistent_server_errors_end_as_a_vcs_error(
    github: FakeGitHub, token_host: GitHubHost
) -> None:
    github.fail_next = [502] * 10
    with pytest.raises(VcsError, match="list comments in acme/fleet failed: HTTP 502"):
        token_host.comments(1)


def test_client_errors_are_not_retried(github: FakeGitHub, token_host: GitHubHost) -> None:
    with pytest.raises(VcsError, match="HTTP 404"):
        token_host.edit_comment(1, 999_999, "nothing there")
    assert github.requests.count(("GET", "/repos/acme/fleet/issues/comments/999999")) == 1


def test_only_write_access_counts(token_host: GitHubHost) -> None:
    assert token_host.can_write("writer")
    assert not token_host.can_write("reader")
    assert not token_host.can_write("stranger")


def test_the_installation_token_is_fetched_once_and_reused(
    github: FakeGitHub, app_host: GitHubHost
) -> None:
    app_host.create_comment(1, "a")
    app_host.create_comment(1, "b")
    assert github.requests.count(("POST", "/app/installations/7/access_tokens")) == 1
    assert len(github.installation_tokens) == 1


def test_the_pull_request_head_and_fork_are_read(
    github: FakeGitHub, token_host: GitHubHost
) -> None:
    head = token_host.pull(1)
    assert (head.sha, head.base_ref, head.fork, head.open) == (SHA, "main", False, True)
    github.repos["acme/fleet"].pulls[1]["head_repo"] = "mallory/fleet"
    assert GitHubHost(token_host._client, "acme/fleet", checks=False).pull(1).fork
