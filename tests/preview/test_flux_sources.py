"""Flux 2.7 layouts and source semantics through the real `tidegate preview` and pinned tools.

Covers: ArtifactGenerators composing ExternalArtifacts from the repository at each revision
(several copy rules, excludes, a Merge), the render cache keyed on the generated content,
`.sourceignore` and GitRepository `spec.ignore`, leading-slash Kustomization paths, a failed unit
never blamed on its neighbours as "not found", a `sourceRef` to a source this repository does not
define, and an object moving out of a unit that fails at base.
"""

from __future__ import annotations

from pathlib import Path

from core import preview as engine
from core.render.cache import RenderCache
from core.render.unit import RenderOptions, RenderSettings
from core.repo.git import Repository
from tests.preview.conftest import Preview as RunPreview
from tests.preview.gitrepo import commit, configmap, flux_cluster, kustomization, new_repo

STAGING = "clusters/staging"

GENERATOR = """
    apiVersion: source.extensions.fluxcd.io/v1beta1
    kind: ArtifactGenerator
    metadata: {name: staging, namespace: flux-system}
    spec:
      sources:
        - alias: monorepo
          kind: GitRepository
          name: flux-system
      artifacts:
        - name: infrastructure
          originRevision: "@monorepo"
          copy:
            - from: "@monorepo/infrastructure/**"
              to: "@artifact/"
              exclude: ["*.md"]
        - name: apps
          originRevision: "@monorepo"
          copy:
            - from: "@monorepo/apps/base/**"
              to: "@artifact/base/"
            - from: "@monorepo/apps/staging/**"
              to: "@artifact/staging/"
              exclude: ["values-override.yaml"]
            - from: "@monorepo/apps/staging/values-override.yaml"
              to: "@artifact/base/podinfo/values.yaml"
              strategy: Merge
"""


def _ea_kustomization(name: str, artifact: str, path: str, extra: str = "") -> str:
    return (
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\n"
        "kind: Kustomization\n"
        f"metadata: {{name: {name}, namespace: flux-system}}\n"
        "spec:\n"
        "  interval: 10m\n"
        f"  path: {path}\n"
        "  prune: true\n"
        f"  sourceRef: {{kind: ExternalArtifact, name: {artifact}}}\n" + extra
    )


def _flux27(tmp_path: Path) -> tuple[Path, str]:
    """The layout of fluxcd/flux2-kustomize-helm-example since Flux 2.7, in small."""
    return new_repo(
        tmp_path / "repo",
        {
            **flux_cluster("staging"),
            ".sourceignore": "/*\n!/apps/\n!/clusters/\n!/infrastructure/\n",
            "README.md": "# fleet\n",
            f"{STAGING}/artifacts.yaml": GENERATOR,
            f"{STAGING}/infrastructure.yaml": _ea_kustomization(
                "infra-configs", "infrastructure", "./configs"
            ),
            f"{STAGING}/apps.yaml": _ea_kustomization("apps", "apps", "./staging"),
            "infrastructure/configs/issuer.yaml": configmap("issuer", "cert-manager", acme="prod"),
            "infrastructure/configs/NOTES.md": "not copied\n",
            "apps/base/podinfo/kustomization.yaml": """
                apiVersion: kustomize.config.k8s.io/v1beta1
                kind: Kustomization
                namespace: podinfo
                resources: [config.yaml]
                configMapGenerator:
                  - name: podinfo-values
                    files: [values.yaml]
                generatorOptions: {disableNameSuffixHash: true}
            """,
            "apps/base/podinfo/config.yaml": configmap("podinfo", "podinfo", replicas="1"),
            "apps/base/podinfo/values.yaml": "image:\n  tag: 6.0.0\n  pullPolicy: Always\n",
            "apps/staging/kustomization.yaml": """
                apiVersion: kustomize.config.k8s.io/v1beta1
                kind: Kustomization
                resources: [../base/podinfo]
            """,
            "apps/staging/values-override.yaml": "image:\n  tag: 6.1.0\n",
            "docs/notes.yaml": "not kubernetes: [\n",
        },
    )


def test_generated_artifacts_render_and_a_copied_change_shows_at_head(
    tmp_path: Path, preview: RunPreview
) -> None:
    repo, base = _flux27(tmp_path)
    head = commit(
        repo,
        {
            "apps/base/podinfo/config.yaml": configmap("podinfo", "podinfo", replicas="3"),
            "apps/staging/values-override.yaml": "image:\n  tag: 6.2.0\n",
            "infrastructure/configs/NOTES.md": "excluded, so nothing changes\n",
        },
        "scale podinfo and bump its image",
    )

    outcome = preview(repo, base, head)

    assert outcome.code == 1, outcome.report
    apps = outcome.unit(STAGING, "apps")
    assert apps["status"] == "rendered"
    updates = {(c["kind"], c["name"]): c for c in apps["changes"]}
    assert set(updates) == {("ConfigMap", "podinfo"), ("ConfigMap", "podinfo-values")}
    assert updates[("ConfigMap", "podinfo")]["fields"] == ["data.replicas"]
    merged = updates[("ConfigMap", "podinfo-values")]["diff"]
    assert "-      tag: 6.1.0" in merged
    assert "+      tag: 6.2.0" in merged
    assert "pullPolicy: Always" in merged, "Merge keeps the base file's other keys"
    assert outcome.unit(STAGING, "infra-configs")["status"] == "unchanged"


def test_the_render_cache_keys_on_the_generated_content(
    tmp_path: Path, kustomize_bin: Path, helm_bin: Path
) -> None:
    repo, base = _flux27(tmp_path)
    ignored = commit(repo, {"docs/more.yaml": "still outside the artifact\n"}, "docs")
    copied = commit(repo, {"apps/staging/values-override.yaml": "image: {tag: 7.0.0}\n"}, "bump")

    settings = RenderSettings(
        RenderOptions(kustomize=kustomize_bin, helm=helm_bin), RenderCache(tmp_path / "cache")
    )
    with Repository(repo) as git_repo:
        first = engine.render_revision(git_repo, git_repo.tree(base), [STAGING], settings)
        settings.observer.rendered.clear()
        engine.render_revision(git_repo, git_repo.tree(ignored), [STAGING], settings)
        assert settings.observer.rendered == []
        engine.render_revision(git_repo, git_repo.tree(copied), [STAGING], settings)
        assert settings.observer.rendered == ["Kustomization/flux-system/apps"]

    apps = next(u for r, u in first[STAGING].units.items() if r.name == "apps")
    assert "apps/staging/values-override.yaml" in apps.inputs, "ownership names repository files"
    assert not any(path.startswith(("base/", "staging/")) for path in apps.inputs)


CONTROLLER = """
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: kustomize-controller, namespace: flux-system}
    spec:
      selector: {matchLabels: {app: kustomize-controller}}
      template:
        metadata: {labels: {app: kustomize-controller}}
        spec:
          containers:
            - name: manager
              image: ghcr.io/fluxcd/kustomize-controller:v1.7.0
              args: [--watch-all-namespaces=true, ARGS]
"""


def test_external_artifacts_need_the_controllers_feature_gate(
    tmp_path: Path, preview: RunPreview
) -> None:
    repo, _ = _flux27(tmp_path)
    components = f"{STAGING}/flux-system/gotk-components.yaml"
    kustomization_file = f"{STAGING}/flux-system/kustomization.yaml"
    gated = commit(
        repo,
        {
            components: CONTROLLER.replace("ARGS", "--feature-gates=ExternalArtifact=true"),
            kustomization_file: "resources: [gotk-components.yaml, gotk-sync.yaml]\n",
        },
        "components with the gate",
    )
    ungated = commit(
        repo, {components: CONTROLLER.replace("ARGS", "--log-level=info")}, "without the gate"
    )

    allowed = preview(repo, gated, gated)
    denied = preview(repo, gated, ungated)

    assert allowed.code == 0, allowed.report
    assert denied.code == 2
    error = denied.unit(STAGING, "apps")["error"]
    assert "--feature-gates=ExternalArtifact=true" in error
    assert components in error


def test_a_generator_source_outside_the_repository_asks_for_it(
    tmp_path: Path, preview: RunPreview
) -> None:
    repo, base = _flux27(tmp_path)
    head = commit(
        repo,
        {f"{STAGING}/artifacts.yaml": GENERATOR.replace("name: flux-system", "name: other")},
        "point the generator elsewhere",
    )

    outcome = preview(repo, base, head)

    assert outcome.code == 2
    error = outcome.unit(STAGING, "apps")["error"]
    assert "ArtifactGenerator/flux-system/staging" in error
    assert "GitRepository/flux-system/other" in error
    assert "--source GitRepository/flux-system/other=DIR" in error


def test_a_bad_copy_rule_names_the_file_object_and_field(
    tmp_path: Path, preview: RunPreview
) -> None:
    repo, base = _flux27(tmp_path)
    head = commit(
        repo,
        {f"{STAGING}/artifacts.yaml": GENERATOR.replace("apps/base/**", "apps/gone/**")},
        "typo",
    )

    outcome = preview(repo, base, head)

    assert outcome.code == 2
    error = outcome.unit(STAGING, "apps")["error"]
    assert f"file {STAGING}/artifacts.yaml" in error
    assert "object ArtifactGenerator/flux-system/staging" in error
    assert "field spec.artifacts[1].copy[0]" in error
    assert "no files match" in error
    assert outcome.unit(STAGING, "infra-configs")["status"] == "unchanged"


def test_an_artifact_no_generator_composes_is_said(tmp_path: Path, preview: RunPreview) -> None:
    repo, base = _flux27(tmp_path)
    head = commit(
        repo, {f"{STAGING}/extra.yaml": _ea_kustomization("extra", "nowhere", "./")}, "extra"
    )

    outcome = preview(repo, base, head)

    assert outcome.code == 2
    error = outcome.unit(STAGING, "extra")["error"]
    assert "ExternalArtifact flux-system/nowhere is not composed by any ArtifactGenerator" in error
    assert "--source" not in error


# Ignore rules.


def test_sourceignore_and_spec_ignore_decide_what_the_artifact_holds(
    tmp_path: Path, preview: RunPreview
) -> None:
    sync = flux_cluster()
    gotk = "clusters/production/flux-system/gotk-sync.yaml"
    sync[gotk] = sync[gotk].replace(
        "ref: {branch: main}}", "ref: {branch: main}, ignore: '/apps/drafts/'}"
    )
    repo, base = new_repo(
        tmp_path / "repo",
        {
            **sync,
            "clusters/production/apps.yaml": kustomization("apps", "./apps"),
            "apps/config.yaml": configmap("config", "apps", level="one"),
            "apps/notes.yaml": "these notes are not Kubernetes YAML: [\n",
            ".sourceignore": "notes.yaml\n",
        },
    )
    head = commit(
        repo,
        {
            "apps/drafts/draft.yaml": configmap("draft", "apps", wip="yes"),
            "apps/more-notes.yaml": "also not Kubernetes: [\n",
            ".sourceignore": "*notes.yaml\n",
        },
        "drafts and notes stay out of the artifact",
    )

    outcome = preview(repo, base, head)

    assert outcome.code == 0, outcome.report
    assert outcome.unit("clusters/production", "apps")["status"] == "unchanged"
    unignored = commit(repo, {".sourceignore": None}, "stop ignoring")
    broken = preview(repo, base, unignored)
    assert broken.code == 2
    assert "notes.yaml" in broken.unit("clusters/production", "apps")["error"]


# Paths and messages.


def test_a_leading_slash_path_is_relative_to_the_source_root(
    tmp_path: Path, preview: RunPreview
) -> None:
    repo, base = new_repo(
        tmp_path / "repo",
        {
            **flux_cluster(),
            "clusters/production/apps.yaml": kustomization("apps", "/apps/prod"),
            "apps/prod/config.yaml": configmap("config", "apps", level="one"),
        },
    )
    head = commit(repo, {"apps/prod/config.yaml": configmap("config", "apps", level="two")}, "x")

    outcome = preview(repo, base, head)

    assert outcome.code == 1, outcome.report
    [change] = outcome.unit("clusters/production", "apps")["changes"]
    assert (change["action"], change["fields"]) == ("update", ["data.level"])


def test_a_failed_unit_is_not_reported_as_a_missing_object_elsewhere(
    tmp_path: Path, preview: RunPreview
) -> None:
    release = """
        apiVersion: helm.toolkit.fluxcd.io/v2
        kind: HelmRelease
        metadata: {name: podinfo, namespace: flux-system}
        spec:
          interval: 10m
          chart:
            spec:
              chart: podinfo
              sourceRef: {kind: HelmRepository, name: podinfo}
    """
    repository = """
        apiVersion: source.toolkit.fluxcd.io/v1
        kind: HelmRepository
        metadata: {name: podinfo, namespace: flux-system}
        spec: {interval: 1h, url: https://charts.example.com}
    """
    repo, base = new_repo(
        tmp_path / "repo",
        {
            **flux_cluster(),
            "clusters/production/sources.yaml": kustomization("sources", "./sources"),
            "clusters/production/releases.yaml": kustomization("releases", "./releases"),
            "sources/kustomization.yaml": "resources: [repository.yaml, missing.yaml]\n",
            "sources/repository.yaml": repository,
            "releases/release.yaml": release,
        },
    )

    outcome = preview(repo, base, base)

    assert outcome.code == 2
    podinfo = outcome.unit("clusters/production", "podinfo")["error"]
    assert "HelmRepository/flux-system/podinfo is unknown" in podinfo
    assert "Kustomization/flux-system/sources fails to render" in podinfo
    assert "was not found" not in podinfo


def test_an_undefined_source_in_the_units_namespace_is_named(
    tmp_path: Path, preview: RunPreview
) -> None:
    controllers = (
        kustomization("controllers", "./controllers")
        .replace("namespace: flux-system", "namespace: controllers")
        .replace("{kind: GitRepository, name: flux-system}", "{kind: GitRepository, name: fleet}")
    )
    repo, base = new_repo(
        tmp_path / "repo",
        {
            **flux_cluster(),
            "clusters/production/controllers.yaml": controllers,
            "controllers/config.yaml": configmap("config", "controllers", level="one"),
        },
    )

    outcome = preview(repo, base, base)

    assert outcome.code == 2
    error = outcome.unit("clusters/production", "controllers")["error"]
    assert "GitRepository controllers/fleet is not defined in this repository" in error
    assert "--source" not in error


def test_an_object_leaving_a_unit_that_fails_at_base_is_not_called_new(
    tmp_path: Path, preview: RunPreview
) -> None:
    repo, base = new_repo(
        tmp_path / "repo",
        {
            **flux_cluster(),
            "clusters/production/old.yaml": kustomization("old", "./old"),
            "clusters/production/web.yaml": kustomization("web", "./web"),
            "old/kustomization.yaml": "resources: [moving.yaml, missing.yaml]\n",
            "old/moving.yaml": configmap("moving", "apps", level="one"),
            "old/stays.yaml": configmap("stays", "apps", level="one"),
            "web/config.yaml": configmap("web", "apps", level="one"),
        },
    )
    head = commit(
        repo,
        {
            "old/kustomization.yaml": "resources: [stays.yaml]\n",
            "old/moving.yaml": None,
            "web/moving.yaml": configmap("moving", "apps", level="one"),
        },
        "fix old and move one object into web",
    )

    outcome = preview(repo, base, head)

    assert outcome.code == 2, "old failed at base"
    [change] = outcome.unit("clusters/production", "web")["changes"]
    assert change["action"] == "unknown"
    assert "Kustomization/flux-system/old failed at base" in change["note"]
    assert outcome.data["summary"]["create"] == 0


# Scope.

WIDGET_CRD = """
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata: {name: widgets.example.com}
    spec:
      group: example.com
      scope: Namespaced
      names: {kind: Widget, plural: widgets}
      versions: [{name: v1, served: true, storage: true}]
"""


def test_custom_resources_without_a_namespace_fail_or_are_flagged(
    tmp_path: Path, preview: RunPreview
) -> None:
    repo, base = new_repo(
        tmp_path / "repo",
        {
            **flux_cluster(),
            "clusters/production/crds.yaml": kustomization("crds", "./crds"),
            "clusters/production/apps.yaml": kustomization("apps", "./apps"),
            "crds/widgets.yaml": WIDGET_CRD,
            "apps/config.yaml": configmap("config", "apps", level="one"),
        },
    )
    head = commit(
        repo,
        {
            "apps/widget.yaml": "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
            "apps/gadget.yaml": "apiVersion: other.io/v1\nkind: Gadget\nmetadata: {name: g}\n",
        },
        "custom resources without a namespace",
    )

    outcome = preview(repo, base, head)

    assert outcome.code == 2
    apps = outcome.unit("clusters/production", "apps")
    assert apps["status"] == "failed"
    assert apps["error"].startswith("at head: Widget/w namespace not specified")
    assert apps["reason"] == "input"
    fixed = commit(repo, {"apps/widget.yaml": None}, "only the gadget is left")
    flagged = preview(repo, base, fixed).unit("clusters/production", "apps")
    assert flagged["status"] == "rendered"
    [notice] = flagged["notices"]
    assert notice.startswith("the scope of Gadget (other.io) is unknown")


def test_units_waiting_on_the_same_missing_object_are_not_blamed_on_each_other(
    tmp_path: Path, preview: RunPreview
) -> None:
    release = """
        apiVersion: helm.toolkit.fluxcd.io/v2
        kind: HelmRelease
        metadata: {{name: {name}, namespace: flux-system}}
        spec:
          interval: 10m
          chart:
            spec:
              chart: podinfo
              sourceRef: {{kind: HelmRepository, name: nowhere}}
    """
    repo, base = new_repo(
        tmp_path / "repo",
        {
            **flux_cluster(),
            "clusters/production/releases.yaml": kustomization("releases", "./releases"),
            "releases/one.yaml": release.format(name="one"),
            "releases/two.yaml": release.format(name="two"),
        },
    )

    outcome = preview(repo, base, base)

    for name in ("one", "two"):
        error = outcome.unit("clusters/production", name)["error"]
        assert error.startswith("at base: HelmRepository/flux-system/nowhere was not found")


def test_symlinks_never_reach_the_artifact(tmp_path: Path, preview: RunPreview) -> None:
    repo, base = new_repo(
        tmp_path / "repo",
        {
            **flux_cluster(),
            "clusters/production/apps.yaml": kustomization("apps", "./apps"),
            "apps/config.yaml": configmap("config", "apps", level="one"),
        },
    )
    (repo / "apps" / "alias.yaml").symlink_to("config.yaml")
    (repo / "apps" / "host.yaml").symlink_to("/etc/hostname")
    head = commit(repo, {}, "symlinks in the path")

    outcome = preview(repo, base, head)

    assert outcome.code == 0, outcome.report
    assert outcome.unit("clusters/production", "apps")["status"] == "unchanged"
