"""End to end on GitHub: push a branch, deliver a signed webhook, read back comment and check."""

from __future__ import annotations

from pathlib import Path

from devenv.github_api import FakeGitHub
from tests.app.conftest import Service, pull_request_event
from tests.fixtures.gitserver import RemoteRepo
from tests.preview.gitrepo import commit, flux_cluster, git, kustomization, new_repo

CONFIGMAP = """
    apiVersion: v1
    kind: ConfigMap
    metadata: {{name: settings, namespace: default}}
    data:
{data}
"""


def fleet(tmp_path: Path, remote: RemoteRepo) -> Path:
    files = {
        **flux_cluster("production"),
        "clusters/production/apps.yaml": kustomization("apps", "./apps"),
        "apps/kustomization.yaml": """
            apiVersion: kustomize.config.k8s.io/v1beta1
            kind: Kustomization
            resources: [settings.yaml]
        """,
        "apps/settings.yaml": CONFIGMAP.format(data="      mode: blue"),
    }
    work, _ = new_repo(tmp_path / "work", files)
    git(work, "push", "--quiet", remote.push_url, "main")
    return work


def push_change(work: Path, remote: RemoteRepo, data: str) -> str:
    git(work, "checkout", "--quiet", "-B", "feature")
    sha = commit(work, {"apps/settings.yaml": CONFIGMAP.format(data=data)}, "change")
    git(work, "push", "--quiet", "--force", remote.push_url, "feature")
    return sha


def checks_of(github: FakeGitHub, sha: str) -> list[dict[str, object]]:
    return [r for r in github.repos["acme/fleet"].check_runs.values() if r["head_sha"] == sha]


def test_a_pull_request_gets_one_comment_and_one_check_kept_current(
    tmp_path: Path, service: Service, github: FakeGitHub, git_remote: RemoteRepo
) -> None:
    work = fleet(tmp_path, git_remote)
    first = push_change(work, git_remote, "      mode: green")
    github.add_pull("acme/fleet", 5, head=first)
    event = pull_request_event("opened", number=5, head=first, clone_url=git_remote.url)
    assert service.deliver("pull_request", event).status_code == 202
    assert service.drain() == 1

    [body] = github.comment_bodies("acme/fleet")
    assert "<!-- tidegate:preview part 1 -->" in body
    assert "ConfigMap" in body
    assert "green" in body
    [check] = checks_of(github, first)
    assert (check["status"], check["conclusion"]) == ("completed", "success")
    comment_id = next(iter(github.repos["acme/fleet"].comments))

    # A second push: the same comment is edited; the first head's check stays as it was.
    second = push_change(work, git_remote, "      mode: purple")
    github.add_pull("acme/fleet", 5, head=second)
    event = pull_request_event("synchronize", number=5, head=second, clone_url=git_remote.url)
    assert service.deliver("pull_request", event).status_code == 202
    assert service.drain() == 1
    [body] = github.comment_bodies("acme/fleet")
    assert "purple" in body
    assert "green" not in body
    assert list(github.repos["acme/fleet"].comments) == [comment_id]
    assert [c["conclusion"] for c in checks_of(github, first)] == ["success"]
    assert [c["conclusion"] for c in checks_of(github, second)] == ["success"]


def test_a_huge_change_is_split_then_shrinks_back_to_one_part(
    tmp_path: Path, service: Service, github: FakeGitHub, git_remote: RemoteRepo
) -> None:
    work = fleet(tmp_path, git_remote)
    # Every object of a large set changes: the diffs outgrow one comment.
    many = "".join(
        f"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}, namespace: default}}\n"
        "data:\n" + "".join(f"  k{j}: {'v' * 80}{i}@TAG@\n" for j in range(8))
        for i in range(300)
    )
    files = {
        "apps/many.yaml": many.replace("@TAG@", "base"),
        "apps/kustomization.yaml": "resources: [settings.yaml, many.yaml]\n",
    }
    commit(work, files, "many objects")
    git(work, "push", "--quiet", git_remote.push_url, "main")
    git(work, "checkout", "--quiet", "-B", "feature")
    changed = many.replace("@TAG@", "head")
    sha = commit(work, {"apps/many.yaml": changed}, "change them all")
    git(work, "push", "--quiet", "--force", git_remote.push_url, "feature")
    github.add_pull("acme/fleet", 6, head=sha)
    service.deliver(
        "pull_request", pull_request_event("opened", number=6, head=sha, clone_url=git_remote.url)
    )
    service.drain()
    bodies = github.comment_bodies("acme/fleet")
    assert len(bodies) > 1
    assert all(len(b) <= 65_536 for b in bodies)
    assert f"_Part 1 of {len(bodies)}_" in bodies[0]

    commit(work, {"apps/many.yaml": files["apps/many.yaml"]}, "undo the large change")
    sha = push_change(work, git_remote, "      mode: small")
    github.add_pull("acme/fleet", 6, head=sha)
    service.deliver(
        "pull_request",
        pull_request_event("synchronize", number=6, head=sha, clone_url=git_remote.url),
    )
    service.drain()
    [body] = github.comment_bodies("acme/fleet")
    assert "small" in body


def test_a_stale_head_never_reports(
    tmp_path: Path, service: Service, github: FakeGitHub, git_remote: RemoteRepo
) -> None:
    work = fleet(tmp_path, git_remote)
    first = push_change(work, git_remote, "      mode: green")
    second = push_change(work, git_remote, "      mode: purple")
    github.add_pull("acme/fleet", 7, head=second)
    for action, sha in (("opened", first), ("synchronize", second)):
        service.deliver(
            "pull_request", pull_request_event(action, number=7, head=sha, clone_url=git_remote.url)
        )
    assert service.store.counts() == {"queued": 1, "superseded": 1}
    assert service.drain() == 1
    assert checks_of(github, first) == []
    [body] = github.comment_bodies("acme/fleet")
    assert "purple" in body


def test_fork_pull_requests_are_not_rendered(
    service: Service, github: FakeGitHub, git_remote: RemoteRepo
) -> None:
    sha = "c" * 40
    github.add_pull("acme/fleet", 8, head=sha)
    event = pull_request_event(
        "opened", number=8, head=sha, clone_url=git_remote.url, head_repository="mallory/fleet"
    )
    service.deliver("pull_request", event)
    service.drain()
    [check] = checks_of(github, sha)
    assert check["conclusion"] == "failure"
    assert "fork" in check["output"]["title"]
    assert not (service.settings.data_dir / "mirrors").exists()
