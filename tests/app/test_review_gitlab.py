"""End to end on GitLab: push, deliver a Merge Request Hook, read back one note and a status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.app.conftest import Service
from tests.app.test_review_github import fleet, push_change
from tests.fixtures.gitserver import RemoteRepo
from tests.vcs.gitlab_fake import FakeGitLab


def merge_request_hook(action: str, sha: str, clone_url: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "iid": 3,
        "action": action,
        "state": "opened",
        "source_branch": "feature",
        "target_branch": "main",
        "source_project_id": 14,
        "target_project_id": 14,
        "last_commit": {"id": sha},
        "draft": False,
    }
    if action == "update":
        attributes["oldrev"] = "0" * 40
    return {
        "object_kind": "merge_request",
        "user": {"username": "root"},
        "project": {"id": 14, "path_with_namespace": "acme/fleet", "git_http_url": clone_url},
        "object_attributes": attributes,
    }


def test_a_merge_request_gets_one_note_and_a_status_kept_current(
    tmp_path: Path, service: Service, gitlab_fake: FakeGitLab, git_remote: RemoteRepo
) -> None:
    work = fleet(tmp_path, git_remote)
    first = push_change(work, git_remote, "      mode: green")
    gitlab_fake.add_merge_request(14, "acme/fleet", 3, head=first)
    hook = merge_request_hook("open", first, git_remote.url)
    assert service.deliver_gitlab("Merge Request Hook", hook).status_code == 202
    assert service.drain() == 1
    [body] = gitlab_fake.note_bodies(14)
    assert "green" in body
    statuses = gitlab_fake.projects[14].statuses[first]
    assert [s["status"] for s in statuses] == ["running", "success"]

    second = push_change(work, git_remote, "      mode: purple")
    gitlab_fake.add_merge_request(14, "acme/fleet", 3, head=second)
    hook = merge_request_hook("update", second, git_remote.url)
    assert service.deliver_gitlab("Merge Request Hook", hook).status_code == 202
    assert service.drain() == 1
    [body] = gitlab_fake.note_bodies(14)
    assert "purple" in body
    assert [s["status"] for s in gitlab_fake.projects[14].statuses[first]] == ["running", "success"]
    assert [s["status"] for s in gitlab_fake.projects[14].statuses[second]] == [
        "running",
        "success",
    ]


def test_a_wrong_gitlab_token_stores_nothing(service: Service) -> None:
    hook = merge_request_hook("open", "a" * 40, "https://example.com/x.git")
    assert service.deliver_gitlab("Merge Request Hook", hook, token=b"guess").status_code == 401
    assert service.store.deliveries() == 0
