"""`tidegate preview` on hostile repositories, with the pinned kustomize and helm.

Each case asserts the exit code, that the message names the cause (and the flag that raises a
budget), and, where a Secret value is involved, that the canary appears in none of the JSON
report, the Markdown report, stderr or the render cache.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.plan import plan as planning
from core.render import kustomize as kustomize_renderer
from tests.preview.conftest import Outcome
from tests.preview.conftest import Preview as RunPreview
from tests.preview.gitrepo import Files, commit, configmap, flux_cluster, kustomization, new_repo

PROD = "clusters/production"
CANARY = "canary-7f3a9c1e"


def _fleet(tmp_path: Path, extra: Files | None = None) -> tuple[Path, str]:
    return new_repo(
        tmp_path / "repo",
        {
            **flux_cluster(),
            f"{PROD}/apps.yaml": kustomization("apps", "./apps"),
            "apps/config.yaml": configmap("settings", "default", mode="fast"),
            **(extra or {}),
        },
    )


def _both(preview: RunPreview, repo: Path, base: str, head: str, *extra: str) -> list[Outcome]:
    """Run the preview in both formats (JSON first, so `outcomes[0].data` works)."""
    return [preview(repo, base, head, *extra, fmt=fmt) for fmt in ("json", "markdown")]


def _failed_errors(outcome: Outcome) -> list[str]:
    return [
        unit["error"]
        for cluster in outcome.data["clusters"]
        for unit in cluster["units"]
        if unit["status"] == "failed"
    ]


def _assert_nowhere(text: str, outcomes: list[Outcome], cache: Path) -> None:
    for outcome in outcomes:
        assert text not in outcome.report
        assert text not in outcome.stderr
    for path in cache.rglob("*"):
        if path.is_file():
            assert text.encode() not in path.read_bytes(), path


def _helm_release(name: str, chart: str, values: str = "{}") -> str:
    return (
        "apiVersion: helm.toolkit.fluxcd.io/v2\n"
        "kind: HelmRelease\n"
        f"metadata: {{name: {name}, namespace: flux-system}}\n"
        "spec:\n"
        "  interval: 1h\n"
        "  targetNamespace: default\n"
        f"  releaseName: {name}\n"
        "  chart:\n"
        "    spec:\n"
        f"      chart: {chart}\n"
        "      sourceRef: {kind: GitRepository, name: flux-system}\n"
        f"  values: {values}\n"
    )


def _chart(name: str, template: str) -> Files:
    return {
        f"charts/{name}/Chart.yaml": f"apiVersion: v2\nname: {name}\nversion: 0.1.0\n",
        f"charts/{name}/templates/all.yaml": template,
    }


def _release_files(name: str, template: str) -> Files:
    return {
        f"{PROD}/{name}.yaml": _helm_release(name, f"./charts/{name}"),
        **_chart(name, template),
    }


# --- self-replication, depth and unit budgets ----------------------------------------------------


def test_a_kustomization_rendering_a_copy_of_itself_fails_and_ends(
    tmp_path: Path, preview: RunPreview
) -> None:
    repo, base = _fleet(tmp_path)
    head = commit(
        repo,
        {
            "apps/kustomization.yaml": "resources: [config.yaml, self.yaml]\nnamePrefix: x-\n",
            "apps/self.yaml": kustomization("apps", "./apps"),
        },
        "replicate",
    )

    outcome = preview(repo, base, head)

    assert outcome.code == 2
    copy = outcome.unit(PROD, "x-apps")
    assert copy["status"] == "failed"
    assert "its ancestor Kustomization/flux-system/apps already renders" in copy["error"]
    assert "renders a copy of itself" in copy["error"]
    assert copy["reason"] == "input"


def test_units_nested_deeper_than_the_budget_fail_naming_the_flag(
    tmp_path: Path, preview: RunPreview
) -> None:
    repo, base = _fleet(tmp_path)
    head = commit(
        repo,
        {
            "apps/kustomization.yaml": "resources: [config.yaml, level2.yaml]\n",
            "apps/level2.yaml": kustomization("level2", "./level2"),
            "level2/kustomization.yaml": "resources: [level3.yaml]\n",
            "level2/level3.yaml": kustomization("level3", "./level3"),
            "level3/config.yaml": configmap("deep", "default", level="3"),
        },
        "nest",
    )

    outcome = preview(repo, base, head, "--max-depth", "2")

    assert outcome.code == 2
    assert outcome.unit(PROD, "level2")["status"] == "added"
    error = outcome.unit(PROD, "level3")["error"]
    assert "nested 3 levels below the cluster entry point" in error
    assert "--max-depth" in error
    assert outcome.unit(PROD, "level3")["reason"] == "budget"
    assert preview(repo, base, head, "--max-depth", "3").code == 1


def test_units_over_the_unit_budget_fail_naming_the_flag(
    tmp_path: Path, preview: RunPreview
) -> None:
    repo, base = _fleet(tmp_path)
    head = commit(
        repo,
        {
            f"{PROD}/web.yaml": kustomization("web", "./web"),
            "web/config.yaml": configmap("page", "default", color="blue"),
        },
        "add web",
    )

    outcome = preview(repo, base, head, "--max-units", "1")

    assert outcome.code == 2
    errors = _failed_errors(outcome)
    assert errors
    assert all("more than 1 Flux units" in e and "--max-units" in e for e in errors)


def test_the_whole_preview_has_one_deadline(tmp_path: Path, preview: RunPreview) -> None:
    repo, base = _fleet(tmp_path)
    head = commit(repo, {"apps/config.yaml": configmap("settings", "default", mode="slow")}, "x")

    outcome = preview(repo, base, head, "--timeout", "0.000001")

    assert outcome.code == 2
    errors = _failed_errors(outcome)
    assert errors
    assert all("ran out of its time budget" in e and "--timeout" in e for e in errors)


# --- deep, aliased and huge YAML -----------------------------------------------------------------


@pytest.mark.parametrize("levels", [300, 25_000])
def test_deeply_nested_yaml_in_the_repository_fails_its_unit(
    tmp_path: Path, preview: RunPreview, levels: int
) -> None:
    repo, base = _fleet(tmp_path)
    deep = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep, namespace: default}\n"
        f"data: {{x: y}}\nextra: {'[' * levels}{']' * levels}\n"
    )
    head = commit(repo, {"apps/deep.yaml": deep}, "deep")

    for outcome in _both(preview, repo, base, head):
        assert outcome.code == 2
        assert "Traceback" not in outcome.stderr
    error = outcome_error = _both(preview, repo, base, head)[0].unit(PROD, "apps")["error"]
    assert "apps/deep.yaml" in outcome_error
    assert "nested deeper than 100 levels" in error
    assert "--max-yaml-depth" in error


@pytest.mark.parametrize("levels", [300, 25_000])
def test_deeply_nested_yaml_rendered_by_a_chart_fails_its_unit(
    tmp_path: Path, preview: RunPreview, levels: int
) -> None:
    deep = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\n"
        f"data: {{x: y}}\nextra: {'[' * levels}{']' * levels}\n"
    )
    repo, base = _fleet(tmp_path)
    head = commit(
        repo,
        {f"{PROD}/deep.yaml": _helm_release("deep", "./charts/deep"), **_chart("deep", deep)},
        "deep chart",
    )

    outcome = preview(repo, base, head)

    assert outcome.code == 2
    assert "Traceback" not in outcome.stderr
    error = outcome.unit(PROD, "deep")["error"]
    assert "HelmRelease/flux-system/deep" in error
    assert "nested deeper than 100 levels" in error or "exceeded max depth" in error


def test_an_alias_explosion_fails_its_unit(tmp_path: Path, preview: RunPreview) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    repo, base = _fleet(tmp_path)
    head = commit(
        repo,
        {
            "apps/kustomization.yaml": "resources: [config.yaml]\n" + "\n".join(lines) + "\n",
        },
        "laughs",
    )

    outcome = preview(repo, base, head)

    assert outcome.code == 2
    error = outcome.unit(PROD, "apps")["error"]
    assert "aliases expand to more than 100000 nodes" in error
    assert "--max-yaml-alias-nodes" in error


def test_a_huge_yaml_file_fails_its_unit(tmp_path: Path, preview: RunPreview) -> None:
    repo, base = _fleet(tmp_path)
    huge = configmap("huge", "default", blob="x" * 300_000)
    head = commit(repo, {"apps/huge.yaml": huge}, "huge")

    outcome = preview(repo, base, head, "--max-yaml-bytes", "256K")

    assert outcome.code == 2
    error = outcome.unit(PROD, "apps")["error"]
    assert "apps/huge.yaml" in error
    assert "exceeds the YAML size budget of 256 KiB" in error.replace("0.2 MiB", "256 KiB") or (
        "exceeds the YAML size budget" in error
    )
    assert "--max-yaml-bytes" in error


# --- output bombs, reports and memory ------------------------------------------------------------

_BOMB = """\
{{- range $i := until 5000 }}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: bomb-{{ $i }}}
data: {blob: {{ repeat 2000 "x" | quote }}}
{{- end }}
"""


def test_a_tiny_chart_printing_megabytes_is_cut_off(tmp_path: Path, preview: RunPreview) -> None:
    repo, base = _fleet(tmp_path)
    head = commit(
        repo,
        {f"{PROD}/bomb.yaml": _helm_release("bomb", "./charts/bomb"), **_chart("bomb", _BOMB)},
        "b",
    )

    outcome = preview(repo, base, head, "--max-tool-output", "1M")

    assert outcome.code == 2
    error = outcome.unit(PROD, "bomb")["error"]
    assert "helm printed more than 1 MiB of output" in error
    assert "--max-tool-output" in error


def test_a_large_render_keeps_the_json_report_within_its_budget(
    tmp_path: Path, preview: RunPreview
) -> None:
    repo, base = _fleet(tmp_path)
    head = commit(
        repo,
        {f"{PROD}/bomb.yaml": _helm_release("bomb", "./charts/bomb"), **_chart("bomb", _BOMB)},
        "b",
    )

    outcome = preview(repo, base, head, "--max-report-bytes", "512K")

    assert outcome.code == 1
    assert len(outcome.report.encode()) <= 512 << 10
    truncated = outcome.data["truncated"]
    assert truncated["limitBytes"] == 512 << 10
    assert truncated["diffsOmitted"] > 0
    # 5000 ConfigMaps and the HelmRelease itself.
    assert outcome.data["summary"]["create"] == 5001


def test_kustomize_out_of_memory_reports_a_short_message(
    tmp_path: Path, preview: RunPreview
) -> None:
    # Each level includes the one below twice: 2^7 copies of a 4 MB ConfigMap.
    files: dict[str, str | None] = {
        f"{PROD}/apps.yaml": kustomization("apps", "./bomb/l7"),
        "bomb/l0/kustomization.yaml": "resources: [cm.yaml]\n",
        "bomb/l0/cm.yaml": configmap("c", "default", blob="v" * 4_000_000),
    }
    for level in range(1, 8):
        files[f"bomb/l{level}/kustomization.yaml"] = "resources: [a, b]\n"
        for side in "ab":
            files[f"bomb/l{level}/{side}/kustomization.yaml"] = (
                f"resources: [../../l{level - 1}]\nnamePrefix: {side}-\n"
            )
    repo, base = _fleet(tmp_path)
    head = commit(repo, files, "bomb")

    outcome = preview(repo, base, head, "--tool-memory", "1G")

    assert outcome.code == 2
    error = outcome.unit(PROD, "apps")["error"]
    assert "kustomize ran out of memory (limit 1 GiB" in error
    assert "--tool-memory" in error
    assert "goroutine" not in error


# --- Secret values -------------------------------------------------------------------------------


def test_a_secret_quoted_in_a_tool_error_is_scrubbed(tmp_path: Path, preview: RunPreview) -> None:
    repo, base = _fleet(tmp_path)
    head = commit(
        repo,
        {
            "apps/kustomization.yaml": """
                resources: [config.yaml, secret.yaml]
                replacements:
                - source: {kind: ConfigMap, name: settings, fieldPath: data.mode}
                  targets:
                  - select: {kind: Secret, name: creds}
                    fieldPaths: [stringData.password.deeper]
            """,
            "apps/secret.yaml": f"""
                apiVersion: v1
                kind: Secret
                metadata: {{name: creds, namespace: default}}
                stringData: {{password: {CANARY}}}
            """,
        },
        "quote a secret",
    )

    outcomes = _both(preview, repo, base, head)

    assert [o.code for o in outcomes] == [2, 2]
    error = outcomes[0].unit(PROD, "apps")["error"]
    assert "unable to find field" in error
    assert "node contents" in error
    _assert_nowhere(CANARY, outcomes, tmp_path / "cache")


def test_a_secret_from_a_generator_file_quoted_in_an_error_is_scrubbed(
    tmp_path: Path, preview: RunPreview
) -> None:
    repo, base = _fleet(tmp_path)
    head = commit(
        repo,
        {
            "apps/kustomization.yaml": """
                resources: [config.yaml]
                secretGenerator:
                - name: creds
                  namespace: default
                  files: [password=password.txt]
                replacements:
                - source: {kind: ConfigMap, name: settings, fieldPath: data.mode}
                  targets:
                  - select: {kind: Secret}
                    fieldPaths: [data.password.deeper]
            """,
            "apps/password.txt": CANARY,
        },
        "generated secret",
    )

    outcomes = _both(preview, repo, base, head)

    assert [o.code for o in outcomes] == [2, 2]
    # Builds that generate Secrets have their whole message withheld; either way, no value.
    assert "kustomize build failed" in outcomes[0].unit(PROD, "apps")["error"]
    _assert_nowhere(CANARY, outcomes, tmp_path / "cache")


_LIST = f"""\
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Secret
  metadata: {{name: wrapped}}
  stringData: {{token: {CANARY}}}
- apiVersion: v1
  kind: ConfigMapList
  items:
  - apiVersion: rbac.authorization.k8s.io/v1
    kind: ClusterRoleBinding
    metadata: {{name: sneaky-admin}}
    roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}}
    subjects: [{{kind: User, name: mallory, apiGroup: rbac.authorization.k8s.io}}]
"""


def test_lists_from_a_chart_are_applied_as_their_items_and_masked(
    tmp_path: Path, preview: RunPreview
) -> None:
    repo, base = _fleet(tmp_path)
    head = commit(
        repo,
        {f"{PROD}/list.yaml": _helm_release("list", "./charts/list"), **_chart("list", _LIST)},
        "l",
    )

    outcomes = _both(preview, repo, base, head)

    assert [o.code for o in outcomes] == [1, 1]
    changes = outcomes[0].changes()
    assert (PROD, "list", "create", "Secret", "default/wrapped") in changes
    assert (PROD, "list", "create", "ClusterRoleBinding", "/sneaky-admin") in changes
    assert not [c for c in changes if c[3].endswith("List")]
    _assert_nowhere(CANARY, outcomes, tmp_path / "cache")


def test_lists_nested_too_deep_fail_the_unit(tmp_path: Path, preview: RunPreview) -> None:
    nested = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: inner}\n"
    for _ in range(12):
        indented = "\n".join("    " + line for line in nested.strip().splitlines())
        nested = f"apiVersion: v1\nkind: List\nitems:\n  -\n{indented}\n"
    repo, base = _fleet(tmp_path)
    head = commit(
        repo,
        {f"{PROD}/list.yaml": _helm_release("list", "./charts/list"), **_chart("list", nested)},
        "l",
    )

    outcome = preview(repo, base, head)

    assert outcome.code == 2
    assert "Lists nested more than 10 levels deep" in outcome.unit(PROD, "list")["error"]


def test_a_secret_derived_name_fails_the_unit_instead_of_showing_a_token(
    tmp_path: Path, preview: RunPreview
) -> None:
    repo, base = _fleet(
        tmp_path,
        {
            f"{PROD}/vars.yaml": kustomization("vars", "./vars"),
            "vars/secret.yaml": f"""
                apiVersion: v1
                kind: Secret
                metadata: {{name: vars, namespace: flux-system}}
                stringData: {{NAME: {CANARY}}}
            """,
        },
    )
    head = commit(
        repo,
        {
            f"{PROD}/named.yaml": kustomization(
                "named",
                "./named",
                extra="""
                    dependsOn: [{name: vars}]
                    postBuild:
                      substituteFrom: [{kind: Secret, name: vars}]
                """,
            ),
            "named/config.yaml": """
                apiVersion: v1
                kind: ConfigMap
                metadata:
                  name: app-${NAME}
                  namespace: default
                data: {k: v}
            """,
        },
        "secret name",
    )

    outcomes = _both(preview, repo, base, head)

    assert [o.code for o in outcomes] == [2, 2]
    error = outcomes[0].unit(PROD, "named")["error"]
    assert "metadata.name is derived from a Secret value" in error
    for outcome in outcomes:
        assert "tidegate:masked" not in outcome.report + outcome.stderr
    _assert_nowhere(CANARY, outcomes, tmp_path / "cache")


# --- names, paths and entry points ---------------------------------------------------------------


def test_an_object_name_the_api_server_refuses_fails_the_unit(
    tmp_path: Path, preview: RunPreview
) -> None:
    repo, base = _fleet(tmp_path)
    head = commit(repo, {"apps/long.yaml": configmap("x" * 300, "default", k="v")}, "long")

    outcome = preview(repo, base, head)

    assert outcome.code == 2
    error = outcome.unit(PROD, "apps")["error"]
    assert "is 300 characters long; at most 253 are allowed" in error
    assert "apps/long.yaml" in error


def test_a_path_climbing_out_of_the_repository_fails_only_its_unit(
    tmp_path: Path, preview: RunPreview
) -> None:
    # Flux joins spec.path to the artifact root securely: `../../outside` is `outside`, which
    # does not exist here, so the unit fails and the rest of the preview goes on.
    repo, base = _fleet(tmp_path)
    head = commit(
        repo,
        {
            f"{PROD}/escape.yaml": kustomization("escape", "../../outside"),
            "apps/config.yaml": configmap("settings", "default", mode="slow"),
        },
        "escape",
    )

    outcome = preview(repo, base, head)

    assert outcome.code == 2
    assert "kustomization path not found: ../../outside" in outcome.unit(PROD, "escape")["error"]
    assert outcome.unit(PROD, "apps")["status"] == "rendered"
    assert (PROD, "apps", "update", "ConfigMap", "default/settings") in outcome.changes()


def test_a_path_without_flux_objects_is_an_error(tmp_path: Path, preview: RunPreview) -> None:
    repo, base = _fleet(tmp_path, {"clusters/empty/readme.yaml": configmap("x", "default")})

    outcome = preview(repo, base, base, "--path", "clusters/empty")

    assert outcome.code == 2
    assert "--path clusters/empty: no Flux Kustomization" in outcome.stderr
    assert outcome.report == ""


def test_a_repository_without_an_entry_point_is_an_error(
    tmp_path: Path, preview: RunPreview
) -> None:
    repo, base = new_repo(tmp_path / "repo", {"apps/config.yaml": configmap("a", "default")})

    outcome = preview(repo, base, base)

    assert outcome.code == 2
    assert "no cluster entry point found" in outcome.stderr
    assert "--path" in outcome.stderr


# --- crashes -------------------------------------------------------------------------------------


def test_an_unexpected_error_in_a_render_fails_only_that_unit(
    tmp_path: Path, preview: RunPreview, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, base = _fleet(tmp_path)
    head = commit(repo, {"apps/config.yaml": configmap("settings", "default", mode="slow")}, "x")
    real = kustomize_renderer.render_kustomization

    def flaky(spec, *args, **kwargs):  # type: ignore[no-untyped-def]
        if spec.unit.name == "apps":
            raise RecursionError("maximum recursion depth exceeded\nmore lines")
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(kustomize_renderer, "render_kustomization", flaky)

    outcome = preview(repo, base, head)

    assert outcome.code == 2
    error = outcome.unit(PROD, "apps")["error"]
    reason = (
        "Kustomization/flux-system/apps: internal error "
        "(RecursionError: maximum recursion depth exceeded)"
    )
    assert error == f"at base: {reason}; at head: {reason}"
    assert outcome.unit(PROD, "flux-system")["status"] == "unchanged"


@pytest.mark.parametrize("debug", [False, True])
def test_an_escaping_error_exits_2_with_a_traceback_only_on_debug(
    tmp_path: Path, preview: RunPreview, monkeypatch: pytest.MonkeyPatch, debug: bool
) -> None:
    repo, base = _fleet(tmp_path)

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("planner fell over")

    monkeypatch.setattr(planning, "plan_preview", broken)

    outcome = preview(repo, base, base, *(["--debug"] if debug else []))

    assert outcome.code == 2
    assert "internal error" in outcome.stderr
    assert "ValueError" in outcome.stderr
    assert ("Traceback" in outcome.stderr) is debug
    assert json.dumps(outcome.report) == '""'


# --- more budgets and refusals -------------------------------------------------------------------


def test_a_chart_rendering_a_helmrelease_of_itself_fails_and_ends(
    tmp_path: Path, preview: RunPreview
) -> None:
    # The chart renders a HelmRelease of the same chart under a new name, on every level.
    template = _helm_release("{{ .Release.Name }}-again", "./charts/loop").replace(
        "releaseName: {{ .Release.Name }}-again", "releaseName: again"
    )
    repo, base = _fleet(tmp_path)
    head = commit(repo, _release_files("loop", template), "loop")

    outcome = preview(repo, base, head)

    assert outcome.code == 2
    copy = outcome.unit(PROD, "loop-again")
    assert "its ancestor HelmRelease/flux-system/loop already renders" in copy["error"]


def test_a_unit_name_the_api_server_refuses_fails_the_unit_that_renders_it(
    tmp_path: Path, preview: RunPreview
) -> None:
    repo, base = _fleet(tmp_path)
    head = commit(repo, {f"{PROD}/bad.yaml": kustomization("Bad_Name", "./apps")}, "bad name")

    outcome = preview(repo, base, head)

    # The API server would refuse the object in its parent's apply, so the parent fails.
    assert outcome.code == 2
    error = outcome.unit(PROD, "flux-system")["error"]
    assert f"Kustomization (in {PROD}/bad.yaml): metadata.name 'Bad_Name'" in error
    assert "must be a DNS-1123 subdomain" in error


def test_the_markdown_report_keeps_within_its_budget(tmp_path: Path, preview: RunPreview) -> None:
    repo, base = _fleet(tmp_path)
    head = commit(repo, _release_files("bomb", _BOMB), "bomb")

    outcome = preview(repo, base, head, "--max-report-chars", "5000", fmt="markdown")

    assert outcome.code == 1
    assert len(outcome.report) <= 5000
    assert "left out" in outcome.report or "shortened" in outcome.report


def test_a_report_budget_below_a_summary_is_refused(tmp_path: Path, preview: RunPreview) -> None:
    repo, base = _fleet(tmp_path)

    outcome = preview(repo, base, base, "--max-report-chars", "100", fmt="markdown")

    assert outcome.code == 2
    assert "--max-report-chars must be at least 2000" in outcome.stderr


def test_the_deadline_cuts_a_running_tool_short(tmp_path: Path, preview: RunPreview) -> None:
    # A tool that would run for ten minutes: the whole preview's budget stops it, not the
    # per-tool bound, and the message names the budget that ran out.
    slow = tmp_path / "slow-kustomize"
    slow.write_text("#!/bin/sh\nexec sleep 600\n")
    slow.chmod(0o755)
    repo, base = _fleet(tmp_path)
    head = commit(repo, {"apps/config.yaml": configmap("settings", "default", mode="slow")}, "x")

    outcome = preview(
        repo, base, head, "--timeout", "2", "--kustomize", str(slow), "--sandbox", "off"
    )

    assert outcome.code == 2
    errors = _failed_errors(outcome)
    assert errors
    assert all("ran out of its time budget of 2s" in e and "--timeout" in e for e in errors)
