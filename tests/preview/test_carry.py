"""A warm preview does per-unit work only where the change can reach.

Two mechanisms, each checked by what it saves and by the report it leaves unchanged:

- the head takes the base's render of every unit whose input files and watched directories the
  change does not touch (`core.render.carry`), so only the units the change reaches are looked
  up in the cache, and only those it changed are rendered;
- the cache remembers, per revision content, which render each lookup found (the revision memo
  in `core.render.cache`), so a second preview of the same base checks no receipt at all, in a
  new process (on disk) as in a long-lived service (in memory).

Exactness against previews without the carry is checked here on small repositories and in
`test_changed_only.py` on every change of the synthetic fleet and on the example repository.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from core import preview as engine
from core.fetch import FetchPolicy
from core.host import command, workspace
from core.render.cache import CachedRender, RenderCache
from core.render.carry import Carry
from core.render.unit import RenderOptions, RenderSettings, UnitRenderer
from core.repo.git import Repository, Tree
from core.report import jsonout
from tests.preview.gitrepo import commit, configmap, flux_cluster, kustomization, new_repo

PROD = "clusters/production"
WEB = "Kustomization/flux-system/web"


# ---------------------------------------------------------------------------------------------
# The carry's rule, on paths alone


def _carry(base: dict[str, str], head: dict[str, str]) -> Carry:
    return Carry.between(Tree("base", base), Tree("head", head))


def _render(*inputs: str) -> CachedRender:
    return CachedRender({}, frozenset(inputs))


BASE = {
    "apps/web/kustomization.yaml": "k1",
    "apps/web/settings.yaml": "s1",
    "apps/api/settings.yaml": "a1",
    "README.md": "r1",
}


def test_a_render_whose_input_changed_is_not_carried() -> None:
    carry = _carry(BASE, {**BASE, "apps/web/settings.yaml": "s2"})

    assert carry.invalidates(frozenset({"apps/web/settings.yaml"}))
    assert not carry.invalidates(frozenset({"apps/api/settings.yaml"}))


def test_a_file_added_or_removed_in_a_watched_directory_is_not_carried() -> None:
    added = _carry(BASE, {**BASE, "apps/web/extra.yaml": "e1"})
    removed = _carry(BASE, {k: v for k, v in BASE.items() if k != "apps/api/settings.yaml"})

    # A generated kustomization lists its directory and those below it.
    assert added.invalidates(frozenset({"apps/web/settings.yaml"}))
    assert removed.invalidates(frozenset({"apps/web/settings.yaml"}))  # `apps` lists less
    assert not _carry(BASE, {**BASE, "docs/new.md": "n"}).invalidates(
        frozenset({"apps/web/settings.yaml"})
    )


def test_the_repository_root_is_watched_only_for_an_input_in_it() -> None:
    carry = _carry(BASE, {**BASE, "NEW.md": "n"})

    assert not carry.invalidates(frozenset({"apps/web/settings.yaml"}))
    assert carry.invalidates(frozenset({"README.md"}))


def test_the_head_takes_only_what_the_base_kept() -> None:
    carry = _carry(BASE, {**BASE, "apps/web/settings.yaml": "s2"})
    kept, touched = _render("apps/api/settings.yaml"), _render("apps/web/settings.yaml")
    carry.keep("api", kept)
    carry.keep("web", touched)

    assert carry.take("api") is None  # still at the base: nothing is handed out
    carry.to_head()
    carry.keep("late", kept)  # the head never adds

    assert carry.take("api") is kept
    assert carry.take("web") is None
    assert carry.take("late") is None
    assert carry.carried == 1


# ---------------------------------------------------------------------------------------------
# Through the engine, on a small repository


def _repo(root: Path) -> tuple[Path, str]:
    return new_repo(
        root,
        {
            **flux_cluster("production"),
            f"{PROD}/apps.yaml": "---\n".join(
                kustomization(name, f"./apps/{name}") for name in ("web", "api", "jobs")
            ),
            "apps/web/kustomization.yaml": "resources: [settings.yaml]\n",
            "apps/web/settings.yaml": configmap("web", "apps", size="1"),
            "apps/api/kustomization.yaml": "resources: [settings.yaml]\n",
            "apps/api/settings.yaml": configmap("api", "apps", tier="a"),
            # No kustomization file: Flux generates one listing the directory.
            "apps/jobs/settings.yaml": configmap("jobs", "apps", every="1h"),
        },
    )


class _CountingCache(RenderCache):
    """A render cache that counts its lookups."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.lookups = 0

    def lookup(self, spec_key: str, tree: Any) -> CachedRender | None:
        self.lookups += 1
        return super().lookup(spec_key, tree)


def _settings(cache: RenderCache, kustomize: Path, helm: Path) -> RenderSettings:
    options = RenderOptions(
        kustomize=kustomize, helm=helm, fetch_policy=FetchPolicy(allowed_hosts=None)
    )
    return RenderSettings(options, cache)


def _preview(repo: Path, base: str, head: str, settings: RenderSettings) -> str:
    request = engine.PreviewRequest(base=base, head=head)
    with Repository(repo) as git_repo:
        return jsonout.dumps(engine.run_preview(git_repo, request, settings))


@pytest.fixture
def carries(monkeypatch: pytest.MonkeyPatch) -> list[Carry]:
    """The carries the engine makes (one per preview that has one)."""
    made: list[Carry] = []
    real = engine._carry

    def spy(*args: Any) -> Carry | None:
        carry = real(*args)
        if carry is not None:
            made.append(carry)
        return carry

    monkeypatch.setattr(engine, "_carry", spy)
    return made


def test_a_warm_one_file_preview_looks_up_and_renders_only_the_edited_unit(
    tmp_path: Path, kustomize_bin: Path, helm_bin: Path, carries: list[Carry]
) -> None:
    repo, base = _repo(tmp_path / "repo")
    head = commit(repo, {"apps/web/settings.yaml": configmap("web", "apps", size="2")}, "grow")
    _preview(repo, base, base, _settings(RenderCache(tmp_path / "cache"), kustomize_bin, helm_bin))

    # A new process: a new cache object on the same directory.
    cache = _CountingCache(tmp_path / "cache")
    settings = _settings(cache, kustomize_bin, helm_bin)
    report = _preview(repo, base, head, settings)

    # The base's cluster is read as its first preview discovered it (`core.render.clusters`),
    # the head's three untouched units come from the base: the one lookup is the edited unit's,
    # a miss, and the one render is its own.
    assert settings.observer.discovered == [f"{head} {PROD}"]
    assert cache.memo_hits == 0
    assert cache.lookups == 1
    assert carries[-1].carried == 3
    assert settings.observer.rendered == [WEB]
    assert '"action": "update"' in report


def test_a_render_hands_its_work_directory_over_for_removal_after_its_tool_ran(
    tmp_path: Path, kustomize_bin: Path, helm_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, base = _repo(tmp_path / "repo")
    work = tmp_path / "work"
    work.mkdir()
    handed: list[tuple[str, bool]] = []
    real = workspace.remove_later

    def spy(path: Path) -> None:
        handed.append((path.name, (path / "repo").is_dir()))
        real(path)

    monkeypatch.setattr(workspace, "remove_later", spy)
    settings = _settings(RenderCache(tmp_path / "cache"), kustomize_bin, helm_bin)
    _preview(repo, base, base, settings.with_options(work_root=work))
    workspace.removed_later()

    # Every kustomize run's directory, with the files it was given, once the run is over; the
    # background removal leaves nothing behind.
    assert len(handed) == len(settings.observer.rendered) > 0
    assert all(name.startswith("tidegate-ks-") and copied for name, copied in handed)
    assert list(work.iterdir()) == []


def test_the_unit_the_change_touches_is_under_way_before_the_others_are_looked_up(
    tmp_path: Path, kustomize_bin: Path, helm_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, base = _repo(tmp_path / "repo")
    head = commit(repo, {"apps/jobs/settings.yaml": configmap("jobs", "apps", every="2h")}, "j")
    _preview(repo, base, base, _settings(RenderCache(tmp_path / "cache"), kustomize_bin, helm_bin))
    events: list[str] = []
    prepare, run_tool = UnitRenderer._prepare, command.run

    def prepared(self: UnitRenderer, spec: Any, *args: Any) -> Any:
        events.append(f"prepare {spec.unit.name}")
        return prepare(self, spec, *args)

    def tool(argv: list[str], **kwargs: Any) -> bytes:
        events.append("tool")
        return run_tool(argv, **kwargs)

    monkeypatch.setattr(UnitRenderer, "_prepare", prepared)
    monkeypatch.setattr("core.render.kustomize.run", tool)
    settings = _settings(RenderCache(tmp_path / "cache"), kustomize_bin, helm_bin)
    report = _preview(repo, base, head, settings)

    # At the head's level of apps, the last app (the edited one) is prepared first and its
    # kustomize is running before the others are looked up; the report is as always.
    level = events[events.index("prepare jobs") :]
    assert level[:2] == ["prepare jobs", "tool"]
    assert sorted(level[2:4]) == ["prepare api", "prepare web"]
    assert settings.observer.rendered == ["Kustomization/flux-system/jobs"]
    assert '"action": "update"' in report


def test_the_carry_and_the_memo_leave_the_report_as_it_is_without_them(
    tmp_path: Path, kustomize_bin: Path, helm_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, base = _repo(tmp_path / "repo")
    head = commit(
        repo,
        {
            "apps/web/settings.yaml": configmap("web", "apps", size="2"),
            "apps/jobs/more.yaml": configmap("more", "apps", every="2h"),  # a generated listing
            "apps/api/settings.yaml": None,  # a unit that now fails
        },
        "three kinds of change",
    )
    warm = RenderCache(tmp_path / "warm")
    _preview(repo, base, base, _settings(warm, kustomize_bin, helm_bin))
    carried = _preview(repo, base, head, _settings(warm, kustomize_bin, helm_bin))

    monkeypatch.setattr(engine, "_carry", lambda *args: None)
    cold_settings = _settings(RenderCache(tmp_path / "cold"), kustomize_bin, helm_bin)
    cold = _preview(repo, base, head, cold_settings)

    assert carried == cold
    assert '"status": "failed"' in cold


def test_a_unit_failing_at_both_sides_is_reported_by_a_warm_preview(
    tmp_path: Path, kustomize_bin: Path, helm_bin: Path, carries: list[Carry]
) -> None:
    repo, _ = _repo(tmp_path / "repo")
    base = commit(repo, {"apps/api/kustomization.yaml": "resources: [missing.yaml]\n"}, "break")
    head = commit(repo, {"apps/web/settings.yaml": configmap("web", "apps", size="2")}, "grow")
    cache = tmp_path / "cache"
    _preview(repo, base, base, _settings(RenderCache(cache), kustomize_bin, helm_bin))

    settings = _settings(RenderCache(cache), kustomize_bin, helm_bin)
    report = _preview(repo, base, head, settings)

    # A failure is never carried or cached: it is rendered at both sides and reported.
    assert sorted(settings.observer.rendered) == [WEB]
    assert '"status": "failed"' in report
    assert carries[-1].carried == 2  # the root and jobs


def test_a_service_keeps_the_base_between_two_pull_requests(
    tmp_path: Path, kustomize_bin: Path, helm_bin: Path
) -> None:
    repo, base = _repo(tmp_path / "repo")
    first = commit(repo, {"apps/web/settings.yaml": configmap("web", "apps", size="2")}, "one")
    second = commit(repo, {"apps/api/settings.yaml": configmap("api", "apps", tier="b")}, "two")
    # One cache object for every preview, as the warm preview server keeps it; the revision
    # memo is in memory then, whatever is on disk.
    cache = _CountingCache(tmp_path / "cache")
    _preview(repo, base, first, _settings(cache, kustomize_bin, helm_bin))
    shutil.rmtree(tmp_path / "cache" / "revisions")

    before = cache.memo_hits
    _preview(repo, base, second, _settings(cache, kustomize_bin, helm_bin))

    assert cache.memo_hits - before >= 4  # every unit of the base


def test_a_memo_entry_from_another_kustomize_is_not_used(
    tmp_path: Path, kustomize_bin: Path, helm_bin: Path
) -> None:
    repo, base = _repo(tmp_path / "repo")
    _preview(repo, base, base, _settings(RenderCache(tmp_path / "cache"), kustomize_bin, helm_bin))
    other = tmp_path / "other" / "kustomize"
    other.parent.mkdir()
    # Another build of kustomize (trailing bytes leave an ELF binary runnable): a copy of the
    # same bytes would be the same tool, and rightly share its renders.
    other.write_bytes(kustomize_bin.read_bytes() + b"\0")
    other.chmod(0o755)

    cache = RenderCache(tmp_path / "cache")
    settings = _settings(cache, other, helm_bin)
    _preview(repo, base, base, settings)

    # The tool is part of every spec key: nothing found for the first binary answers the second.
    assert cache.memo_hits == 0
    assert len(settings.observer.rendered) == 4


@pytest.mark.parametrize("named", ["0" * 64, "../../masking"], ids=["missing", "not-a-key"])
def test_a_memo_naming_a_missing_render_falls_back_to_the_receipts(
    tmp_path: Path, kustomize_bin: Path, helm_bin: Path, named: str
) -> None:
    repo, base = _repo(tmp_path / "repo")
    _preview(repo, base, base, _settings(RenderCache(tmp_path / "cache"), kustomize_bin, helm_bin))
    memos = list((tmp_path / "cache" / "revisions").rglob("*.json"))
    for memo in memos:
        keys = json.loads(memo.read_text())
        memo.write_text(json.dumps(dict.fromkeys(keys, named)))

    cache = RenderCache(tmp_path / "cache")
    settings = _settings(cache, kustomize_bin, helm_bin)
    _preview(repo, base, base, settings)

    assert memos
    assert cache.memo_hits == 0
    assert settings.observer.rendered == []  # every render found through its receipts
    assert named not in memos[0].read_text()  # and the memo names them again


def _two_clusters(root: Path, **staging_files: str) -> tuple[Path, str]:
    return new_repo(
        root,
        {
            **flux_cluster("production"),
            **flux_cluster("staging"),
            f"{PROD}/apps.yaml": "---\n".join(
                kustomization(name, f"./apps/{name}") for name in ("web", "api")
            ),
            "clusters/staging/apps.yaml": kustomization("jobs", "./apps/jobs"),
            "apps/web/kustomization.yaml": "resources: [settings.yaml]\n",
            "apps/web/settings.yaml": configmap("web", "apps", size="1"),
            "apps/api/kustomization.yaml": "resources: [settings.yaml]\n",
            "apps/api/settings.yaml": configmap("api", "apps", tier="a"),
            "apps/jobs/settings.yaml": configmap("jobs", "apps", every="1h"),
            **staging_files,
        },
    )


def _warm_then_plain(
    repo: Path, base: str, head: str, tmp: Path, tools: tuple[Path, Path], patch: Any
) -> tuple[str, str, RenderSettings]:
    """The report from a warm base with the carry, then from an empty cache without it."""
    _preview(repo, base, base, _settings(RenderCache(tmp / "warm"), *tools))
    settings = _settings(RenderCache(tmp / "warm"), *tools)
    warm = _preview(repo, base, head, settings)
    patch.setattr(engine, "_carry", lambda *args: None)
    plain = _preview(repo, base, head, _settings(RenderCache(tmp / "plain"), *tools))
    return warm, plain, settings


def test_a_cluster_the_change_does_not_reach_is_taken_whole(
    tmp_path: Path,
    kustomize_bin: Path,
    helm_bin: Path,
    carries: list[Carry],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo, base = _two_clusters(tmp_path / "repo")
    head = commit(repo, {"apps/web/settings.yaml": configmap("web", "apps", size="2")}, "grow")

    warm, plain, settings = _warm_then_plain(
        repo, base, head, tmp_path, (kustomize_bin, helm_bin), monkeypatch
    )

    assert carries[1].clusters == 1  # staging; production holds the edited unit
    assert carries[1].carried == 2  # production's root and api
    assert settings.observer.rendered == [WEB]
    assert warm == plain


def test_a_cluster_with_a_failing_unit_is_discovered_again(
    tmp_path: Path,
    kustomize_bin: Path,
    helm_bin: Path,
    carries: list[Carry],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo, base = _two_clusters(
        tmp_path / "repo",
        **{
            "clusters/staging/broken.yaml": kustomization("broken", "./apps/broken"),
            "apps/broken/kustomization.yaml": "resources: [missing.yaml]\n",
        },
    )
    head = commit(repo, {"apps/web/settings.yaml": configmap("web", "apps", size="2")}, "grow")

    warm, plain, _ = _warm_then_plain(
        repo, base, head, tmp_path, (kustomize_bin, helm_bin), monkeypatch
    )

    assert carries[1].clusters == 0
    assert warm == plain
    assert '"status": "failed"' in warm
