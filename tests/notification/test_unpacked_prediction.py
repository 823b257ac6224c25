"""A newly pushed revision is predicted from its unpacked artifact and kept after, off the path.

The fleet of `test_unit_prediction` (a real git repository, artifacts as `git archive` makes
them, the pinned kustomize): the head a prediction reads in place lists the same files by the
same ids as the store keeps, the prediction equals the one over the kept revision, and the
reconcile observer returns while the store's write is still held back by the test.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from core.changes import UnitPlan
from core.errors import InputError
from core.model import UnitRef
from core.repo.git import Repository
from reconciler.events import EventRecorder
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
