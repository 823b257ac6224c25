"""The approvals the app hands the gate: users, and the CODEOWNERS teams one of them belongs to.

The code host is faked here (our own port); the end-to-end tests with the local GitHub and
GitLab servers are in test_review_team_approvals.py.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pytest

from app import approvals
from core.vcs.port import VcsError
from tests.preview.gitrepo import commit, new_repo


class Host:
    """Approvers, writers and team members; records every membership lookup."""

    def __init__(self, approved: Sequence[str], writers: set[str], teams: dict[str, set[str]]):
        self.approved = approved
        self.writers = writers
        self.teams = teams
        self.lookups: list[tuple[str, str]] = []

    def approvers(self, number: int, sha: str) -> Sequence[str]:
        return self.approved

    def can_write(self, user: str) -> bool:
        return user in self.writers

    def in_team(self, user: str, team: str) -> bool:
        self.lookups.append((user, team))
        if team not in self.teams:
            raise VcsError(f"GitHub read team membership failed for {team}")
        return user in self.teams[team]


def test_a_team_counts_when_an_approving_writer_belongs_to_it() -> None:
    host = Host(["alice", "bob", "eve"], {"alice", "bob"}, {"acme/platform": {"bob", "eve"}})
    found = approvals.approvals(host, 1, "a" * 40, ["acme/platform"])  # type: ignore[arg-type]
    assert found == ["alice", "bob", "@acme/platform"]
    # `eve` cannot write: her membership is never asked about, and never counts.
    assert host.lookups == [("alice", "acme/platform"), ("bob", "acme/platform")]


def test_each_user_and_team_is_looked_up_once_per_job() -> None:
    host = Host(["alice"], {"alice"}, {"acme/platform": set()})
    teams = ["acme/platform", "ACME/Platform"]
    assert approvals.approvals(host, 1, "a" * 40, teams) == ["alice"]  # type: ignore[arg-type]
    assert host.lookups == [("alice", "acme/platform")]


def test_a_failed_lookup_counts_no_team_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    host = Host(["alice"], {"alice"}, {"acme/ops": {"alice"}})
    with caplog.at_level(logging.WARNING, logger="tidegate.review"):
        found = approvals.approvals(host, 1, "a" * 40, ["acme/gone", "acme/ops"])  # type: ignore[arg-type]
    assert found == ["alice", "@acme/ops"]
    [line] = caplog.records
    assert line.getMessage().startswith("team lookup failed, not counted: @acme/gone: ")


def test_only_the_teams_owning_changed_paths_at_base_are_named(tmp_path: Path) -> None:
    repo, base = new_repo(
        tmp_path / "repo",
        {
            "CODEOWNERS": "* @acme/all\n/apps/ @acme/apps alice\n/docs/ @acme/docs\n",
            "apps/a.yaml": "a: 1\n",
            "docs/d.md": "d\n",
        },
    )
    head = commit(repo, {"apps/a.yaml": "a: 2\n", "apps/new.yaml": "n: 1\n"}, "change")
    assert approvals.codeowner_teams(repo, base, head) == ["acme/apps"]
    # CODEOWNERS is read at base: a pull request that rewrites it names no new team.
    rewritten = commit(repo, {"CODEOWNERS": "* @acme/mine\n"}, "take over")
    assert approvals.codeowner_teams(repo, base, rewritten) == ["acme/all", "acme/apps"]


def test_codeowners_is_read_where_the_host_reads_it(tmp_path: Path) -> None:
    repo, base = new_repo(
        tmp_path / "repo",
        {
            ".gitlab/CODEOWNERS": "* @acme/gitlab\n",
            ".github/CODEOWNERS": "* @acme/github\n",
            "a.yaml": "a: 1\n",
        },
    )
    head = commit(repo, {"a.yaml": "a: 2\n"}, "change")
    # GitHub reads .github/ first and never .gitlab/; GitLab reads root, docs/, then .gitlab/.
    assert approvals.codeowner_teams(repo, base, head, "github") == ["acme/github"]
    assert approvals.codeowner_teams(repo, base, head, "gitlab") == ["acme/gitlab"]
    root = commit(repo, {"CODEOWNERS": "* @acme/root\n"}, "root owners")
    later = commit(repo, {"a.yaml": "a: 3\n"}, "change")
    assert approvals.codeowner_teams(repo, root, later, "gitlab") == ["acme/root"]
    assert approvals.codeowner_teams(repo, root, later, "github") == ["acme/github"]


def test_without_codeowners_no_team_is_named(tmp_path: Path) -> None:
    repo, base = new_repo(tmp_path / "repo", {"a.yaml": "a: 1\n"})
    head = commit(repo, {"a.yaml": "a: 2\n"}, "change")
    assert approvals.codeowner_teams(repo, base, head) == []


def test_a_change_too_large_to_match_names_no_team(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    repo, base = new_repo(tmp_path / "repo", {"CODEOWNERS": "* @acme/all\n"})
    head = commit(repo, {"a": "1\n", "b": "2\n", "c": "3\n"}, "change")
    assert approvals.codeowner_teams(repo, base, head) == ["acme/all"]
    monkeypatch.setattr(approvals, "MAX_CHANGED_PATHS", 2)
    with caplog.at_level(logging.WARNING, logger="tidegate.review"):
        assert approvals.codeowner_teams(repo, base, head) == []
    assert "too many changed paths" in caplog.records[0].getMessage()


def test_a_listing_of_changed_paths_too_long_to_read_names_no_team(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    repo, base = new_repo(tmp_path / "repo", {"CODEOWNERS": "* @acme/all\n"})
    head = commit(repo, {"a" * 40: "1\n"}, "change")
    monkeypatch.setattr(approvals, "_MAX_LISTING", 20)
    with caplog.at_level(logging.WARNING, logger="tidegate.review"):
        assert approvals.codeowner_teams(repo, base, head) == []
    assert "too many changed paths" in caplog.records[0].getMessage()
