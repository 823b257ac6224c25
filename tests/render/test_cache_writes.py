"""How the render cache writes its entries: what a render without objects keeps, and writing into
a cache directory removed while the cache is open."""

from __future__ import annotations

import hashlib
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
