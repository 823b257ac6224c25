"""A revision's artifact reuses an earlier revision's ignore verdicts under the same rules.

Real git repositories at two commits; the verdicts are compared with a revision filtered on its
own (with the process's kept verdicts forgotten), and the rule matching itself is counted (our
own seam) to show which paths were matched.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.repo import sourceignore
from core.repo.artifacts import Artifacts, forget_verdicts
from core.repo.git import Repository
from tests.preview.gitrepo import commit, new_repo

BASE = {
    ".sourceignore": "drafts/\n",
    "apps/web/deploy.yaml": "kind: ConfigMap\n",
    "apps/web/logo.png": "png\n",
    "drafts/idea.yaml": "kind: ConfigMap\n",
    "clusters/prod/flux.yaml": "kind: ConfigMap\n",
}


@pytest.fixture
def matched(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every path matched against ignore rules."""
    seen: list[str] = []
    original = sourceignore.IgnoreRules.ignored

    def counting(rules: sourceignore.IgnoreRules, path: str) -> bool:
        seen.append(path)
        return original(rules, path)

    monkeypatch.setattr(sourceignore.IgnoreRules, "ignored", counting)
    forget_verdicts()
    return seen


def _views(repo: Path, base: str, head: str, matched: list[str]) -> tuple[list[str], list[str]]:
    """The head's kept paths filtered with the base's help, and on its own; `matched` cleared
    to hold only what the shared filtering matched."""
    with Repository(repo) as opened:
        earlier = Artifacts(opened.tree(base), opened.read_blob)
        earlier.repository()
        matched.clear()
        shared = sorted(
            Artifacts(opened.tree(head), opened.read_blob, like=earlier).repository().files
        )
        shared_matched = list(matched)
        forget_verdicts()
        alone = sorted(Artifacts(opened.tree(head), opened.read_blob).repository().files)
    del matched[len(shared_matched) :]
    return shared, alone


def test_only_paths_the_earlier_revision_lacked_are_matched(
    tmp_path: Path, matched: list[str]
) -> None:
    repo, base = new_repo(tmp_path / "repo", BASE)
    head = commit(
        repo, {"drafts/more.yaml": "kind: ConfigMap\n", "apps/api/deploy.yaml": "x: 1\n"}, "head"
    )

    shared, alone = _views(repo, base, head, matched)

    assert shared == alone
    assert sorted(matched) == ["apps/api/deploy.yaml", "drafts/more.yaml"]
    assert "drafts/more.yaml" not in shared
    assert "apps/api/deploy.yaml" in shared


def test_changed_rules_match_every_path_again(tmp_path: Path, matched: list[str]) -> None:
    repo, base = new_repo(tmp_path / "repo", BASE)
    head = commit(repo, {".sourceignore": "drafts/\napps/web/\n"}, "head")

    shared, alone = _views(repo, base, head, matched)

    assert shared == alone
    assert "apps/web/deploy.yaml" not in shared
    assert len(matched) == len(BASE)


def test_a_process_reuses_the_last_revision_it_filtered(tmp_path: Path, matched: list[str]) -> None:
    # As a warm server does: one revision, then another, with nothing passed between them.
    repo, base = new_repo(tmp_path / "repo", BASE)
    head = commit(repo, {"apps/api/deploy.yaml": "x: 1\n"}, "head")
    with Repository(repo) as opened:
        Artifacts(opened.tree(base), opened.read_blob).repository()
        matched.clear()
        reused = sorted(Artifacts(opened.tree(head), opened.read_blob).repository().files)
        reused_matched = list(matched)
        forget_verdicts()
        alone = sorted(Artifacts(opened.tree(head), opened.read_blob).repository().files)

    assert reused == alone
    assert reused_matched == ["apps/api/deploy.yaml"]
    assert "drafts/idea.yaml" not in reused


def test_kept_verdicts_serve_only_the_same_spec_ignore(tmp_path: Path, matched: list[str]) -> None:
    repo, base = new_repo(tmp_path / "repo", BASE)
    with Repository(repo) as opened:
        Artifacts(opened.tree(base), opened.read_blob).repository()
        matched.clear()
        narrowed = Artifacts(opened.tree(base), opened.read_blob).repository("*.png\n")

    assert len(matched) == len(BASE)  # other rules: every path matched again
    assert "apps/web/logo.png" not in narrowed.files


def test_an_artifact_that_keeps_every_file_shares_the_revision_listing(tmp_path: Path) -> None:
    files = {"apps/web/deploy.yaml": "kind: ConfigMap\n", "clusters/prod/flux.yaml": "kind: X\n"}
    repo, base = new_repo(tmp_path / "repo", files)
    forget_verdicts()
    with Repository(repo) as opened:
        tree = opened.tree(base)
        whole = Artifacts(tree, opened.read_blob).repository()
        narrowed = Artifacts(tree, opened.read_blob).repository("apps/\n")

    assert whole.files is tree  # its directory index is the revision's, built once
    assert whole.listdir("apps") == ["web"]
    assert narrowed.files is not tree
    assert sorted(narrowed.files) == ["clusters/prod/flux.yaml"]
    assert not narrowed.is_dir("apps")
