"""The controller's store of reconciled source trees, on real git."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.errors import CommandError
from core.repo.git import Repository
from reconciler.notification import revisions
from reconciler.notification.revisions import RevisionStore, source_key

SOURCE = source_key(
    {
        "metadata": {"namespace": "flux-system", "name": "apps"},
        "spec": {"sourceRef": {"kind": "GitRepository", "name": "flux-system"}},
    }
)


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _files(store: RevisionStore, ref: str) -> dict[str, bytes]:
    with Repository(store.path) as repo:
        tree = repo.tree(ref)
        return {path: repo.read_file(tree, path) for path in tree}


def test_a_kept_tree_reads_back_exactly_gitignore_and_all(tmp_path: Path) -> None:
    store = RevisionStore(tmp_path / "store")
    tree = _tree(
        tmp_path / "a",
        {".gitignore": "*.yaml\n", "apps/app.yaml": "kind: ConfigMap\n", "README": "x"},
    )

    assert store.record(SOURCE, "1" * 40, tree)

    ref = store.ref(SOURCE, "1" * 40)
    assert ref is not None
    assert _files(store, ref) == {
        ".gitignore": b"*.yaml\n",
        "apps/app.yaml": b"kind: ConfigMap\n",
        "README": b"x",
    }
    assert store.ref(SOURCE, "2" * 40) is None
    # A second store on the same directory (a restarted controller) finds it.
    assert RevisionStore(tmp_path / "store").ref(SOURCE, "1" * 40) == ref


def test_only_the_last_revisions_of_a_source_are_kept(tmp_path: Path) -> None:
    store = RevisionStore(tmp_path / "store", keep=2)
    other = source_key({"metadata": {"namespace": "team"}, "spec": {"sourceRef": {"name": "b"}}})
    for digit in "123":
        assert store.record(SOURCE, digit * 40, _tree(tmp_path / digit, {"f": digit}))
    assert store.record(other, "4" * 40, _tree(tmp_path / "4", {"f": "4"}))

    assert [store.ref(SOURCE, d * 40) is not None for d in "123"] == [False, True, True]
    assert store.ref(other, "4" * 40) is not None
    assert store.ref(other, "3" * 40) is None  # revisions are kept per source


def test_a_tree_with_a_git_entry_or_a_bad_name_is_not_kept(tmp_path: Path) -> None:
    store = RevisionStore(tmp_path / "store")
    nested = _tree(tmp_path / "nested", {"vendor/.git/config": "[core]\n", "a": "b"})

    assert not store.record(SOURCE, "1" * 40, nested)
    assert not store.record(SOURCE, "not-a-commit", _tree(tmp_path / "ok", {"a": "b"}))
    assert not store.record("../../escape", "1" * 40, _tree(tmp_path / "ok", {"a": "b"}))
    assert store.ref(SOURCE, "1" * 40) is None


def test_looking_a_revision_up_starts_no_process_once_the_refs_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every new revision is looked up before it is kept: that must not cost git processes."""
    store = RevisionStore(tmp_path / "store")
    assert store.record(SOURCE, "1" * 40, _tree(tmp_path / "a", {"f": "1"}))
    started: list[list[str]] = []
    real = revisions.run

    def counting(argv: list[str], **kwargs: Any) -> bytes:
        started.append(argv)
        return real(argv, **kwargs)

    monkeypatch.setattr(revisions, "run", counting)

    assert store.ref(SOURCE, "1" * 40) is not None
    assert store.ref(SOURCE, "2" * 40) is None
    assert started == []
    # A restarted controller reads the refs once, then answers from memory too.
    again = RevisionStore(tmp_path / "store")
    assert again.ref(SOURCE, "2" * 40) is None
    assert again.ref(SOURCE, "1" * 40) is not None
    assert [argv[2] for argv in started] == ["for-each-ref"]


def test_a_revision_interrupted_while_kept_is_absent_and_the_store_still_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keeping ends with the ref: stopped before it (a crash), the objects are only garbage."""
    store = RevisionStore(tmp_path / "store")
    assert store.record(SOURCE, "1" * 40, _tree(tmp_path / "a", {"f": "1"}))
    real = revisions.run

    def crashing(argv: list[str], **kwargs: Any) -> bytes:
        if "update-ref" in argv:
            raise CommandError(argv, "killed", code=-9)
        return real(argv, **kwargs)

    monkeypatch.setattr(revisions, "run", crashing)
    assert not store.record(SOURCE, "2" * 40, _tree(tmp_path / "b", {"f": "2", "g": "2"}))
    monkeypatch.setattr(revisions, "run", real)

    restarted = RevisionStore(tmp_path / "store")
    assert restarted.ref(SOURCE, "2" * 40) is None
    assert restarted.record(SOURCE, "3" * 40, _tree(tmp_path / "c", {"f": "3"}))
    ref = restarted.ref(SOURCE, "3" * 40)
    assert ref is not None
    assert _files(restarted, ref) == {"f": b"3"}
    assert _files(restarted, str(restarted.ref(SOURCE, "1" * 40))) == {"f": b"1"}
