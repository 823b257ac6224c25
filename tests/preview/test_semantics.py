"""Flux semantics of `tidegate preview` on small real repositories.

Covers: cascade of a removed parent Kustomization into nested ones, a directory rename read as
moves, fail-closed on a render failure (no deletes, exit 2, the file named) and on a failed
parent (its children and grandchildren withheld, nothing deleted or orphaned), invalid input with
clear messages (missing path, unknown source, duplicate unit, `dependsOn` cycle), `--source`, and
the incremental cache (an unrelated unit is not re-rendered).
"""

from __future__ import annotations

from pathlib import Path

from core import preview as engine
from core.changes import Preview
from core.render.cache import RenderCache
from core.render.unit import RenderOptions, RenderSettings
from core.repo.git import Repository
from tests.preview.conftest import Preview as RunPreview
from tests.preview.gitrepo import (
    Files,
    commit,
    configmap,
    flux_cluster,
    kustomization,
    new_repo,
)

PROD = "clusters/production"


def _fleet(tmp_path: Path, extra: Files | None = None) -> tuple[Path, str]:
    """A cluster with two app Kustomizations, one of which manages a nested one."""
    return new_repo(
        tmp_path / "repo",
        {
            **(extra or {}),
            **flux_cluster(),
            f"{PROD}/apps.yaml": kustomization("apps", "./apps"),
            f"{PROD}/web.yaml": kustomization("web", "./web"),
            "apps/kustomization.yaml": "resources: [settings.yaml, nested.yaml]\n",
            "apps/settings.yaml": configmap("settings", "apps", mode="fast"),
            "apps/nested.yaml": kustomization("nested", "./nested"),
            "nested/config.yaml": configmap("nested-config", "apps", level="two"),
            "web/config.yaml": configmap("web-config", "web", color="blue"),
        },
    )


def test_removed_parent_cascades_into_nested_kustomizations(
    tmp_path: Path, preview: RunPreview
) -> None:
    repo, base = _fleet(tmp_path)
    head = commit(repo, {f"{PROD}/apps.yaml": None}, "remove apps")

    outcome = preview(repo, base, head)

    # Removing a pruning Kustomization garbage-collects its inventory: the gate asks for approval.
    assert outcome.code == 3
    assert [(f["rule"], f["name"]) for f in outcome.data["findings"]] == [("GP004", "apps")]
    assert outcome.unit(PROD, "apps")["status"] == "removed"
    assert outcome.unit(PROD, "nested")["status"] == "removed"
    changes = outcome.changes()
    assert (PROD, "apps", "delete", "ConfigMap", "apps/settings") in changes
    assert (PROD, "nested", "delete", "ConfigMap", "apps/nested-config") in changes
    assert all(c[1] != "web" for c in changes)


def test_render_failure_is_withheld_not_a_mass_delete(tmp_path: Path, preview: RunPreview) -> None:
    repo, base = _fleet(tmp_path)
    head = commit(repo, {"web/config.yaml": "kind: ConfigMap\nmetadata: [broken\n"}, "break web")

    outcome = preview(repo, base, head)

    assert outcome.code == 2
    web = outcome.unit(PROD, "web")
    assert web["status"] == "failed"
    assert "web/config.yaml" in web["error"]
    assert web["changes"] == []
    assert not [c for c in outcome.changes() if c[2] == "delete"]


def test_failed_parent_withholds_its_children_and_grandchildren(
    tmp_path: Path, preview: RunPreview
) -> None:
    repo, base = _fleet(
        tmp_path,
        {
            "nested/deeper.yaml": kustomization("deeper", "./deeper"),
            "deeper/config.yaml": configmap("deeper-config", "apps", level="three"),
        },
    )
    head = commit(repo, {"apps/kustomization.yaml": "resources: [missing.yaml]\n"}, "break apps")

    outcome = preview(repo, base, head)

    assert outcome.code == 2
    apps, nested, deeper = (outcome.unit(PROD, name) for name in ("apps", "nested", "deeper"))
    assert apps["status"] == "failed"
    assert "missing.yaml" in apps["error"]
    assert nested["status"] == "failed"
    assert nested["error"] == "unknown because its parent Kustomization/flux-system/apps failed"
    assert deeper["status"] == "failed"
    assert deeper["error"] == nested["error"], "the root cause is passed down, not re-guessed"
    assert all(unit["changes"] == [] for unit in (apps, nested, deeper))
    assert outcome.unit(PROD, "web")["status"] == "unchanged"
    assert outcome.changes() == []


def test_duplicate_unit_is_a_cluster_error_naming_both_definitions(
    tmp_path: Path, preview: RunPreview
) -> None:
    repo, base = _fleet(tmp_path)
    head = commit(
        repo,
        {
            "apps/kustomization.yaml": "resources: [settings.yaml, nested.yaml, web-again.yaml]\n",
            "apps/web-again.yaml": kustomization("web", "./elsewhere"),
        },
        "define web twice",
    )

    outcome = preview(repo, base, head)

    assert outcome.code == 2
    (production,) = outcome.data["clusters"]
    assert production["errors"] == [
        "Kustomization/flux-system/web is rendered by more than one unit at head:"
        " Kustomization/flux-system/apps, Kustomization/flux-system/flux-system"
    ]


def test_directory_rename_reads_as_moves(tmp_path: Path, preview: RunPreview) -> None:
    repo, base = _fleet(tmp_path)
    head = commit(
        repo,
        {
            f"{PROD}/web.yaml": None,
            "web/config.yaml": None,
            f"{PROD}/frontend.yaml": kustomization("frontend", "./frontend"),
            "frontend/config.yaml": configmap("web-config", "web", color="blue"),
        },
        "rename web to frontend",
    )

    outcome = preview(repo, base, head)

    changes = outcome.changes()
    assert (PROD, "frontend", "move", "ConfigMap", "web/web-config") in changes
    # The old Flux object itself is pruned: its finalizer is the delete-and-recreate risk.
    deletes = [c for c in changes if c[2] == "delete"]
    assert deletes == [(PROD, "flux-system", "delete", "Kustomization", "flux-system/web")]


def test_missing_path_names_the_kustomization_and_file(tmp_path: Path, preview: RunPreview) -> None:
    repo, base = _fleet(tmp_path)
    head = commit(repo, {f"{PROD}/web.yaml": kustomization("web", "./no-such-dir")}, "typo")

    outcome = preview(repo, base, head)

    assert outcome.code == 2
    error = outcome.unit(PROD, "web")["error"]
    assert "no-such-dir" in error
    assert f"{PROD}/web.yaml" in error


def test_depends_on_cycle_is_an_error_naming_both(tmp_path: Path, preview: RunPreview) -> None:
    repo, base = _fleet(tmp_path)
    head = commit(
        repo,
        {
            f"{PROD}/apps.yaml": kustomization("apps", "./apps", extra="dependsOn: [{name: web}]"),
            f"{PROD}/web.yaml": kustomization("web", "./web", extra="dependsOn: [{name: apps}]"),
        },
        "deadlock",
    )

    outcome = preview(repo, base, head)

    assert outcome.code == 2
    errors = " ".join(
        c.get("errors", []) and " ".join(c["errors"]) for c in outcome.data["clusters"]
    )
    assert "cycle" in errors
    assert "flux-system/apps" in errors
    assert "flux-system/web" in errors


def test_unknown_source_fails_clearly_and_source_flag_resolves_it(
    tmp_path: Path, preview: RunPreview
) -> None:
    other = tmp_path / "other-source"
    (other / "deploy").mkdir(parents=True)
    (other / "deploy" / "config.yaml").write_text(configmap("vendor-config", "vendor", tier="gold"))
    repo, base = _fleet(tmp_path)
    head = commit(
        repo,
        {
            f"{PROD}/vendor.yaml": kustomization("vendor", "./deploy").replace(
                "{kind: GitRepository, name: flux-system}", "{kind: GitRepository, name: vendor}"
            )
        },
        "add vendor",
    )

    unresolved = preview(repo, base, head)
    resolved = preview(repo, base, head, "--source", f"GitRepository/flux-system/vendor={other}")

    assert unresolved.code == 2
    error = unresolved.unit(PROD, "vendor")["error"]
    assert "GitRepository flux-system/vendor is not defined in this repository" in error
    assert unresolved.unit(PROD, "vendor")["reason"] == "dependency"
    assert resolved.code == 1
    assert (PROD, "vendor", "create", "ConfigMap", "vendor/vendor-config") in resolved.changes()


def test_one_file_change_rerenders_only_its_unit(
    tmp_path: Path, kustomize_bin: Path, helm_bin: Path
) -> None:
    repo_dir, base = _fleet(tmp_path)
    head = commit(
        repo_dir, {"web/config.yaml": configmap("web-config", "web", color="green")}, "green"
    )
    cache = RenderCache(tmp_path / "cache")

    def run(base_ref: str, head_ref: str) -> tuple[list[str], Preview]:
        settings = RenderSettings(RenderOptions(kustomize_bin, helm_bin, jobs=1), cache)
        with Repository(repo_dir) as repo:
            result = engine.run_preview(repo, engine.PreviewRequest(base_ref, head_ref), settings)
        return sorted(settings.observer.rendered), result

    cold, _ = run(base, base)
    warm, result = run(base, head)

    assert cold == [
        "Kustomization/flux-system/apps",
        "Kustomization/flux-system/flux-system",
        "Kustomization/flux-system/nested",
        "Kustomization/flux-system/web",
    ]
    assert warm == ["Kustomization/flux-system/web"]
    changed = [
        (c.action.value, str(c.ref)) for cl in result.clusters for u in cl.units for c in u.changes
    ]
    assert changed == [("update", "ConfigMap/web/web-config")]


def test_a_first_file_beside_the_bootstrap_directory_misses_the_cache(
    tmp_path: Path, preview: RunPreview
) -> None:
    # A fresh `flux bootstrap` leaves only flux-system/ in the cluster directory: its generated
    # kustomization reads no file there, yet a file added there must be seen.
    repo, base = new_repo(tmp_path / "repo", flux_cluster())
    head = commit(repo, {f"{PROD}/settings.yaml": configmap("settings", "apps", a="1")}, "add")

    assert preview(repo, base, base).code == 0
    out = preview(repo, base, head)

    assert out.code == 1, out.report
    assert out.changes() == [(PROD, "flux-system", "create", "ConfigMap", "apps/settings")]


def test_substitution_follows_the_flux_strategy(
    tmp_path: Path, preview: RunPreview, kustomize_bin: Path, helm_bin: Path
) -> None:
    optional = "postBuild: {substituteFrom: [{kind: ConfigMap, name: absent, optional: true}]}"
    always = "postBuild: {substituteStrategy: Always}"
    repo, base = new_repo(
        tmp_path / "repo",
        {
            **flux_cluster(),
            f"{PROD}/plain.yaml": kustomization("plain", "./plain", extra=optional),
            f"{PROD}/always.yaml": kustomization("always", "./always", extra=always),
            "plain/config.yaml": configmap("plain", "apps", value="${tier:=gold}"),
            "always/config.yaml": configmap("always", "apps", value="${tier:=gold}"),
        },
    )

    outcome = preview(repo, base, base)
    strict = preview(
        repo,
        base,
        commit(repo, {"always/config.yaml": configmap("always", "apps", value="${tier}")}, "x"),
    )

    assert outcome.code == 0
    with Repository(repo) as git_repo:
        cache = RenderCache(tmp_path / "cache2")
        settings = RenderSettings(RenderOptions(kustomize_bin, helm_bin), cache)
        renders = engine.render_revision(git_repo, git_repo.tree(base), [PROD], settings)
    units = {ref.name: unit for ref, unit in renders[PROD].units.items()}
    plain = next(iter((units["plain"].objects or {}).values()))
    always_cm = next(iter((units["always"].objects or {}).values()))
    assert plain.body["data"]["value"] == "${tier:=gold}", "no variable resolved: no substitution"
    assert always_cm.body["data"]["value"] == "gold"
    assert strict.code == 2
    assert "tier" in strict.unit(PROD, "always")["error"]
