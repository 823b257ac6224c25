"""The GitLab adapter against the fake GitLab, through python-gitlab over real HTTP."""

from __future__ import annotations

import pytest

from core.vcs import comments
from core.vcs.gitlab import GitLabHost, connect
from core.vcs.port import CommitReport, ReportState, VcsError
from tests.fixtures.github import GITLAB_TOKEN, NO_WAIT
from tests.vcs.gitlab_fake import FakeGitLab

SHA = "d" * 40


@pytest.fixture
def host(gitlab_fake: FakeGitLab) -> GitLabHost:
    gitlab_fake.add_merge_request(14, "acme/fleet", 3, head=SHA)
    return GitLabHost(connect(gitlab_fake.url, GITLAB_TOKEN), 14, retry=NO_WAIT)


def report(state: ReportState) -> CommitReport:
    return CommitReport("tidegate/preview", state, f"{state.value} title")


def test_statuses_follow_the_state_machine_and_repeats_are_accepted(
    gitlab_fake: FakeGitLab, host: GitLabHost
) -> None:
    host.report(SHA, report(ReportState.PENDING))
    host.report(SHA, report(ReportState.PENDING))  # GitLab answers 400: already running
    host.report(SHA, report(ReportState.FAILURE))
    history = gitlab_fake.projects[14].statuses[SHA]
    assert [s["status"] for s in history] == ["running", "failed"]


def test_other_refusals_are_errors(gitlab_fake: FakeGitLab, host: GitLabHost) -> None:
    wrong = GitLabHost(connect(gitlab_fake.url, "wrong"), 14, retry=NO_WAIT)
    with pytest.raises(VcsError, match="HTTP 401"):
        wrong.report(SHA, report(ReportState.PENDING))


def test_notes_round_trip_oldest_first_without_system_notes(
    gitlab_fake: FakeGitLab, host: GitLabHost
) -> None:
    first = host.create_comment(3, "one")
    gitlab_fake.projects[14].notes[1] = {
        "id": 1,
        "iid": 3,
        "body": "added a commit",
        "system": True,
    }
    host.create_comment(3, "two")
    host.edit_comment(3, first.id, "one, edited")
    assert [c.body for c in host.comments(3)] == ["one, edited", "two"]
    host.delete_comment(3, first.id)
    assert gitlab_fake.note_bodies(14) == ["two"]


def test_one_comment_kept_current_on_gitlab(gitlab_fake: FakeGitLab, host: GitLabHost) -> None:
    big = "".join(f"## Unit {i}\n\n```diff\n" + "+ x\n" * 3000 + "```\n" for i in range(3))
    parts = comments.split(big, "s", key="preview", limit=10_000)
    comments.sync(host, 3, parts, key="preview")
    assert gitlab_fake.note_bodies(14) == parts
    small = comments.split("## One\n", "s", key="preview", limit=10_000)
    comments.sync(host, 3, small, key="preview")
    assert gitlab_fake.note_bodies(14) == small


def test_server_errors_are_retried(gitlab_fake: FakeGitLab, host: GitLabHost) -> None:
    gitlab_fake.fail_next = [502, 503]
    host.create_comment(3, "after two failures")
    assert gitlab_fake.note_bodies(14) == ["after two failures"]


def test_developers_may_write(gitlab_fake: FakeGitLab, host: GitLabHost) -> None:
    gitlab_fake.users.update({"dev": 1, "guest": 2, "stranger": 3})
    gitlab_fake.projects[14].members.update({1: 30, 2: 10})
    assert host.can_write("dev")
    assert not host.can_write("guest")
    assert not host.can_write("stranger")
    assert not host.can_write("nobody")


def test_the_merge_request_head_and_fork(gitlab_fake: FakeGitLab, host: GitLabHost) -> None:
    head = host.pull(3)
    assert (head.sha, head.base_ref, head.fork, head.open) == (SHA, "main", False, True)
    gitlab_fake.projects[14].merge_requests[3]["source"] = 99
    assert host.pull(3).fork
