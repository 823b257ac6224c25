"""Who approved a head, as each provider counts it: GitHub per review and commit, GitLab per
merge request while the head is unchanged."""

from __future__ import annotations

import pytest

from core.vcs.github import GitHubHost
from core.vcs.gitlab import GitLabHost, connect
from core.vcs.port import VcsError
from devenv.github_api import FakeGitHub
from tests.fixtures.github import GITLAB_TOKEN, NO_WAIT
from tests.vcs.gitlab_fake import FakeGitLab

HEAD, OLD = "a" * 40, "c" * 40


def test_github_counts_each_users_latest_review_of_the_head(
    github: FakeGitHub, token_host: GitHubHost
) -> None:
    github.add_review("acme/fleet", 1, "alice", "APPROVED", HEAD)
    github.add_review("acme/fleet", 1, "bob", "APPROVED", OLD)  # stale: an older head
    github.add_review("acme/fleet", 1, "carol", "APPROVED", HEAD)
    github.add_review("acme/fleet", 1, "carol", "CHANGES_REQUESTED", HEAD)  # withdrawn
    github.add_review("acme/fleet", 1, "dave", "APPROVED", HEAD)
    github.add_review("acme/fleet", 1, "dave", "COMMENTED", HEAD)  # a comment changes nothing
    github.add_review("acme/fleet", 1, "erin", "DISMISSED", HEAD)
    assert token_host.approvers(1, HEAD) == ["alice", "dave"]
    assert token_host.approvers(1, OLD) == ["bob"]


def test_gitlab_counts_approvals_only_while_the_head_is_unchanged(
    gitlab_fake: FakeGitLab,
) -> None:
    gitlab_fake.add_merge_request(14, "acme/fleet", 3, head=HEAD)
    host = GitLabHost(connect(gitlab_fake.url, GITLAB_TOKEN), 14, retry=NO_WAIT)
    gitlab_fake.approve(14, 3, "dev")
    gitlab_fake.approve(14, 3, "lead")
    assert host.approvers(3, HEAD) == ["dev", "lead"]
    assert host.approvers(3, OLD) == []


def test_github_team_membership_is_an_active_membership_of_the_orgs_team(
    github: FakeGitHub, app_host: GitHubHost
) -> None:
    github.add_team_member("acme/platform", "alice")
    github.add_team_member("acme/platform", "carol", state="pending")
    assert app_host.in_team("alice", "acme/platform")
    assert app_host.in_team("Alice", "ACME/Platform")  # GitHub ignores case
    assert not app_host.in_team("carol", "acme/platform")  # invited, not yet a member
    assert not app_host.in_team("bob", "acme/platform")
    assert not app_host.in_team("alice", "acme/nobody")


def test_github_team_names_that_are_no_github_names_are_never_requested(
    github: FakeGitHub, app_host: GitHubHost
) -> None:
    for team in ("acme", "acme/platform/x", "../x/platform", "acme/pl%2Fatform", "/platform"):
        assert not app_host.in_team("alice", team)
    assert not app_host.in_team("al/ice", "acme/platform")
    assert not [route for _, route in github.requests if "/memberships/" in route]


def test_github_an_unreadable_team_membership_is_an_error(
    github: FakeGitHub, app_host: GitHubHost
) -> None:
    github.members_readable = False
    with pytest.raises(VcsError, match="read team membership in acme/fleet failed: HTTP 403"):
        app_host.in_team("alice", "acme/platform")


def test_gitlab_team_membership_is_a_direct_membership_of_the_group(
    gitlab_fake: FakeGitLab,
) -> None:
    host = GitLabHost(connect(gitlab_fake.url, GITLAB_TOKEN), 14, retry=NO_WAIT)
    gitlab_fake.users.update({"dev": 1, "owner": 2})
    gitlab_fake.groups.update({"acme/platform": {1: 30}, "acme": {2: 50}})
    assert host.in_team("dev", "acme/platform")
    assert not host.in_team("owner", "acme/platform")  # inherited from the parent: not counted
    assert host.in_team("owner", "acme")
    assert not host.in_team("nobody", "acme/platform")  # no such user
    assert not host.in_team("dev", "acme/missing")  # no such group
    assert not host.in_team("dev", "acme/../platform")
    assert [r for _, r in gitlab_fake.requests if r.startswith("/groups/")] == [
        "/groups/acme/platform/members/1",
        "/groups/acme/platform/members/2",
        "/groups/acme/members/2",
        "/groups/acme/missing/members/1",
    ]


def test_gitlab_a_failed_group_lookup_is_an_error(gitlab_fake: FakeGitLab) -> None:
    host = GitLabHost(connect(gitlab_fake.url, GITLAB_TOKEN), 14, retry=NO_WAIT)
    gitlab_fake.users["dev"] = 1
    gitlab_fake.groups["acme/platform"] = {1: 30}
    gitlab_fake.fail_next = [502] * 5
    with pytest.raises(VcsError, match="read group membership in 14 failed"):
        host.in_team("dev", "acme/platform")
