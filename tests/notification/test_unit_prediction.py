"""The controller predicts the Kustomization it applies alone, as the full preview plans it.

A real git repository holds a cluster entry point (`clusters/prod`: the bootstrap Kustomization,
a `vars` ConfigMap, three app Kustomizations, one substituting from `vars`) at two commits. The
controller's `ArtifactPredictor` keeps each revision's tree as the source controller would hand
it over (`git archive` of the commit) together with the Kustomization object as it was applied
(ownership labels included, as the parent applies them), then predicts each app. The prediction
must equal the app's plan in a full `core.preview.run_preview` of A -> B (the preview
`tidegate preview` prints), while rendering only what that app needs: the app itself, and the
entry point's root unit for the app that substitutes from `vars`.
"""

from __future__ import annotations

import copy
import io
import subprocess
import tarfile
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from core.changes import UnitPlan
from core.model import UnitKind, UnitRef
from core.preview import PreviewRequest, run_preview
from core.render.cache import RenderCache
from core.render.engine import RenderEngine
from core.render.unit import RenderOptions, RenderSettings
from core.repo import sourceignore
from core.repo.artifacts import forget_verdicts
from core.repo.git import Repository
from reconciler.notification.predictor import ArtifactPredictor
from reconciler.notification.revisions import RevisionStore
from tests.preview.gitrepo import commit, configmap, flux_cluster, kustomization, new_repo

PROD = "clusters/prod"
OWNER = "kustomize.toolkit.fluxcd.io"
VARS = "postBuild: {substituteFrom: [{kind: ConfigMap, name: vars}]}"


def _files(*, tier: str, web: str, web_extra: str = "", jobs: str) -> dict[str, str]:
    return {
        **flux_cluster("prod"),
        f"{PROD}/vars.yaml": configmap("vars", "flux-system", tier=tier),
        f"{PROD}/apps.yaml": "---\n".join(
            [
                kustomization("web", "./apps/web", extra=web_extra),
                kustomization("api", "./apps/api", extra=VARS),
                kustomization("jobs", "./apps/jobs"),
            ]
        ),
        "apps/web/kustomization.yaml": "resources: [settings.yaml]\n",
        "apps/web/settings.yaml": web,
        "apps/api/kustomization.yaml": "resources: [settings.yaml]\n",
        "apps/api/settings.yaml": configmap("api", "apps", tier="${tier}"),
        "apps/jobs/kustomization.yaml": "resources: [settings.yaml]\n",
        "apps/jobs/settings.yaml": configmap("jobs", "apps", every=jobs),
    }


BASE = _files(tier="prod", web=configmap("web", "apps", size="1"), jobs="1h")
HEAD = _files(
    tier="staging",
    web=configmap("web", "apps", size="2") + "---\n" + configmap("web-extra", "apps", on="yes"),
    # The web Kustomization itself changes: the base must be planned with its base spec.
    web_extra="targetNamespace: web",
    jobs="2h",
)


class _Watched:
    """The render engine, noting every unit rendered (a cache miss) by the preview it serves."""

    def __init__(self, engine: RenderEngine) -> None:
        self.engine = engine
        self.rendered: list[str] = []

    def settings(self, **_: Any) -> RenderSettings:
        return self.engine.settings(on_render=self.rendered.append)


def _tree(repo: Path, sha: str, into: Path) -> Path:
    """The revision's files as an artifact holds them."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", sha], cwd=repo, check=True, capture_output=True
    ).stdout
    into.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def _applied(files: dict[str, str], path: str, name: str, owner: str) -> dict[str, Any]:
    """The Kustomization `name` as the cluster holds it once `owner` applied it."""
    found = next(
        doc
        for doc in yaml.safe_load_all(files[path].replace("---\n", "\n---\n"))
        if doc and doc.get("kind") == "Kustomization" and doc["metadata"]["name"] == name
    )
    live: dict[str, Any] = copy.deepcopy(found)
    live["metadata"]["labels"] = {f"{OWNER}/name": owner, f"{OWNER}/namespace": "flux-system"}
    live["metadata"]["generation"] = 3
    live["status"] = {"lastAppliedRevision": "main@sha1:" + "0" * 40}
    return live


def _apps(files: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {name: _applied(files, f"{PROD}/apps.yaml", name, "flux-system") for name in _APPS}


_APPS = ("web", "api", "jobs")


@pytest.fixture
def fleet(tmp_path: Path) -> tuple[Path, str, str]:
    repo, base = new_repo(tmp_path / "fleet", BASE)
    head = commit(repo, {**HEAD}, "head")
    return repo, base, head


def _engine(kustomize_bin: Path, helm_bin: Path, cache: Path) -> RenderEngine:
    return RenderEngine(RenderOptions(kustomize_bin, helm_bin), RenderCache(cache))


def _predictor(
    tmp_path: Path, engine: RenderEngine | _Watched, repo: Path, base: str, head: str, *, root: bool
) -> ArtifactPredictor:
    """A predictor that kept both revisions, as the controller keeps them while applying."""
    predictor = ArtifactPredictor(RevisionStore(tmp_path / "revisions"), cast(RenderEngine, engine))
    for sha, files in ((base, BASE), (head, HEAD)):
        tree = _tree(repo, sha, tmp_path / "artifacts" / sha)
        if root:
            bootstrap = f"{PROD}/flux-system/gotk-sync.yaml"
            predictor.record(
                _applied(files, bootstrap, "flux-system", "flux-system"), _rev(sha), tree
            )
        for live in _apps(files).values():
            predictor.record(live, _rev(sha), tree)
    return predictor


def _rev(sha: str) -> str:
    return f"main@sha1:{sha}"


def _unit(name: str) -> UnitRef:
    return UnitRef(UnitKind.KUSTOMIZATION, "flux-system", name)


def _what_it_does(plan: UnitPlan | None) -> tuple[object, ...]:
    """Everything a plan says about the unit's objects (not where its Flux object came from)."""
    assert plan is not None
    return (
        plan.status,
        plan.prune,
        plan.changes,
        plan.error,
        plan.skipped,
        plan.noise_only,
        plan.notices,
        plan.deletion_policy,
    )


def test_each_unit_is_predicted_as_the_full_preview_plans_it(
    fleet: tuple[Path, str, str], kustomize_bin: Path, helm_bin: Path, tmp_path: Path
) -> None:
    repo, base, head = fleet
    full_engine = _engine(kustomize_bin, helm_bin, tmp_path / "full-cache")
    with Repository(repo) as opened:
        preview = run_preview(
            opened, PreviewRequest(base=base, head=head, clusters=(PROD,)), full_engine.settings()
        )
    [cluster] = preview.clusters
    full = {plan.unit: plan for plan in cluster.units}
    engine = _engine(kustomize_bin, helm_bin, tmp_path / "cache")
    predictor = _predictor(tmp_path, engine, repo, base, head, root=True)

    for name in _APPS:
        predicted = predictor(_unit(name), _rev(base), _rev(head))
        assert _what_it_does(predicted) == _what_it_does(full[_unit(name)]), name
        assert predicted is not None
        assert predicted.changes, name
    # What the three cover: a namespace move with a new object, a substituted value, an edit.
    web = {(c.ref.namespace, c.ref.name, c.action.value) for c in full[_unit("web")].changes}
    assert ("web", "web-extra", "create") in web
    assert ("apps", "web", "delete") in web


def test_a_prediction_renders_the_applied_unit_and_nothing_else(
    fleet: tuple[Path, str, str], kustomize_bin: Path, helm_bin: Path, tmp_path: Path
) -> None:
    repo, base, head = fleet
    watched = _Watched(_engine(kustomize_bin, helm_bin, tmp_path / "cache"))
    predictor = _predictor(tmp_path, watched, repo, base, head, root=True)

    assert predictor(_unit("web"), _rev(base), _rev(head)) is not None
    assert sorted(watched.rendered) == [str(_unit("web"))] * 2
    watched.rendered.clear()
    # The app substituting from `vars` gets the root unit's objects, and nothing more.
    assert predictor(_unit("api"), _rev(base), _rev(head)) is not None
    assert set(watched.rendered) == {str(_unit("api")), str(_unit("flux-system"))}
    watched.rendered.clear()
    # A warm cache: the same prediction again renders nothing.
    assert predictor(_unit("api"), _rev(base), _rev(head)) is not None
    assert watched.rendered == []


def test_without_an_entry_point_only_units_needing_other_units_go_unpredicted(
    fleet: tuple[Path, str, str], kustomize_bin: Path, helm_bin: Path, tmp_path: Path
) -> None:
    """No root Kustomization applied here and no `--predict-cluster`: `vars` is out of reach."""
    repo, base, head = fleet
    engine = _engine(kustomize_bin, helm_bin, tmp_path / "cache")
    predictor = _predictor(tmp_path, engine, repo, base, head, root=False)

    assert predictor(_unit("api"), _rev(base), _rev(head)) is None
    assert predictor(_unit("web"), _rev(base), _rev(head)) is not None


def test_a_configured_entry_point_stands_in_for_the_inferred_one(
    fleet: tuple[Path, str, str], kustomize_bin: Path, helm_bin: Path, tmp_path: Path
) -> None:
    repo, base, head = fleet
    engine = _engine(kustomize_bin, helm_bin, tmp_path / "cache")
    kept = _predictor(tmp_path, engine, repo, base, head, root=False)
    predictor = ArtifactPredictor(RevisionStore(tmp_path / "revisions"), engine, cluster=PROD)
    for sha, files in ((base, BASE), (head, HEAD)):
        for live in _apps(files).values():
            predictor.record(live, _rev(sha), tmp_path / "artifacts" / sha)
    del kept

    predicted = predictor(_unit("api"), _rev(base), _rev(head))
    assert predicted is not None
    assert [(c.ref.name, c.action.value) for c in predicted.changes] == [("api", "update")]


@pytest.mark.parametrize("volume", [True, False])
def test_after_a_restart_the_kept_revisions_are_what_a_prediction_needs(
    fleet: tuple[Path, str, str],
    kustomize_bin: Path,
    helm_bin: Path,
    tmp_path: Path,
    volume: bool,
) -> None:
    """A new pod over the same work directory predicts the next revision at once; over an empty
    one, once the start's reconcile of the revision applied has kept it again (re-fetched)."""
    repo, base, head = fleet
    engine = _engine(kustomize_bin, helm_bin, tmp_path / "cache")
    jobs = _unit("jobs")
    base_tree, head_tree = _tree(repo, base, tmp_path / "a"), _tree(repo, head, tmp_path / "b")
    before = ArtifactPredictor(RevisionStore(tmp_path / "work" / "revisions"), engine)
    before.record(_apps(BASE)["jobs"], _rev(base), base_tree)

    work = tmp_path / ("work" if volume else "new-pod")
    after = ArtifactPredictor(RevisionStore(work / "revisions"), engine)
    if not volume:
        # A new revision before the applied one was kept again: nothing to compare it with.
        after.record(_apps(HEAD)["jobs"], _rev(head), head_tree)
        assert after(jobs, _rev(base), _rev(head)) is None
        after = ArtifactPredictor(RevisionStore(tmp_path / "newer-pod" / "revisions"), engine)
        # The start reconciles the revision applied, from the source's artifact: kept again.
        after.record(_apps(BASE)["jobs"], _rev(base), base_tree)
    after.record(_apps(HEAD)["jobs"], _rev(head), head_tree)
    predicted = after(jobs, _rev(base), _rev(head))

    assert predicted is not None
    assert [(c.ref.name, c.action.value) for c in predicted.changes] == [("jobs", "update")]


def test_a_new_revision_is_filtered_once_with_the_verdicts_of_the_one_applied_before(
    fleet: tuple[Path, str, str],
    kustomize_bin: Path,
    helm_bin: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The head holds the base's paths under the same rules: none is matched again."""
    repo, base, head = fleet
    matched: list[str] = []
    original = sourceignore.IgnoreRules.ignored

    def counting(rules: sourceignore.IgnoreRules, path: str) -> bool:
        matched.append(path)
        return original(rules, path)

    monkeypatch.setattr(sourceignore.IgnoreRules, "ignored", counting)
    forget_verdicts()  # what earlier tests in this process filtered would serve the first one
    engine = _engine(kustomize_bin, helm_bin, tmp_path / "cache")
    predictor = ArtifactPredictor(RevisionStore(tmp_path / "revisions"), engine)
    predictor.record(_apps(BASE)["jobs"], _rev(base), _tree(repo, base, tmp_path / "a"))
    assert len(matched) == len(BASE)  # the first revision kept: every path

    matched.clear()
    applied = _apps(HEAD)["jobs"]
    applied["status"] = {"lastAppliedRevision": _rev(base)}
    predictor.record(applied, _rev(head), _tree(repo, head, tmp_path / "b"))
    assert predictor(_unit("jobs"), _rev(base), _rev(head)) is not None
    assert matched == []
