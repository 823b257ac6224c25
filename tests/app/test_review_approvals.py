"""Approvals feed the gate, end to end through the app and the local GitHub and GitLab servers.

The change removes a pruning Kustomization (GP004, approval required); CODEOWNERS at base names
the owners. The gate passes once an owner with write access approved the head commit; an owner
without write access does not count, and an approval of an older head does not count.
"""

from __future__ import annotations

from pathlib import Path

from devenv.github_api import FakeGitHub
from tests.app.conftest import Service, pull_request_event
from tests.app.test_review_gitlab import merge_request_hook
from tests.fixtures.gitserver import RemoteRepo
from tests.preview.gitrepo import commit, flux_cluster, git, kustomization, new_repo
from tests.vcs.gitlab_fake import FakeGitLab


def fleet(tmp_path: Path, remote: RemoteRepo) -> Path:
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
        # At the root, where both hosts read it.
        "CODEOWNERS": "* @alice @bob @dev @guest\n",
    }
    work, _ = new_repo(tmp_path / "work", files)
    git(work, "push", "--quiet", remote.push_url, "main")
    git(work, "checkout", "--quiet", "-B", "feature")
    return work


def push(work: Path, remote: RemoteRepo, files: dict[str, str | None]) -> str:
    sha = commit(work, files, "change")
    git(work, "push", "--quiet", "--force", remote.push_url, "feature")
    return sha


REMOVE_APPS: dict[str, str | None] = {"clusters/production/apps.yaml": None}


GREEN = """
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: settings, namespace: default}
    data: {mode: green}
"""


def conclusion(github: FakeGitHub, sha: str) -> str:
    """The conclusion of the newest check run on `sha` (each review completes one)."""
    runs = [r for r in github.repos["acme/fleet"].check_runs.values() if r["head_sha"] == sha]
    return str(runs[-1]["conclusion"])


def review_event(head: str, clone_url: str, action: str = "submitted") -> dict[str, object]:
    pull = pull_request_event("opened", number=6, head=head, clone_url=clone_url)
    return {
        "action": action,
        "review": {"state": "approved", "commit_id": head, "user": {"login": "someone"}},
        "pull_request": {**pull["pull_request"], "state": "open"},
        "repository": pull["repository"],
        "installation": pull["installation"],
    }


def test_github_the_gate_counts_head_approvals_of_writers(
    tmp_path: Path, service: Service, github: FakeGitHub, git_remote: RemoteRepo
) -> None:
    github.repos["acme/fleet"].permissions.update({"alice": "write", "bob": "read"})
    work = fleet(tmp_path, git_remote)
    first = push(work, git_remote, REMOVE_APPS)
    github.add_pull("acme/fleet", 6, head=first)
    event = pull_request_event("opened", number=6, head=first, clone_url=git_remote.url)
    assert service.deliver("pull_request", event).status_code == 202
    assert service.drain() == 1
    assert conclusion(github, first) == "failure"
    assert "GP004" in github.comment_bodies("acme/fleet")[0]

    # A code owner with read access only approves: it does not count.
    github.add_review("acme/fleet", 6, "bob", "APPROVED", first)
    assert service.deliver("pull_request_review", review_event(first, git_remote.url)).status_code
    assert service.drain() == 1
    assert conclusion(github, first) == "failure"

    # A code owner with write access approves the head: the finding is waived, the gate passes.
    github.add_review("acme/fleet", 6, "alice", "APPROVED", first)
    assert service.deliver("pull_request_review", review_event(first, git_remote.url)).status_code
    assert service.drain() == 1
    assert conclusion(github, first) == "success"
    [body] = github.comment_bodies("acme/fleet")
    assert "alice" in body

    # A new head: the approval of the older one is stale and does not count.
    second = push(work, git_remote, {"apps/settings.yaml": GREEN})
    github.add_pull("acme/fleet", 6, head=second)
    event = pull_request_event("synchronize", number=6, head=second, clone_url=git_remote.url)
    assert service.deliver("pull_request", event).status_code == 202
    assert service.drain() == 1
    assert conclusion(github, second) == "failure"

    # A later "changes requested" from the same writer withdraws an approval of the head.
    github.add_review("acme/fleet", 6, "alice", "APPROVED", second)
    github.add_review("acme/fleet", 6, "alice", "CHANGES_REQUESTED", second)
    assert service.deliver("pull_request_review", review_event(second, git_remote.url)).status_code
    assert service.drain() == 1
    assert conclusion(github, second) == "failure"


def test_gitlab_the_gate_counts_approvals_of_developers_on_the_head(
    tmp_path: Path, service: Service, gitlab_fake: FakeGitLab, git_remote: RemoteRepo
) -> None:
    work = fleet(tmp_path, git_remote)
    first = push(work, git_remote, REMOVE_APPS)
    gitlab_fake.add_merge_request(14, "acme/fleet", 3, head=first)
    gitlab_fake.users.update({"dev": 1, "guest": 2})
    gitlab_fake.projects[14].members.update({1: 30, 2: 10})  # Developer, Guest
    hook = merge_request_hook("open", first, git_remote.url)
    assert service.deliver_gitlab("Merge Request Hook", hook).status_code == 202
    assert service.drain() == 1
    assert gitlab_fake.projects[14].statuses[first][-1]["status"] == "failed"

    # A guest's approval does not count; a developer's does.
    gitlab_fake.approve(14, 3, "guest")
    hook = merge_request_hook("approval", first, git_remote.url)
    assert service.deliver_gitlab("Merge Request Hook", hook).status_code == 202
    assert service.drain() == 1
    assert gitlab_fake.projects[14].statuses[first][-1]["status"] == "failed"
    gitlab_fake.approve(14, 3, "dev")
    hook = merge_request_hook("approved", first, git_remote.url)
    assert service.deliver_gitlab("Merge Request Hook", hook).status_code == 202
    assert service.drain() == 1
    assert gitlab_fake.projects[14].statuses[first][-1]["status"] == "success"

    # A push: GitLab removes the approvals (the project's reset-on-push setting), so the new head
    # is not approved.
    second = push(work, git_remote, {"apps/settings.yaml": GREEN})
    gitlab_fake.add_merge_request(14, "acme/fleet", 3, head=second)
    hook = merge_request_hook("update", second, git_remote.url)
    assert service.deliver_gitlab("Merge Request Hook", hook).status_code == 202
    assert service.drain() == 1
    assert gitlab_fake.projects[14].statuses[second][-1]["status"] == "failed"
