"""Changed-only previews report exactly what full previews report, rendering far less.

Each comparison runs the real `tidegate preview` twice with empty caches, once rendering every unit
and once with `--changed-only`, and requires the same JSON report byte for byte except for the
`provenUnchanged` count. The default preview's own shortcuts (the head carrying the base's renders,
the revision memo of a warm base, the base's clusters kept as discovered) are compared the same
way, against a preview from an empty cache without them. The synthetic fleet (`bench.fleet`, small:
three clusters of six apps, its chart served on loopback) covers every change kind it has and those
a pull request commonly makes on top (a unit added or removed, a `dependsOn` edit, a substitution
source edit); the embedded example repository covers the rest of the actions. Targeted tests on
small repositories check each case the input walk cannot prove and where the preview falls back to
rendering.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench import fleet as fleetgen
from bench.preview_bench import serve_charts
from cli import demo
from cli import main as cli_main
from core import preview as engine
from core.fetch import FetchPolicy
from core.render import affected
from core.render.cache import RenderCache
from core.render.unit import RenderOptions, RenderSettings
from core.repo.git import GitError, Repository
from core.repo.view import FileView
from core.report import jsonout
from core.units import KustomizationSpec
from tests.preview.gitrepo import commit, configmap, flux_cluster, git, kustomization, new_repo

PROD = "clusters/production"


# ---------------------------------------------------------------------------------------------
# Equivalence through the command line


def _report(
    repo: Path, base: str, head: str, cache: Path, tools: tuple[Path, Path], *extra: str
) -> str:
    output = cache.parent / f"{cache.name}.json"
    code = cli_main.main(
        [
            "preview",
            *("--repo", str(repo), "--base", base, "--head", head, "--format", "json"),
            *("--output", str(output), "--cache-dir", str(cache)),
            *("--kustomize", str(tools[0]), "--helm", str(tools[1])),
            *extra,
        ]
    )
    assert code in (0, 1, 3), output.read_text() if output.exists() else code
    return output.read_text()


def _same_but_count(full: str, changed: str) -> int:
    """Compare the reports byte for byte apart from the count; return the count."""
    count = json.loads(changed)["provenUnchanged"]
    line = f'  "provenUnchanged": {count},\n'
    assert changed.count(line) == 1
    assert "provenUnchanged" not in full
    assert changed.replace(line, "") == full
    return int(count)


@dataclass
class _Fleet:
    made: fleetgen.Fleet
    branches: dict[str, str]
    operator: Path
    full_cache: Path


def _edit(repo: Path, path: str, change: object) -> None:
    target = repo / path
    docs = list(yaml.safe_load_all(target.read_text()))
    change(docs)  # type: ignore[operator]
    target.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def _branch(repo: Path, name: str, files: dict[str, str | None], message: str) -> str:
    git(repo, "checkout", "--quiet", "-b", name, fleetgen.BASE_BRANCH)
    sha = commit(repo, files, message)
    git(repo, "checkout", "--quiet", fleetgen.BASE_BRANCH)
    return sha


def _more_changes(made: fleetgen.Fleet) -> dict[str, str]:
    """Change branches a pull request commonly makes, besides the fleet's own."""
    repo = made.repo
    app = made.apps[-1].name
    branches = {}
    index = "clusters/staging/apps/kustomization.yaml"
    resources = yaml.safe_load((repo / index).read_text())["resources"]
    branches["add-unit"] = _branch(
        repo,
        "change/add-unit",
        {
            "clusters/staging/apps/extra.yaml": kustomization("extra", "./apps/staging/extra"),
            index: yaml.safe_dump({"resources": [*resources, "extra.yaml"]}),
            "apps/staging/extra/kustomization.yaml": "resources: [settings.yaml]\n",
            "apps/staging/extra/settings.yaml": configmap("extra-settings", "team-00", a="1"),
        },
        "add a unit",
    )
    edge_index = "clusters/edge/apps/kustomization.yaml"
    kept = [r for r in yaml.safe_load((repo / edge_index).read_text())["resources"] if app not in r]
    branches["remove-unit"] = _branch(
        repo,
        "change/remove-unit",
        {f"clusters/edge/apps/{app}.yaml": None, edge_index: yaml.safe_dump({"resources": kept})},
        "remove a unit",
    )
    git(repo, "checkout", "--quiet", "-b", "change/depends-on", fleetgen.BASE_BRANCH)
    _edit(
        repo,
        "clusters/production/apps/core-1.yaml",
        lambda docs: docs[0]["spec"].__setitem__("dependsOn", [{"name": "core-0"}]),
    )
    branches["depends-on"] = commit(repo, {}, "make core-1 depend on core-0")
    git(repo, "checkout", "--quiet", fleetgen.BASE_BRANCH)
    git(repo, "checkout", "--quiet", "-b", "change/cluster-vars", fleetgen.BASE_BRANCH)
    _edit(
        repo,
        "clusters/production/cluster-vars.yaml",
        lambda docs: docs[0]["data"].__setitem__("tier", "production"),
    )
    branches["cluster-vars"] = commit(repo, {}, "rename the production tier")
    git(repo, "checkout", "--quiet", fleetgen.BASE_BRANCH)
    return branches


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, helm_bin: Path) -> Iterator[_Fleet]:
    work = tmp_path_factory.mktemp("fleet")
    # The chart server binds its port before the fleet is written with its URL: a port only
    # found free could be taken by another process while the fleet is generated.
    with serve_charts(work / "gen" / "charts") as port:
        made = fleetgen.generate(
            work / "gen", chart_url=f"http://127.0.0.1:{port}", helm=helm_bin, apps=6
        )
        branches = {change.name: made.change_shas[change.name] for change in made.changes}
        branches.update(_more_changes(made))
        operator = work / "operator.yaml"
        operator.write_text("fetch: {allowLoopback: true}\n")
        yield _Fleet(made, branches, operator, work / "full-cache")


# Units proven unchanged per change: 3 clusters x 6 apps, less those the change renders.
_PROVEN = {
    "one-file": 17,  # all apps but the edited one
    "rename": 17,  # all apps but the renamed one (its old name exists at base only)
    "base": 0,  # every app includes the edited component
    "add-unit": 12,  # staging renders in full: the new unit's objects are new to the cluster
    "remove-unit": 12,  # edge renders in full: the removed unit's objects leave the cluster
    "depends-on": 17,  # the edited Flux Kustomization's own unit
    "cluster-vars": 12,  # every production app substitutes from the edited ConfigMap
}


@pytest.mark.parametrize("change", sorted(_PROVEN))
def test_fleet_changes_report_as_a_full_render_does(
    fleet: _Fleet, change: str, tmp_path: Path, kustomize_bin: Path, helm_bin: Path
) -> None:
    tools = (kustomize_bin, helm_bin)
    head = fleet.branches[change]
    config = ("--config", str(fleet.operator))
    # The full render may share a cache between changes: a cache never changes what is rendered.
    full = _report(fleet.made.repo, fleetgen.BASE_BRANCH, head, fleet.full_cache, tools, *config)
    changed = _report(
        fleet.made.repo,
        fleetgen.BASE_BRANCH,
        head,
        tmp_path / "cold",
        tools,
        *config,
        "--changed-only",
    )
    assert _same_but_count(full, changed) == _PROVEN[change]
    assert json.loads(full)["changed"] is True


@pytest.fixture(scope="module")
def warm_base(fleet: _Fleet, kustomize_bin: Path, helm_bin: Path) -> Path:
    """A cache warmed by a preview of the fleet's base against itself (what CI keeps)."""
    cache = fleet.full_cache.parent / "warm-base"
    config = ("--config", str(fleet.operator))
    base = fleetgen.BASE_BRANCH
    _report(fleet.made.repo, base, base, cache, (kustomize_bin, helm_bin), *config)
    return cache


def _count_kept(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many clusters the next previews read as kept (`core.render.clusters`), per preview."""
    counts: list[int] = []
    real = engine.kept_clusters.load

    def counted(*args: Any) -> Any:
        found = real(*args)
        if found is not None:
            counts[-1] += 1
        return found

    def preview(*args: Any, **kwargs: Any) -> Any:
        counts.append(0)
        return real_preview(*args, **kwargs)

    real_preview = engine.run_preview
    monkeypatch.setattr(engine.kept_clusters, "load", counted)
    monkeypatch.setattr(engine, "run_preview", preview)
    return counts


@pytest.mark.parametrize("change", sorted(_PROVEN))
def test_fleet_changes_report_from_a_warm_base_as_without_carrying_renders(
    fleet: _Fleet,
    warm_base: Path,
    change: str,
    tmp_path: Path,
    kustomize_bin: Path,
    helm_bin: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The head's renders carried from the base, and the base's memos, change nothing."""
    tools = (kustomize_bin, helm_bin)
    head = fleet.branches[change]
    config = ("--config", str(fleet.operator))
    cache = tmp_path / "warm"
    shutil.copytree(warm_base, cache)
    kept = _count_kept(monkeypatch)
    warm = _report(fleet.made.repo, fleetgen.BASE_BRANCH, head, cache, tools, *config)
    assert kept == [3]  # the base's three clusters were read as discovered, not discovered

    monkeypatch.setattr(engine, "_carry", lambda *args: None)
    plain = _report(fleet.made.repo, fleetgen.BASE_BRANCH, head, tmp_path / "cold", tools, *config)

    assert warm == plain
    assert json.loads(plain)["changed"] is True


def test_the_example_reports_from_a_warm_base_as_without_carrying_renders(
    tmp_path: Path, kustomize_bin: Path, helm_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "example"
    demo.build_example_repo(repo)
    tools = (kustomize_bin, helm_bin)
    _report(repo, "main", "main", tmp_path / "warm", tools)
    kept = _count_kept(monkeypatch)
    warm = _report(repo, "main", "pull-request", tmp_path / "warm", tools)
    assert kept[0] > 0

    monkeypatch.setattr(engine, "_carry", lambda *args: None)
    plain = _report(repo, "main", "pull-request", tmp_path / "cold", tools)

    assert warm == plain
    assert json.loads(plain)["summary"]["update"] > 0


def test_the_example_reports_as_a_full_render_does(
    tmp_path: Path, kustomize_bin: Path, helm_bin: Path
) -> None:
    repo = tmp_path / "example"
    demo.build_example_repo(repo)
    tools = (kustomize_bin, helm_bin)
    full = _report(repo, "main", "pull-request", tmp_path / "full", tools)
    changed = _report(repo, "main", "pull-request", tmp_path / "cold", tools, "--changed-only")
    _same_but_count(full, changed)
    assert json.loads(full)["summary"]["update"] > 0


# ---------------------------------------------------------------------------------------------
# What the walk cannot prove: targeted repositories, through the engine


@dataclass
class _Run:
    full: str
    changed: str
    proven: int
    rendered: list[str]
    said: list[str]


def _both(
    repo: Path, base: str, head: str, tmp: Path, tools: tuple[Path, Path], **extra: object
) -> _Run:
    """Preview in full and changed-only, each with an empty cache."""
    reports = []
    rendered: list[str] = []
    said: list[str] = []
    for changed_only in (False, True):
        cache = tmp / f"cache-{changed_only}"
        options = RenderOptions(
            kustomize=tools[0],
            helm=tools[1],
            fetch_policy=FetchPolicy(allowed_hosts=None),
            **extra,  # type: ignore[arg-type]
        )
        settings = RenderSettings(options, RenderCache(cache))
        request = engine.PreviewRequest(base=base, head=head, changed_only=changed_only)
        with Repository(repo) as git_repo:
            result = engine.run_preview(git_repo, request, settings, progress=said.append)
        reports.append(jsonout.dumps(result))
        if changed_only:
            rendered = settings.observer.rendered
            proven = result.proven_unchanged
    assert proven is not None
    _same_but_count(reports[0], reports[1])
    return _Run(reports[0], reports[1], proven, rendered, said)


def _small_repo(root: Path) -> tuple[Path, str]:
    """Three app units: two with kustomization files, one a plain directory Flux generates for."""
    return new_repo(
        root,
        {
            **flux_cluster("production"),
            f"{PROD}/vars.yaml": configmap("vars", "flux-system", tier="prod"),
            f"{PROD}/apps.yaml": "---\n".join(
                [
                    kustomization("web", "./apps/web"),
                    kustomization(
                        "api",
                        "./apps/api",
                        extra="postBuild: {substituteFrom: [{kind: ConfigMap, name: vars}]}",
                    ),
                    kustomization("jobs", "./apps/jobs"),
                ]
            ),
            "apps/web/kustomization.yaml": "resources: [settings.yaml]\n",
            "apps/web/settings.yaml": configmap("web", "apps", size="1"),
            "apps/api/kustomization.yaml": "resources: [settings.yaml]\n",
            "apps/api/settings.yaml": configmap("api", "apps", tier="${tier}"),
            "apps/jobs/settings.yaml": configmap("jobs", "apps", every="1h"),
        },
    )


def _rendered(run: _Run, name: str) -> int:
    return sum(unit == f"Kustomization/flux-system/{name}" for unit in run.rendered)


@pytest.fixture
def tools(kustomize_bin: Path, helm_bin: Path) -> tuple[Path, Path]:
    return (kustomize_bin, helm_bin)


def test_only_the_edited_unit_is_rendered(tmp_path: Path, tools: tuple[Path, Path]) -> None:
    repo, base = _small_repo(tmp_path / "repo")
    head = commit(repo, {"apps/web/settings.yaml": configmap("web", "apps", size="2")}, "grow")

    run = _both(repo, base, head, tmp_path, tools)

    assert run.proven == 2
    assert (_rendered(run, "web"), _rendered(run, "api"), _rendered(run, "jobs")) == (2, 0, 0)
    assert '"action": "update"' in run.full


def test_a_file_added_where_flux_generates_the_kustomization_is_rendered(
    tmp_path: Path, tools: tuple[Path, Path]
) -> None:
    repo, base = _small_repo(tmp_path / "repo")
    # The ConfigMap moves to a new file: the generated kustomization lists it instead.
    head = commit(
        repo,
        {
            "apps/jobs/settings.yaml": None,
            "apps/jobs/a.yaml": configmap("jobs", "apps", every="2h"),
        },
        "rename a file",
    )

    run = _both(repo, base, head, tmp_path, tools)

    assert run.proven == 2
    assert _rendered(run, "jobs") == 2
    assert '"action": "update"' in run.full


def test_an_edited_substitution_source_renders_its_readers(
    tmp_path: Path, tools: tuple[Path, Path]
) -> None:
    repo, base = _small_repo(tmp_path / "repo")
    head = commit(repo, {f"{PROD}/vars.yaml": configmap("vars", "flux-system", tier="p")}, "vars")

    run = _both(repo, base, head, tmp_path, tools)

    assert run.proven == 2
    assert _rendered(run, "api") == 2


def test_an_object_another_unchanged_unit_renders_makes_the_cluster_render_in_full(
    tmp_path: Path, tools: tuple[Path, Path]
) -> None:
    repo, base = _small_repo(tmp_path / "repo")
    head = commit(
        repo,
        {
            "apps/web/kustomization.yaml": "resources: [settings.yaml, copy.yaml]\n",
            "apps/web/copy.yaml": configmap("api", "apps", tier="copied"),
        },
        "web also renders api's ConfigMap",
    )

    run = _both(repo, base, head, tmp_path, tools)

    assert run.proven == 0
    assert any("objects appear or disappear" in line for line in run.said), run.said
    assert "is rendered by more than one unit at head" in run.full


def test_a_lookup_that_finds_nothing_makes_the_cluster_render_in_full(
    tmp_path: Path, tools: tuple[Path, Path]
) -> None:
    repo, base = _small_repo(tmp_path / "repo")
    optional = "postBuild: {substituteFrom: [{kind: ConfigMap, name: extra, optional: true}]}"
    apps = (repo / f"{PROD}/apps.yaml").read_text()
    base = commit(
        repo,
        {
            f"{PROD}/apps.yaml": apps
            + "---\n"
            + kustomization("extra", "./apps/web", extra=optional)
        },
        "a unit whose optional substitution source no unit renders",
    )
    head = commit(repo, {"apps/api/settings.yaml": configmap("api", "apps", tier="x")}, "edit")

    run = _both(repo, base, head, tmp_path, tools)

    assert run.proven == 0
    assert any("a lookup at base found nothing" in line for line in run.said), run.said


def test_a_changed_source_makes_the_cluster_render_in_full(
    tmp_path: Path, tools: tuple[Path, Path]
) -> None:
    repo, base = _small_repo(tmp_path / "repo")
    sync = (repo / f"{PROD}/flux-system/gotk-sync.yaml").read_text()
    ignored = sync.replace("ref: {branch: main}}", "ref: {branch: main}, ignore: /apps/jobs/}")
    assert ignored != sync
    head = commit(repo, {f"{PROD}/flux-system/gotk-sync.yaml": ignored}, "ignore the jobs")

    run = _both(repo, base, head, tmp_path, tools)

    assert run.proven == 0
    assert any("proven unchanged at one side only" in line for line in run.said), run.said
    assert "jobs" in run.full


def test_a_crd_that_changes_scope_makes_the_cluster_render_in_full(
    tmp_path: Path, tools: tuple[Path, Path]
) -> None:
    repo, base = _small_repo(tmp_path / "repo")

    def crd(scope: str) -> str:
        return (
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
            "metadata: {name: widgets.example.com}\n"
            "spec:\n  group: example.com\n"
            "  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}\n"
            f"  scope: {scope}\n"
            "  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema:"
            " {type: object, x-kubernetes-preserve-unknown-fields: true}}}]\n"
        )

    base = commit(
        repo,
        {
            "apps/web/kustomization.yaml": "resources: [settings.yaml, crd.yaml]\n",
            "apps/web/crd.yaml": crd("Namespaced"),
        },
        "web defines a CRD",
    )
    head = commit(repo, {"apps/web/crd.yaml": crd("Cluster")}, "make it cluster-scoped")

    run = _both(repo, base, head, tmp_path, tools)

    assert run.proven == 0
    assert any("the CRDs differ" in line for line in run.said), run.said


@pytest.mark.parametrize("path", [".sourceignore", "apps/.sourceignore", ".tidegate.yaml"])
def test_changed_ignore_rules_or_settings_turn_the_selection_off(
    tmp_path: Path, tools: tuple[Path, Path], path: str
) -> None:
    repo, base = _small_repo(tmp_path / "repo")
    content = "fetch: {}\n" if path.endswith(".yaml") else "# nothing ignored\n"
    head = commit(repo, {path: content}, "settings")

    run = _both(repo, base, head, tmp_path, tools)

    assert run.proven == 0
    assert any(f"changed-only: off ({path} changed)" in line for line in run.said), run.said


def test_allowed_remote_bases_turn_the_selection_off(
    tmp_path: Path, tools: tuple[Path, Path]
) -> None:
    repo, base = _small_repo(tmp_path / "repo")
    head = commit(repo, {"apps/web/settings.yaml": configmap("web", "apps", size="2")}, "grow")

    run = _both(repo, base, head, tmp_path, tools, allowed_remotes=("https://github.com/acme/",))

    assert run.proven == 0
    assert any("remote bases are allowed" in line for line in run.said), run.said


def test_a_unit_that_defines_flux_objects_is_rendered(
    tmp_path: Path, tools: tuple[Path, Path]
) -> None:
    repo, base = _small_repo(tmp_path / "repo")
    base = commit(
        repo,
        {
            "apps/jobs/nested.yaml": kustomization("nested", "./apps/nested"),
            "apps/nested/settings.yaml": configmap("nested", "apps", a="1"),
        },
        "jobs defines a unit of its own",
    )
    head = commit(repo, {"apps/api/settings.yaml": configmap("api", "apps", tier="x")}, "edit")

    run = _both(repo, base, head, tmp_path, tools)

    # jobs is unaffected but its objects are a unit: it is rendered once and shared by both sides.
    assert _rendered(run, "jobs") == 1
    assert run.proven == 2  # web and nested


def test_a_unit_removed_by_its_parent_alone_makes_the_cluster_render_in_full(
    tmp_path: Path, tools: tuple[Path, Path]
) -> None:
    repo, base = _small_repo(tmp_path / "repo")
    base = commit(
        repo,
        {
            f"{PROD}/kustomization.yaml": "resources: [flux-system, vars.yaml, apps.yaml]\n",
        },
        "list the entry point's files",
    )
    head = commit(
        repo,
        {
            f"{PROD}/kustomization.yaml": (
                "resources: [flux-system, vars.yaml, apps.yaml]\n"
                "patches:\n- target: {kind: Kustomization, name: jobs}\n"
                "  patch: |\n    $patch: delete\n    apiVersion: kustomize.toolkit.fluxcd.io/v1\n"
                "    kind: Kustomization\n    metadata: {name: jobs}\n"
            )
        },
        "drop jobs by a patch: its defining file does not change",
    )

    run = _both(repo, base, head, tmp_path, tools)

    assert any("proven unchanged at one side only" in line for line in run.said), run.said
    assert '"status": "removed"' in run.full


def test_bulk_blob_reads_match_single_reads_and_recover_from_a_bad_id(tmp_path: Path) -> None:
    repo, _ = _small_repo(tmp_path / "repo")
    with Repository(repo) as git_repo:
        tree = git_repo.tree("main")
        ids = [tree[path] for path in sorted(tree)]
        found = git_repo.read_blobs(ids, max_bytes=1 << 20)
        assert found == {blob: git_repo.read_blob(blob) for blob in ids}
        with pytest.raises(GitError):
            git_repo.read_blobs([ids[0], "0" * 40, ids[1]], max_bytes=1 << 20)
        assert git_repo.read_blob(ids[1]) == found[ids[1]]


# ---------------------------------------------------------------------------------------------
# The warm path: footprints kept in the render cache, base cache hits reused at the head


def _changed_only(repo: Path, base: str, head: str, cache: Path, tools: tuple[Path, Path]) -> str:
    settings = RenderSettings(
        RenderOptions(
            kustomize=tools[0], helm=tools[1], fetch_policy=FetchPolicy(allowed_hosts=None)
        ),
        RenderCache(cache),
    )
    request = engine.PreviewRequest(base=base, head=head, changed_only=True)
    with Repository(repo) as git_repo:
        return jsonout.dumps(engine.run_preview(git_repo, request, settings))


@pytest.fixture
def walks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the units whose inputs were walked (the walk is our own seam)."""
    seen: list[str] = []
    walk = affected.Selection._walk

    def counted(self: affected.Selection, spec: KustomizationSpec, source: FileView) -> object:
        seen.append(spec.path)
        return walk(self, spec, source)

    monkeypatch.setattr(affected.Selection, "_walk", counted)
    return seen


def test_a_second_preview_proves_from_the_cache_without_walking(
    tmp_path: Path, tools: tuple[Path, Path], walks: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bulk: list[int] = []
    read_blobs = Repository.read_blobs

    def counted(self: Repository, blob_ids: object, *, max_bytes: int) -> dict[str, bytes]:
        bulk.append(max_bytes)
        return read_blobs(self, blob_ids, max_bytes=max_bytes)  # type: ignore[arg-type]

    monkeypatch.setattr(Repository, "read_blobs", counted)
    repo, base = _small_repo(tmp_path / "repo")
    head = commit(repo, {"apps/web/settings.yaml": configmap("web", "apps", size="2")}, "grow")
    first = _changed_only(repo, base, head, tmp_path / "cache", tools)
    # Every unit of this repository is walked once: the root and web are then rendered.
    assert sorted(walks) == ["./apps/api", "./apps/jobs", "./apps/web", "clusters/production"]
    assert len(bulk) == 1  # the base's files, read in bulk for the walks
    walks.clear()
    bulk.clear()

    second = _changed_only(repo, base, head, tmp_path / "cache", tools)

    assert walks == []
    assert bulk == []  # nothing to walk, so nothing read in bulk
    assert second == first


def test_a_kept_footprint_is_not_used_once_a_path_it_consulted_changes(
    tmp_path: Path, tools: tuple[Path, Path], walks: list[str]
) -> None:
    repo, base = _small_repo(tmp_path / "repo")
    head = commit(repo, {"apps/web/settings.yaml": configmap("web", "apps", size="2")}, "grow")
    _changed_only(repo, base, head, tmp_path / "cache", tools)
    # A new base: a file appears in the directory Flux generates the jobs kustomization for.
    git(repo, "checkout", "--quiet", base)
    new_base = commit(repo, {"apps/jobs/later.yaml": configmap("later", "apps", a="1")}, "more")
    new_head = commit(repo, {"apps/web/settings.yaml": configmap("web", "apps", size="3")}, "web")
    walks.clear()

    _changed_only(repo, new_base, new_head, tmp_path / "cache", tools)

    assert walks == ["./apps/jobs"]  # api's footprint still holds; jobs' does not


def test_a_warm_cache_gives_the_same_report(tmp_path: Path, tools: tuple[Path, Path]) -> None:
    repo, base = _small_repo(tmp_path / "repo")
    head = commit(repo, {"apps/api/settings.yaml": configmap("api", "apps", tier="${tier}-x")}, "x")
    # Warm the cache with every unit rendered, as a full preview of an earlier change leaves it.
    run = _both(repo, base, base, tmp_path, tools)
    warm = tmp_path / "cache-False"

    report = _changed_only(repo, base, head, warm, tools)

    cold = _changed_only(repo, base, head, tmp_path / "cold", tools)
    assert json.loads(report)["provenUnchanged"] == 0  # every unit came from the cache
    assert json.loads(cold)["provenUnchanged"] == 2
    assert report.replace('"provenUnchanged": 0', "") == cold.replace('"provenUnchanged": 2', "")
    assert run.proven == 3


# ---------------------------------------------------------------------------------------------
# Why changed-only is not the default (docs/preview.md, "Why it is opt-in")


def _preview_code(repo: Path, head: str, tmp: Path, tools: tuple[Path, Path], *extra: str) -> int:
    output = tmp / f"report{len(extra)}.json"
    return cli_main.main(
        [
            "preview",
            *("--repo", str(repo), "--base", "main", "--head", head, "--format", "json"),
            *("--output", str(output), "--cache-dir", str(tmp / f"cache{len(extra)}")),
            *("--kustomize", str(tools[0]), "--helm", str(tools[1]), "--no-policies"),
            *extra,
        ]
    )


def _status(report: Path, name: str) -> tuple[str, str | None]:
    for cluster in json.loads(report.read_text())["clusters"]:
        for unit in cluster["units"]:
            if unit["name"] == name:
                return unit["status"], unit["error"]
    raise AssertionError(f"no unit {name}")


def test_a_unit_broken_at_both_sides_fails_a_full_preview_and_not_a_changed_only_one(
    tmp_path: Path, tools: tuple[Path, Path]
) -> None:
    repo, _ = _small_repo(tmp_path / "repo")
    # A unit the change does not touch, broken before it: kustomize cannot parse its resource.
    commit(
        repo,
        {
            f"{PROD}/broken.yaml": kustomization("broken", "./apps/broken"),
            "apps/broken/kustomization.yaml": "resources: [settings.yaml]\n",
            "apps/broken/settings.yaml": "kind: ConfigMap\nmetadata: [unclosed\n",
        },
        "a broken unit",
    )
    git(repo, "checkout", "--quiet", "-b", "change")
    head = commit(repo, {"apps/web/settings.yaml": configmap("web", "apps", size="2")}, "grow")

    full = _preview_code(repo, head, tmp_path, tools)
    changed = _preview_code(repo, head, tmp_path, tools, "--changed-only")

    # In full, the fleet's existing failure fails every preview (exit 2) until it is fixed.
    assert full == 2
    status, error = _status(tmp_path / "report0.json", "broken")
    assert status == "failed"
    assert error is not None
    # Changed-only proves the broken unit unchanged and reports only what the change does.
    assert changed == 1
    assert _status(tmp_path / "report1.json", "broken") == ("unchanged", None)
