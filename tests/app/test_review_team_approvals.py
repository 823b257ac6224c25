"""Team approvals feed the gate, end to end through the app and the local GitHub and GitLab servers.

The change removes a pruning Kustomization (GP004, approval required) and CODEOWNERS at base
names a team as the owner. An approving writer who belongs to the team opens the gate, one who
does not leaves it shut, and a membership the service cannot read counts no team (fail closed,
with a log line). Only the teams CODEOWNERS names for the changed paths are looked up.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from devenv.github_api import FakeGitHub
from tests.app.conftest import Service, pull_request_event
from tests.app.test_review_approvals import REMOVE_APPS, conclusion, push, review_event
from tests.app.test_review_gitlab import merge_request_hook
from tests.fixtures.gitserver import RemoteRepo
from tests.preview.gitrepo import flux_cluster, git, kustomization, new_repo
from tests.vcs.gitlab_fake import FakeGitLab

# The whole repository belongs to the platform team; the docs, which this change does not
# touch, to a team nobody may look up.
CODEOWNERS = "* @acme/platform\n/docs/ @acme/writers\n"


def fleet(tmp_path: Path, remote: RemoteRepo, codeowners: str = ".github/CODEOWNERS") -> Path:
    files = {
        **flux_cluster("production"),
        "clusters/production/apps.yaml": kustomization("apps", "./apps"),
        "apps/kustomization.yaml": """
            apiVersion: kustomize.config.k8s.io/v1beta1
            kind: Kustomization
            resources: [settings.yaml]
        """,
        "apps/settings.yaml": """
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: settings, namespace: default}
            data: {mode: blue}
        """,
        "docs/README.md": "the fleet\n",
        codeowners: CODEOWNERS,
    }
    work, _ = new_repo(tmp_path / "work", files)
    git(work, "push", "--quiet", remote.push_url, "main")
    git(work, "checkout", "--quiet", "-B", "feature")
    return work


def memberships(github: FakeGitHub) -> list[str]:
    return [route for method, route in github.requests if "/memberships/" in route]


def test_github_a_team_members_approval_opens_the_gate(
    tmp_path: Path, service: Service, github: FakeGitHub, git_remote: RemoteRepo
) -> None:
    github.repos["acme/fleet"].permissions.update({"alice": "write", "bob": "write"})
    github.add_team_member("acme/platform", "alice")
    github.add_team_member("acme/platform", "carol", state="pending")
    work = fleet(tmp_path, git_remote)
    head = push(work, git_remote, REMOVE_APPS)
    github.add_pull("acme/fleet", 6, head=head)

    # A writer outside the team approves: the finding still needs the team.
    github.add_review("acme/fleet", 6, "bob", "APPROVED", head)
    event = pull_request_event("opened", number=6, head=head, clone_url=git_remote.url)
    assert service.deliver("pull_request", event).status_code == 202
    assert service.drain() == 1
    assert conclusion(github, head) == "failure"
    assert "@acme/platform" in github.comment_bodies("acme/fleet")[0]
    # Only the team named for the changed paths is looked up, never the docs' team.
    assert memberships(github) == ["/orgs/acme/teams/platform/memberships/bob"]

    # A writer whose team invitation is still pending does not count either.
    github.repos["acme/fleet"].permissions["carol"] = "write"
    github.add_review("acme/fleet", 6, "carol", "APPROVED", head)
    assert service.deliver("pull_request_review", review_event(head, git_remote.url)).status_code
    assert service.drain() == 1
    assert conclusion(github, head) == "failure"

    # A member of the team approves the head: the team approved, the gate passes.
    github.add_review("acme/fleet", 6, "alice", "APPROVED", head)
    assert service.deliver("pull_request_review", review_event(head, git_remote.url)).status_code
    assert service.drain() == 1
    assert conclusion(github, head) == "success"
    [body] = github.comment_bodies("acme/fleet")
    assert "@acme/platform" in body


def test_github_an_unreadable_membership_counts_no_team(
    tmp_path: Path,
    service: Service,
    github: FakeGitHub,
    git_remote: RemoteRepo,
    caplog: pytest.LogCaptureFixture,
) -> None:
    github.repos["acme/fleet"].permissions["alice"] = "write"
    github.add_team_member("acme/platform", "alice")
    github.members_readable = False  # the App lacks the Members: read permission
    work = fleet(tmp_path, git_remote)
    head = push(work, git_remote, REMOVE_APPS)
    github.add_pull("acme/fleet", 6, head=head)
    github.add_review("acme/fleet", 6, "alice", "APPROVED", head)
    event = pull_request_event("opened", number=6, head=head, clone_url=git_remote.url)
    with caplog.at_level(logging.WARNING, logger="tidegate.review"):
        assert service.deliver("pull_request", event).status_code == 202
        assert service.drain() == 1
    assert conclusion(github, head) == "failure"
    [line] = [r for r in caplog.records if r.getMessage().startswith("team lookup failed")]
    assert "@acme/platform" in line.getMessage()
    assert "HTTP 403" in line.getMessage()


def test_gitlab_a_group_members_approval_opens_the_gate(
    tmp_path: Path, service: Service, gitlab_fake: FakeGitLab, git_remote: RemoteRepo
) -> None:
    # Where GitLab reads it, and GitHub never does.
    work = fleet(tmp_path, git_remote, ".gitlab/CODEOWNERS")
    head = push(work, git_remote, REMOVE_APPS)
    gitlab_fake.add_merge_request(14, "acme/fleet", 3, head=head)
    gitlab_fake.users.update({"dev": 1, "outsider": 2})
    gitlab_fake.projects[14].members.update({1: 30, 2: 30})  # both Developers of the project
    # `dev` is a direct member of the subgroup; `outsider` only of its parent group.
    gitlab_fake.groups.update({"acme/platform": {1: 30}, "acme": {2: 50}})

    gitlab_fake.approve(14, 3, "outsider")
    hook = merge_request_hook("approved", head, git_remote.url)
    assert service.deliver_gitlab("Merge Request Hook", hook).status_code == 202
    assert service.drain() == 1
    assert gitlab_fake.projects[14].statuses[head][-1]["status"] == "failed"
    looked_up = [r for m, r in gitlab_fake.requests if r.startswith("/groups/")]
    assert looked_up == ["/groups/acme/platform/members/2"]

    gitlab_fake.approve(14, 3, "dev")
    hook = merge_request_hook("approved", head, git_remote.url)
    assert service.deliver_gitlab("Merge Request Hook", hook).status_code == 202
    assert service.drain() == 1
    assert gitlab_fake.projects[14].statuses[head][-1]["status"] == "success"
    assert "@acme/platform" in gitlab_fake.note_bodies(14)[0]
