"""A cluster the head takes whole is neither read nor planned again (`core.plan.kept`).

Checked by what the cache reads (`RenderCache.index_reads`), by what is planned (the observer's
`planned`) and by the report, which is always the report of an empty cache.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from core import preview as engine
from core.changes import Preview
from core.plan import kept
from core.render.cache import RenderCache
from core.render.unit import RenderSettings
from core.repo.git import Repository
from core.report import jsonout
from core.units import ClusterRender
from tests.preview.gitrepo import commit, configmap, kustomization
from tests.preview.test_carry import PROD, _settings, _two_clusters

STAGING = "clusters/staging"

_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object}}
"""


@pytest.fixture
def tools(kustomize_bin: Path, helm_bin: Path) -> tuple[Path, Path]:
    return kustomize_bin, helm_bin


def _plan(repo: Path, base: str, head: str, settings: RenderSettings) -> Preview:
    with Repository(repo) as git_repo:
        return engine.run_preview(git_repo, engine.PreviewRequest(base=base, head=head), settings)


def _run(
    repo: Path, base: str, head: str, cache: Path, tools: tuple[Path, Path]
) -> tuple[Preview, RenderSettings]:
    """A preview in a new process, as the command line runs it: a new cache object."""
    settings = _settings(RenderCache(cache), *tools)
    return _plan(repo, base, head, settings), settings


def _plans(cache: Path) -> list[Path]:
    return sorted((cache / "revisions").rglob("*.plan.json"))


def _staging_apps(count: int) -> dict[str, str]:
    """Staging with `count` more app Kustomizations (one ConfigMap each)."""
    files = {
        "clusters/staging/apps.yaml": "---\n".join(
            kustomization(name, f"./apps/{name}")
            for name in ("jobs", *(f"extra-{n}" for n in range(count)))
        )
    }
    for n in range(count):
        files[f"apps/extra-{n}/settings.yaml"] = configmap(f"extra-{n}", "apps", n=str(n))
    return files


def test_a_preview_that_takes_every_cluster_whole_reads_no_render(
    tmp_path: Path, tools: tuple[Path, Path]
) -> None:
    repo, base = _two_clusters(tmp_path / "repo")
    _run(repo, base, base, tmp_path / "cache", tools)

    warm, settings = _run(repo, base, base, tmp_path / "cache", tools)
    cold, _ = _run(repo, base, base, tmp_path / "cold", tools)

    assert settings.observer.discovered == []
    assert settings.observer.planned == []
    assert settings.cache.index_reads == 0
    assert jsonout.dumps(warm) == jsonout.dumps(cold)


def test_a_one_file_preview_reads_and_plans_only_the_changed_cluster(
    tmp_path: Path, tools: tuple[Path, Path]
) -> None:
    reads = {}
    for extra in (0, 6):
        root = tmp_path / str(extra)
        repo, base = _two_clusters(root / "repo", **_staging_apps(extra))
        head = commit(repo, {"apps/web/settings.yaml": configmap("web", "apps", size="2")}, "web")
        _run(repo, base, base, root / "cache", tools)

        warm, settings = _run(repo, base, head, root / "cache", tools)
        cold, _ = _run(repo, base, head, root / "cold", tools)

        assert settings.observer.discovered == [f"{head} {PROD}"]
        assert settings.observer.planned == []  # staging's plan was kept by the warm-up
        assert jsonout.dumps(warm) == jsonout.dumps(cold)
        reads[extra] = settings.cache.index_reads
    # Six more units in the cluster the change does not reach: not one more index read.
    assert reads[0] == reads[6]
    assert reads[0] > 0  # the changed cluster's renders are read


def test_a_kept_plan_keeps_duplicates_and_definitions(
    tmp_path: Path, tools: tuple[Path, Path]
) -> None:
    repo, base = _two_clusters(
        tmp_path / "repo",
        **{
            "clusters/staging/apps.yaml": "---\n".join(
                kustomization(name, f"./apps/{name}") for name in ("jobs", "copy")
            ),
            # The same ConfigMap from two units, and a CRD: both are cluster-wide facts.
            "apps/copy/settings.yaml": configmap("jobs", "apps", every="1h"),
            "apps/jobs/crd.yaml": _CRD,
        },
    )
    head = commit(repo, {"apps/web/settings.yaml": configmap("web", "apps", size="2")}, "web")
    _run(repo, base, base, tmp_path / "cache", tools)

    warm, settings = _run(repo, base, head, tmp_path / "cache", tools)
    cold, _ = _run(repo, base, head, tmp_path / "cold", tools)

    assert settings.observer.planned == []
    assert jsonout.dumps(warm) == jsonout.dumps(cold)
    (staging,) = (cluster for cluster in warm.clusters if cluster.path == STAGING)
    (expected,) = (cluster for cluster in cold.clusters if cluster.path == STAGING)
    assert staging.errors == expected.errors
    assert staging.errors  # the duplicate is reported
    assert staging.duplicates == expected.duplicates
    assert {name: crd.body for name, crd in staging.definitions.items()} == {
        name: crd.body for name, crd in expected.definitions.items()
    }
    assert list(staging.definitions) == ["widgets.example.com"]


@pytest.mark.parametrize("damage", ["not json", "[]", "wrong-type", "unknown-unit"])
def test_a_damaged_kept_plan_is_planned_again(
    tmp_path: Path, tools: tuple[Path, Path], damage: str
) -> None:
    repo, base = _two_clusters(tmp_path / "repo", **{"apps/jobs/crd.yaml": _CRD})
    head = commit(repo, {"apps/web/settings.yaml": configmap("web", "apps", size="2")}, "web")
    _run(repo, base, base, tmp_path / "cache", tools)
    for path in _plans(tmp_path / "cache"):
        data = json.loads(path.read_text())
        if damage == "wrong-type":
            data["units"][0]["prune"] = "yes"
        elif damage == "unknown-unit" and data["definitions"]:
            data["definitions"][0][1] = ["Kustomization", "flux-system", "nowhere"]
        path.write_text(damage if damage in ("not json", "[]") else json.dumps(data))

    warm, settings = _run(repo, base, head, tmp_path / "cache", tools)
    cold, _ = _run(repo, base, head, tmp_path / "cold", tools)

    assert settings.observer.planned == [STAGING]
    assert jsonout.dumps(warm) == jsonout.dumps(cold)


def test_a_plan_that_says_more_than_unchanged_is_not_kept(
    tmp_path: Path, tools: tuple[Path, Path]
) -> None:
    repo, base = _two_clusters(tmp_path / "repo")
    preview, settings = _run(repo, base, base, tmp_path / "cache", tools)
    (staging,) = (cluster for cluster in preview.clusters if cluster.path == STAGING)
    cluster = _kept_cluster(settings, repo, base)
    cache = RenderCache(tmp_path / "other")
    noted = dataclasses.replace(staging.units[0], note="a note")

    kept.save(cache, cluster, dataclasses.replace(staging, units=(noted, *staging.units[1:])))

    assert _plans(tmp_path / "other") == []
    kept.save(cache, cluster, staging)
    assert len(_plans(tmp_path / "other")) == 1


def _kept_cluster(settings: RenderSettings, repo: Path, base: str) -> ClusterRender:
    """Staging at `base` as the cache keeps it."""
    with Repository(repo) as git_repo:
        tree = git_repo.tree(base)
        renders = engine.render_revision(git_repo, tree, [STAGING], settings)
    return renders[STAGING]


def test_a_service_reads_kept_plans_from_memory(tmp_path: Path, tools: tuple[Path, Path]) -> None:
    repo, base = _two_clusters(tmp_path / "repo", **{"apps/jobs/crd.yaml": _CRD})
    first = commit(repo, {"apps/web/settings.yaml": configmap("web", "apps", size="2")}, "one")
    second = commit(repo, {"apps/api/settings.yaml": configmap("api", "apps", tier="b")}, "two")
    cache = RenderCache(tmp_path / "cache")
    _plan(repo, base, first, _settings(cache, *tools))
    for path in _plans(tmp_path / "cache"):
        path.write_text("{}")  # damaged on disk: only the copy in memory can answer

    settings = _settings(cache, *tools)
    warm = _plan(repo, base, second, settings)
    cold, _ = _run(repo, base, second, tmp_path / "cold", tools)

    assert settings.observer.planned == []
    assert jsonout.dumps(warm) == jsonout.dumps(cold)
    (staging,) = (cluster for cluster in warm.clusters if cluster.path == STAGING)
    assert list(staging.definitions) == ["widgets.example.com"]


def test_the_kept_plans_key_names_every_module_the_planner_imports() -> None:
    """A planner module missing from the key would let a changed planner read an old plan."""
    probe = (
        "import sys, core.plan.plan\n"
        "for name, module in sorted(sys.modules.items()):\n"
        "    source = getattr(module, '__file__', None) or ''\n"
        "    if name.startswith('core.') and not source.endswith('__init__.py'):\n"
        "        print(name)\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "core.plan.plan" in loaded
    assert set(loaded) - set(kept._PLANNER) == set()


def test_a_service_hands_out_the_same_kept_plan_object_each_time(
    tmp_path: Path, tools: tuple[Path, Path]
) -> None:
    # What is made from a plan (the policy gate's owner graph) is then made once per process.
    repo, base = _two_clusters(tmp_path / "repo")
    head = commit(repo, {"apps/web/settings.yaml": configmap("web", "apps", size="2")}, "one")
    cache = RenderCache(tmp_path / "cache")
    _plan(repo, base, head, _settings(cache, *tools))

    plans = [
        {
            cluster.path: cluster
            for cluster in _plan(repo, base, head, _settings(cache, *tools)).clusters
        }
        for _ in range(2)
    ]

    taken_whole = [path for path in plans[0] if plans[0][path] is plans[1][path]]
    assert taken_whole == [STAGING]
