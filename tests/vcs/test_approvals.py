"""Who approved a head, as each provider counts it: GitHub per review and commit, GitLab per
merge request while the head is unchanged."""

from __future__ import annotations

from core.vcs.github import GitHubHost
from core.vcs.gitlab import GitLabHost, connect
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
