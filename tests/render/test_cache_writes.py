"""How the render cache writes its entries: what a render without objects keeps, a set of paths
kept as a receipt alone, and writing into a cache directory removed while the cache is open."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable
from pathlib import Path

from core.model import Manifest
from core.render.cache import CachedRender, RenderCache


class _Files:
    """A revision of fixed files (path -> content id) as the cache sees it."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    def digest(self, paths: Iterable[str] | None = None) -> str:
        chosen = sorted(self.files if paths is None else set(paths))
        text = "".join(f"{p}\0{self.files.get(p, '-')}\n" for p in chosen)
        return hashlib.sha256(text.encode()).hexdigest()

    def listdir(self, path: str = "") -> list[str]:
        prefix = f"{path}/" if path else ""
        names = {p[len(prefix) :].split("/")[0] for p in self.files if p.startswith(prefix)}
        if not names:
            raise NotADirectoryError(path)
        return sorted(names)


TREE = _Files({"apps/web/kustomization.yaml": "1", "apps/web/settings.yaml": "2"})
INPUTS = ("apps/web/kustomization.yaml", "apps/web/settings.yaml")


def test_a_render_without_objects_is_kept_without_a_bodies_file(tmp_path: Path) -> None:
    cache = RenderCache(tmp_path)

    cache.store("footprint", TREE, CachedRender.of((), INPUTS))

    stored = [p.name for p in (tmp_path / "renders").rglob("*.json")]
    assert len(stored) == 1
    assert not any(name.endswith(".bodies.json") for name in stored)
    found = RenderCache(tmp_path).lookup("footprint", TREE)
    assert found is not None
    assert (dict(found.objects), found.inputs) == ({}, frozenset(INPUTS))


def test_a_render_with_objects_keeps_its_bodies(tmp_path: Path) -> None:
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "a"}}
    manifest = Manifest("v1", body, source="apps/web/settings.yaml")
    RenderCache(tmp_path).store("web", TREE, CachedRender.of([manifest], INPUTS))

    found = RenderCache(tmp_path).lookup("web", TREE)

    assert found is not None
    assert [m.body for m in found.objects.values()] == [body]


def test_a_cache_directory_removed_while_open_is_made_again(tmp_path: Path) -> None:
    cache = RenderCache(tmp_path / "cache")
    cache.store("first", TREE, CachedRender.of((), INPUTS))
    shutil.rmtree(tmp_path / "cache" / "renders")
    shutil.rmtree(tmp_path / "cache" / "receipts")

    cache.store("first", TREE, CachedRender.of((), INPUTS))

    assert RenderCache(tmp_path / "cache").lookup("first", TREE) is not None


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_kept_inputs_cost_one_file_and_are_found_while_the_tree_holds_them(tmp_path: Path) -> None:
    consulted = "apps/web/."  # a walk's consulted path, as `core.render.affected` marks it
    RenderCache(tmp_path).keep_inputs("proof", TREE, [*INPUTS, consulted])

    assert [f for f in _files(tmp_path) if f.startswith(("renders", "receipts"))] == [
        "receipts/pr/proof.json"
    ]
    found = RenderCache(tmp_path).find_inputs("proof", TREE)
    assert found == frozenset({*INPUTS, consulted})
    edited = _Files({**TREE.files, "apps/web/settings.yaml": "3"})
    listed = _Files({**TREE.files, "apps/web/new.yaml": "4"})  # a name added where it looked
    assert RenderCache(tmp_path).find_inputs("proof", edited) is None
    assert RenderCache(tmp_path).find_inputs("proof", listed) is None


def test_kept_inputs_keep_a_few_states_of_one_key(tmp_path: Path) -> None:
    cache = RenderCache(tmp_path)
    edited = _Files({**TREE.files, "apps/web/settings.yaml": "3"})
    cache.keep_inputs("proof", TREE, INPUTS)
    cache.keep_inputs("proof", edited, INPUTS)
    cache.keep_inputs("proof", edited, INPUTS)  # the same state again replaces, not repeats

    reopened = RenderCache(tmp_path)
    assert reopened.find_inputs("proof", TREE) == frozenset(INPUTS)
    assert reopened.find_inputs("proof", edited) == frozenset(INPUTS)
    assert len(json.loads((tmp_path / "receipts/pr/proof.json").read_text())) == 2


def test_inputs_kept_as_a_render_without_objects_are_found(tmp_path: Path) -> None:
    # What earlier versions kept for a walk: a render without objects, with its receipt.
    RenderCache(tmp_path).store("proof", TREE, CachedRender.of((), INPUTS))

    assert RenderCache(tmp_path).find_inputs("proof", TREE) == frozenset(INPUTS)
