"""A preview of a known base reads its clusters as discovered before (`core.render.clusters`).

Checked by what is discovered (the observer's `discovered`), by the report (always the report of
an empty cache), and by what is never used: a cluster kept under other options or tools, at
another commit, damaged, or naming a render the cache no longer has.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.budgets import Budgets
from core.fetch import FetchPolicy
from core.render import clusters
from core.render.cache import RenderCache
from core.render.unit import RenderSettings
from tests.preview.gitrepo import commit, configmap
from tests.preview.test_carry import PROD, WEB, _preview, _repo, _settings, _two_clusters

STAGING = "clusters/staging"


def _kept(cache: Path) -> list[Path]:
    return sorted((cache / "revisions").rglob("*.clusters.json"))


def _warm(repo: Path, base: str, cache: Path, tools: tuple[Path, Path]) -> None:
    _preview(repo, base, base, _settings(RenderCache(cache), *tools))


def _run(
    repo: Path, base: str, head: str, cache: Path, tools: tuple[Path, Path]
) -> tuple[str, RenderSettings]:
    """A preview in a new process, as the command line runs it: a new cache object."""
    settings = _settings(RenderCache(cache), *tools)
    return _preview(repo, base, head, settings), settings


@pytest.fixture
def tools(kustomize_bin: Path, helm_bin: Path) -> tuple[Path, Path]:
    return kustomize_bin, helm_bin


def test_a_second_preview_of_a_base_discovers_nothing_at_the_base(
    tmp_path: Path, tools: tuple[Path, Path]
) -> None:
    repo, base = _two_clusters(tmp_path / "repo")
    head = commit(repo, {"apps/web/settings.yaml": configmap("web", "apps", size="2")}, "grow")
    _warm(repo, base, tmp_path / "cache", tools)

    warm, settings = _run(repo, base, head, tmp_path / "cache", tools)
    plain, cold = _run(repo, base, head, tmp_path / "cold", tools)

    # The base's two clusters are read; the head discovers the one the change reaches.
    assert settings.observer.discovered == [f"{head} {PROD}"]
    assert settings.observer.rendered == [WEB]
    # An empty cache discovers both of the base's clusters (staging is carried to the head).
    assert sorted(cold.observer.discovered) == sorted(
        [f"{base} {PROD}", f"{base} {STAGING}", f"{head} {PROD}"]
    )
    assert warm == plain


def test_a_service_reads_the_base_from_memory(tmp_path: Path, tools: tuple[Path, Path]) -> None:
    repo, base = _two_clusters(tmp_path / "repo")
    first = commit(repo, {"apps/web/settings.yaml": configmap("web", "apps", size="2")}, "one")
    second = commit(repo, {"apps/api/settings.yaml": configmap("api", "apps", tier="b")}, "two")
    cache = RenderCache(tmp_path / "cache")
    _preview(repo, base, first, _settings(cache, *tools))
    for kept in _kept(tmp_path / "cache"):
        # Damaged on disk: only the copy in memory can answer.
        kept.write_text("{}")

    settings = _settings(cache, *tools)
    _preview(repo, base, second, settings)

    assert settings.observer.discovered == [f"{second} {PROD}"]


def test_a_cluster_with_a_failing_unit_is_not_kept(
    tmp_path: Path, tools: tuple[Path, Path]
) -> None:
    repo, base = _two_clusters(
        tmp_path / "repo",
        **{
            "clusters/staging/broken.yaml": """
                apiVersion: kustomize.toolkit.fluxcd.io/v1
                kind: Kustomization
                metadata: {name: broken, namespace: flux-system}
                spec:
                  interval: 10m
                  path: ./apps/broken
                  prune: true
                  sourceRef: {kind: GitRepository, name: flux-system}
            """,
            "apps/broken/kustomization.yaml": "resources: [missing.yaml]\n",
        },
    )
    _warm(repo, base, tmp_path / "cache", tools)

    _, settings = _run(repo, base, base, tmp_path / "cache", tools)

    # Discovered again at both sides: the head cannot take a failing cluster whole either.
    assert settings.observer.discovered == [f"{base} {STAGING}", f"{base} {STAGING}"]


def test_a_cluster_kept_under_other_options_or_tools_is_not_used(
    tmp_path: Path, tools: tuple[Path, Path]
) -> None:
    repo, base = _repo(tmp_path / "repo")
    head = commit(repo, {"apps/web/settings.yaml": configmap("web", "apps", size="2")}, "grow")
    _preview(repo, base, head, _settings(RenderCache(tmp_path / "cache"), *tools))
    other = tmp_path / "other" / "kustomize"
    other.parent.mkdir()
    # Another build of kustomize (trailing bytes leave an ELF binary runnable).
    other.write_bytes(tools[0].read_bytes() + b"\0")
    other.chmod(0o755)

    def settings(**changes: object) -> RenderSettings:
        made = _settings(RenderCache(tmp_path / "cache"), *tools)
        return made.with_options(**changes) if changes else made

    runs = {
        "other kustomize": settings(kustomize=other),
        # The base is trusted whatever the operator allows: only the head's policy narrows.
        "narrower head": settings(fetch_policy=FetchPolicy()),
        "other budgets": settings(budgets=Budgets(max_depth=Budgets().max_depth + 1)),
        "same": settings(),
    }
    for run in runs.values():
        _preview(repo, base, head, run)

    discovered = {name: run.observer.discovered for name, run in runs.items()}
    both = [f"{base} {PROD}", f"{head} {PROD}"]
    assert discovered == {
        "other kustomize": both,
        "narrower head": [f"{head} {PROD}"],
        "other budgets": both,
        "same": [],
    }


def test_a_cluster_kept_at_another_commit_is_not_used(
    tmp_path: Path, tools: tuple[Path, Path]
) -> None:
    repo, base = _repo(tmp_path / "repo")
    _warm(repo, base, tmp_path / "cache", tools)
    # Other ignore rules are another commit: the api app leaves the artifact.
    ignored = commit(repo, {".sourceignore": "apps/api/\n"}, "ignore api")

    report, settings = _run(repo, ignored, ignored, tmp_path / "cache", tools)
    plain, _ = _run(repo, ignored, ignored, tmp_path / "cold", tools)

    # At both sides: the failing api unit keeps the head from taking the cluster whole.
    assert settings.observer.discovered == [f"{ignored} {PROD}", f"{ignored} {PROD}"]
    assert report == plain
    assert '"status": "failed"' in report  # the api Kustomization's path is gone


@pytest.mark.parametrize(
    "damage",
    ["not json", "[]", "missing-render", "wrong-type", "other-path"],
)
def test_a_damaged_kept_cluster_falls_back_to_discovery(
    tmp_path: Path, tools: tuple[Path, Path], damage: str
) -> None:
    repo, base = _repo(tmp_path / "repo")
    head = commit(repo, {"apps/web/settings.yaml": configmap("web", "apps", size="2")}, "grow")
    _warm(repo, base, tmp_path / "cache", tools)
    (kept,) = _kept(tmp_path / "cache")
    data = json.loads(kept.read_text())
    if damage == "missing-render":
        data["units"][-1]["render"] = "0" * 64
    elif damage == "wrong-type":
        data["units"][0]["prune"] = "yes"
    elif damage == "other-path":
        data["path"] = "clusters/staging"
    kept.write_text(damage if damage in ("not json", "[]") else json.dumps(data))

    report, settings = _run(repo, base, head, tmp_path / "cache", tools)
    plain, _ = _run(repo, base, head, tmp_path / "cold", tools)

    assert settings.observer.discovered == [f"{base} {PROD}", f"{head} {PROD}"]
    assert report == plain


def test_the_key_is_the_same_in_every_process() -> None:
    # Sets print in a per-process order: the key must not follow it.
    code = (
        "from core.fetch import FetchPolicy; from core.render import clusters; "
        "policy = FetchPolicy(allowed_hosts=frozenset({'a.example', 'b.example', 'c.example'})); "
        "print(clusters.key('0' * 40, 'clusters/x', [clusters.fingerprint(policy)]))"
    )
    keys = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }

    assert len(keys) == 1
    assert clusters.key("main", "clusters/x", []) is None  # a branch names no fixed content


def test_a_long_lived_cache_keeps_both_sides_of_a_large_fleet_in_memory(tmp_path: Path) -> None:
    # A warm preview of a 200-cluster fleet takes each cluster of its base and that cluster's
    # kept plan (two entries each), at every preview: a bound below that would read them all
    # from disk again every time, least recently used going first.
    cache = RenderCache(tmp_path)
    keys = [f"{number:064x}" for number in range(2 * 200)]
    kept = {key: object() for key in keys}
    for key in keys:
        cache.write_cluster(key, {"data": "on disk"})
        cache.remember_cluster(key, kept[key])

    assert all(cache.read_cluster(key) == (kept[key], None) for key in keys)
