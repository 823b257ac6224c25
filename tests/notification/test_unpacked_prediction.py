"""A newly pushed revision is predicted from its unpacked artifact and kept after, off the path.

The fleet of `test_unit_prediction` (a real git repository, artifacts as `git archive` makes
them, the pinned kustomize): the head a prediction reads in place lists the same files by the
same ids as the store keeps, the prediction equals the one over the kept revision, and the
reconcile observer returns while the store's write is still held back by the test.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from core.changes import UnitPlan
from core.errors import InputError
from core.model import UnitRef
from core.repo.git import Repository
from reconciler.events import EventRecorder
from reconciler.kustomization.artifact import ArtifactCache, TreePins
from reconciler.kustomization.model import ChangeEntry
from reconciler.kustomization.source import Artifact
from reconciler.notification import unpacked
from reconciler.notification.event import Event
from reconciler.notification.lifecycle import DeployReporter
from reconciler.notification.predictor import ArtifactPredictor
from reconciler.notification.revisions import RevisionStore, source_key
from reconciler.notification.unpacked import unpacked_artifacts
from tests.notification.test_unit_prediction import (
    BASE,
    HEAD,
    PROD,
    _applied,
    _apps,
    _engine,
    _rev,
    _tree,
    _unit,
    _what_it_does,
    fleet,
)

__all__ = ["fleet"]


def test_an_unpacked_artifact_lists_the_ids_and_modes_the_store_keeps(tmp_path: Path) -> None:
    tree = tmp_path / "artifact"
    (tree / "apps" / "web").mkdir(parents=True)
    (tree / "apps" / "web" / "kustomization.yaml").write_text("resources: []\n")
    (tree / "run.sh").write_text("#!/bin/sh\n")
    (tree / "run.sh").chmod(0o755)
    (tree / "big.bin").write_bytes(os.urandom(3 << 20))
    (tree / "link").symlink_to("apps/web/kustomization.yaml")
    store = RevisionStore(tmp_path / "store")
    source = "0" * 24
    assert store.record(source, "1" * 40, tree)
    ref = store.ref(source, "1" * 40)
    assert ref is not None

    unpacked = unpacked_artifacts(tree, "main@sha1:" + "1" * 40).tree
    with Repository(store.path) as repo:
        kept = repo.tree(ref)
        assert dict(unpacked) == dict(kept)
        assert {p: unpacked.mode(p) for p in unpacked} == {p: kept.mode(p) for p in kept}
        assert unpacked_artifacts(tree, "x").read_blob(kept["link"]) == repo.read_blob(kept["link"])


def test_an_unpacked_artifact_holding_a_git_entry_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a" / ".git").mkdir(parents=True)
    with pytest.raises(InputError, match=r"\.git"):
        unpacked_artifacts(tmp_path / "a", "main@sha1:" + "1" * 40)


def _live(files: dict[str, str], name: str, applied: str) -> dict[str, Any]:
    found = (
        _applied(files, f"{PROD}/flux-system/gotk-sync.yaml", name, name)
        if name == "flux-system"
        else _apps(files)[name]
    )
    found["status"] = {"lastAppliedRevision": applied}
    return found


def test_a_head_not_kept_yet_is_predicted_as_the_kept_one_is(
    fleet: tuple[Path, str, str], kustomize_bin: Path, helm_bin: Path, tmp_path: Path
) -> None:
    repo, base, head = fleet
    base_tree = _tree(repo, base, tmp_path / "a")
    head_tree = _tree(repo, head, tmp_path / "b")
    engine = _engine(kustomize_bin, helm_bin, tmp_path / "cache")
    names = ("flux-system", "web", "api", "jobs")

    kept = ArtifactPredictor(RevisionStore(tmp_path / "kept"), engine)
    fresh_store = RevisionStore(tmp_path / "fresh")
    fresh = ArtifactPredictor(fresh_store, engine)
    for name in names:
        for predictor in (kept, fresh):
            predictor.record(_live(BASE, name, ""), _rev(base), base_tree)
        kept.record(_live(HEAD, name, _rev(base)), _rev(head), head_tree)
        fresh.unpacked(_live(HEAD, name, _rev(base)), _rev(head), head_tree)
    source = source_key(_live(HEAD, "jobs", ""))
    for name in ("web", "api", "jobs"):
        from_tree = fresh(_unit(name), _rev(base), _rev(head))
        assert from_tree is not None
        assert from_tree.changes, name
        assert _what_it_does(from_tree) == _what_it_does(kept(_unit(name), _rev(base), _rev(head)))
    # Predicted from the artifact in place: nothing of the head was written to the store.
    assert fresh_store.ref(source, head) is None


def test_a_head_read_in_place_hashes_only_the_files_its_unit_reads(
    fleet: tuple[Path, str, str],
    kustomize_bin: Path,
    helm_bin: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo, base, head = fleet
    base_tree = _tree(repo, base, tmp_path / "a")
    head_tree = _tree(repo, head, tmp_path / "b")
    hashed: list[str] = []
    real = unpacked._file_id

    def counted(path: str) -> str:
        hashed.append(Path(path).relative_to(head_tree).as_posix())
        return real(path)

    monkeypatch.setattr(unpacked, "_file_id", counted)
    engine = _engine(kustomize_bin, helm_bin, tmp_path / "cache")
    for round_ in ("the head rendered", "the head's render a cache hit"):
        predictor = ArtifactPredictor(RevisionStore(tmp_path / round_), engine)
        predictor.record(_live(BASE, "jobs", ""), _rev(base), base_tree)
        predictor.unpacked(_live(HEAD, "jobs", _rev(base)), _rev(head), head_tree)
        hashed.clear()
        plan = predictor(_unit("jobs"), _rev(base), _rev(head))
        assert plan is not None, round_
        assert [(c.ref.name, c.action.value) for c in plan.changes] == [("jobs", "update")], round_
        # The unit's own files, each once; none of the other units' nor the entry point's.
        assert sorted(hashed) == ["apps/jobs/kustomization.yaml", "apps/jobs/settings.yaml"], round_
    listed = unpacked_artifacts(head_tree, _rev(head)).tree
    assert set(listed) == set(HEAD)
    hashed.clear()
    assert "apps/web/settings.yaml" in listed
    assert hashed == []  # listing and membership need no id


def test_a_file_changed_after_its_id_was_given_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("one\n")
    files = unpacked_artifacts(tmp_path, _rev("1" * 40))
    view = files.repository()
    assert view.read("a.yaml") == b"one\n"
    blob = view.files["a.yaml"]
    (tmp_path / "a.yaml").write_text("two\n")
    with pytest.raises(InputError, match="changed while it was read"):
        files.read_blob(blob)


class _HeldStore(RevisionStore):
    """The store, its writes held until the test releases them."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.release = threading.Event()
        self.stored = threading.Event()
        self.holding: list[str] = []

    def record(self, source: str, commit: str, tree: Path) -> bool:
        self.holding.append(commit)
        self.release.wait(timeout=120)
        try:
            return super().record(source, commit, tree)
        finally:
            self.stored.set()


def test_the_reconcile_never_waits_for_the_store_and_the_revision_is_kept_after(
    fleet: tuple[Path, str, str], kustomize_bin: Path, helm_bin: Path, tmp_path: Path
) -> None:
    repo, base, head = fleet
    base_tree = _tree(repo, base, tmp_path / "a")
    head_tree = _tree(repo, head, tmp_path / "b")
    engine = _engine(kustomize_bin, helm_bin, tmp_path / "cache")
    store = _HeldStore(tmp_path / "store")
    artifacts = ArtifactPredictor(store, engine)
    source = source_key(_live(BASE, "jobs", ""))
    store.release.set()
    assert store.record(source, base, base_tree)  # the revision applied before, kept
    artifacts.record(_live(BASE, "jobs", ""), _rev(base), base_tree)
    store.release.clear()
    store.stored.clear()
    store.holding.clear()

    predicted: list[UnitPlan | None] = []

    def predictor(unit: UnitRef, previous: str, revision: str) -> UnitPlan | None:
        plan = artifacts(unit, previous, revision)
        predicted.append(plan)
        return plan

    sent: list[Event] = []
    final = threading.Event()

    def notify(event: Event, **_: Any) -> None:
        sent.append(event)
        if event.reason == "Succeeded":
            final.set()

    reporter = DeployReporter(notify, predictor=predictor, recorder=artifacts)
    obj = _live(HEAD, "jobs", _rev(base))
    reporter.applying(obj, _rev(head), head_tree)
    reporter.applied(obj, _rev(head), changes=(), seconds=1.0, healthy=True)
    EventRecorder(None, [reporter.forward]).record(
        obj, "info", "done", revision=_rev(head), commit_status=True, reason="Succeeded"
    )

    # The final status, sent when the preview ended, carries the comparison; the store's write
    # has not happened.
    assert final.wait(timeout=120)
    assert not store.stored.is_set()
    assert store.ref(source, head) is None
    [plan] = predicted
    assert plan is not None
    assert [(c.ref.name, c.action.value) for c in plan.changes] == [("jobs", "update")]
    description = sent[-1].metadata["kustomize.toolkit.fluxcd.io/commit_status_description"]
    assert "applied with" in description

    store.release.set()
    assert store.stored.wait(timeout=120)
    assert store.holding == [head]
    assert store.ref(source, head) is not None
    # The next prediction reads the kept head as the one from the artifact read it.
    kept = ArtifactPredictor(RevisionStore(tmp_path / "store"), engine)
    kept.record(obj, _rev(head), head_tree)
    assert _what_it_does(kept(_unit("jobs"), _rev(base), _rev(head))) == _what_it_does(plan)


class _Archives:
    """The artifact download seam: the commit named by the URL, unpacked as `git archive`s it."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo

    def download(self, url: str, digest: str, target: Path, owner: str) -> None:
        _tree(self.repo, url, target)


def _artifact(sha: str, digit: str) -> Artifact:
    return Artifact(url=sha, digest="sha256:" + digit * 64, revision=_rev(sha))


class _HeldPreview:
    """The real predictor, started and then held until the test lets it read the tree."""

    def __init__(self, predictor: ArtifactPredictor) -> None:
        self.predictor = predictor
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, unit: UnitRef, previous: str, revision: str) -> UnitPlan | None:
        self.started.set()
        assert self.release.wait(timeout=120)
        return self.predictor(unit, previous, revision)


def _as_applied(plan: UnitPlan | None) -> tuple[ChangeEntry, ...]:
    """The change set an apply that did exactly what `plan` says reports."""
    assert plan is not None
    assert plan.changes
    return tuple(
        ChangeEntry(f"{c.ref.kind}/{c.ref.namespace}/{c.ref.name}", "configured")
        for c in plan.changes
    )


def test_a_tree_evicted_while_its_preview_is_held_stays_until_the_preview_ends(
    fleet: tuple[Path, str, str], kustomize_bin: Path, helm_bin: Path, tmp_path: Path
) -> None:
    repo, base, head = fleet
    engine = _engine(kustomize_bin, helm_bin, tmp_path / "cache")
    base_tree = _tree(repo, base, tmp_path / "a")
    # What the unit's apply does, from both revisions kept: the apply below does exactly that.
    reference = ArtifactPredictor(RevisionStore(tmp_path / "reference"), engine)
    reference.record(_live(BASE, "jobs", ""), _rev(base), base_tree)
    reference.record(_live(HEAD, "jobs", _rev(base)), _rev(head), _tree(repo, head, tmp_path / "b"))
    changes = _as_applied(reference(_unit("jobs"), _rev(base), _rev(head)))

    pins = TreePins()
    cache = ArtifactCache(_Archives(repo), tmp_path / "artifacts", keep=1, pins=pins)
    store = RevisionStore(tmp_path / "store")
    artifacts = ArtifactPredictor(store, engine)
    artifacts.record(_live(BASE, "jobs", ""), _rev(base), base_tree)
    held = _HeldPreview(artifacts)
    sent: list[Event] = []
    reporter = DeployReporter(
        lambda event, **_: sent.append(event), predictor=held, recorder=artifacts, trees=pins
    )
    try:
        head_tree = cache.tree(_artifact(head, "a"), owner="jobs", requeue_dependency=1)
        obj = _live(HEAD, "jobs", _rev(base))
        reporter.applying(obj, _rev(head), head_tree)
        reporter.applied(obj, _rev(head), changes=changes, seconds=1.0, healthy=True)
        EventRecorder(None, [reporter.forward]).record(
            obj, "info", "done", revision=_rev(head), commit_status=True, reason="Succeeded"
        )
        assert held.started.wait(timeout=120)
        # The run is over; the next artifact evicts every tree beyond the one kept, but not the
        # tree the preview holds.
        cache.tree(_artifact(base, "b"), owner="web", requeue_dependency=1)
        assert head_tree.is_dir()
        held.release.set()
        reporter.drain(timeout=120)
    finally:
        held.release.set()
        reporter.close()

    final = sent[-1]
    assert final.reason == "Succeeded"
    assert final.metadata["kustomize.toolkit.fluxcd.io/revision"] == _rev(head)
    assert final.metadata["kustomize.toolkit.fluxcd.io/commit_status_description"] == (
        "applied in 1s, healthy; applied as previewed"
    )
    # Kept whole from the held tree, after its preview.
    source = source_key(obj)
    kept = store.ref(source, head)
    assert kept is not None
    with Repository(store.path) as stored:
        assert set(stored.tree(kept)) == set(HEAD)
    # Released: the next eviction removes it; the cache is back to its bound.
    cache.tree(_artifact(base, "c"), owner="web", requeue_dependency=1)
    assert not head_tree.exists()
    assert len(list((tmp_path / "artifacts").iterdir())) == 1


def test_a_tree_gone_before_its_preview_could_hold_it_gives_no_verdict(
    fleet: tuple[Path, str, str],
    kustomize_bin: Path,
    helm_bin: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    repo, base, head = fleet
    engine = _engine(kustomize_bin, helm_bin, tmp_path / "cache")
    pins = TreePins()
    cache = ArtifactCache(_Archives(repo), tmp_path / "artifacts", keep=1, pins=pins)
    store = RevisionStore(tmp_path / "store")
    artifacts = ArtifactPredictor(store, engine)
    artifacts.record(_live(BASE, "jobs", ""), _rev(base), _tree(repo, base, tmp_path / "a"))
    sent: list[Event] = []
    reporter = DeployReporter(
        lambda event, **_: sent.append(event), predictor=artifacts, recorder=artifacts, trees=pins
    )
    head_tree = cache.tree(_artifact(head, "a"), owner="jobs", requeue_dependency=1)
    cache.tree(_artifact(base, "b"), owner="web", requeue_dependency=1)  # evicts it, unheld
    assert not head_tree.exists()
    obj = _live(HEAD, "jobs", _rev(base))
    try:
        reporter.applying(obj, _rev(head), head_tree)
        reporter.applied(obj, _rev(head), changes=(), seconds=1.0, healthy=True)
        EventRecorder(None, [reporter.forward]).record(
            obj, "info", "done", revision=_rev(head), commit_status=True, reason="Succeeded"
        )
        reporter.drain(timeout=120)
    finally:
        reporter.close()
    final = sent[-1]
    assert final.metadata["kustomize.toolkit.fluxcd.io/revision"] == _rev(head)
    assert final.metadata["kustomize.toolkit.fluxcd.io/commit_status_description"] == (
        "applied in 1s, healthy"
    )
    assert f"the artifact of {_rev(head)} was removed before its preview could hold it" in (
        caplog.text
    )
    assert store.ref(source_key(obj), head) is None  # nothing kept from a partial tree


class _CountingTrees:
    """The cache's pins, counting what is held (to see every hold end)."""

    def __init__(self) -> None:
        self.pins = TreePins()
        self.held = 0

    def hold(self, tree: Path) -> bool:
        self.held += 1
        return self.pins.hold(tree)

    def release(self, tree: Path) -> None:
        self.held -= 1
        self.pins.release(tree)


class _Calls:
    """A predictor and recorder that only note when they are called."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, unit: UnitRef, previous: str, revision: str) -> UnitPlan | None:
        self.calls.append(f"predict {revision}")
        return None

    def unpacked(self, kustomization: Mapping[str, Any], revision: str, tree: Path) -> None:
        self.calls.append(f"note {revision}")

    def record(self, kustomization: Mapping[str, Any], revision: str, tree: Path) -> None:
        self.calls.append(f"keep {revision}")


def test_the_preview_starts_when_the_run_has_applied_not_beside_it(tmp_path: Path) -> None:
    """A preview running beside the build and apply would slow the reconcile itself."""
    calls, trees = _Calls(), _CountingTrees()
    reporter = DeployReporter(lambda *_, **__: None, predictor=calls, recorder=calls, trees=trees)
    tree = tmp_path / "tree"
    tree.mkdir()
    obj = _live(HEAD, "jobs", _rev("1" * 40))
    try:
        reporter.applying(obj, _rev("2" * 40), tree)
        reporter.drain(timeout=60)
        assert (calls.calls, trees.held) == ([], 1)  # held, not read yet

        reporter.applied(obj, _rev("2" * 40), changes=(), seconds=1.0, healthy=True)
        reporter.drain(timeout=60)
        assert calls.calls == [
            f"note {_rev('2' * 40)}",
            f"predict {_rev('2' * 40)}",
            f"keep {_rev('2' * 40)}",
        ]
        assert trees.held == 0

        # A failed run is kept all the same, and not previewed.
        calls.calls.clear()
        reporter.applying(obj, _rev("3" * 40), tree)
        reporter.failed(obj, _rev("3" * 40), "HealthCheckFailed", "timeout")
        reporter.drain(timeout=60)
        assert (calls.calls, trees.held) == ([f"keep {_rev('3' * 40)}"], 0)

        # A run that never ended gives its hold back when the next run starts.
        reporter.applying(obj, _rev("4" * 40), tree)
        reporter.applying(obj, _rev("5" * 40), tree)
        assert trees.held == 1
    finally:
        reporter.close()
