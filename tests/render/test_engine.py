"""The long-lived render engine: what carries over between previews, and what is bounded."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from core.model import Manifest, ObjectRef
from core.render.cache import CachedRender, RenderCache
from core.render.engine import RenderEngine
from core.render.unit import RenderOptions


class _Tree:
    """A revision whose every file has the same content: enough for the cache's receipts."""

    def digest(self, paths: Iterable[str] | None = None) -> str:
        return "d" + ",".join(sorted(paths or []))

    def listdir(self, path: str = "") -> list[str]:
        return ["a.yaml"]


def _render(name: str) -> CachedRender:
    ref = ObjectRef("", "ConfigMap", "default", name)
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}
    return CachedRender.of([Manifest("v1", body, "a.yaml", ref)], ["a.yaml"])


def test_each_preview_gets_its_own_observer_deadline_and_chart_puller(tmp_path: Path) -> None:
    engine = RenderEngine(RenderOptions(Path("kustomize"), Path("helm")), RenderCache(tmp_path))
    first = engine.settings()
    first.observer.rendered_unit("Kustomization/flux-system/apps")
    first.known_secrets.add(b"hunter2-secret-value")
    first.chart_puller.hosts_used.add("charts.example.com:443")

    second = engine.settings()

    assert second.options is first.options
    assert second.cache is first.cache
    assert second.observer.rendered == []
    assert second.known_secrets.scrub("hunter2-secret-value") == "hunter2-secret-value"
    assert second.chart_puller.hosts_used == set(), "one preview's hosts never widen another's"
    assert second.deadline is None


def test_the_observer_reports_each_render_to_its_callback(tmp_path: Path) -> None:
    seen: list[str] = []
    engine = RenderEngine(RenderOptions(Path("kustomize"), Path("helm")), RenderCache(tmp_path))
    settings = engine.settings(on_render=seen.append)

    settings.observer.rendered_unit("HelmRelease/apps/web")

    assert seen == ["HelmRelease/apps/web"]
    assert settings.observer.rendered == ["HelmRelease/apps/web"]


def test_the_cache_keeps_a_bounded_number_of_renders_in_memory(tmp_path: Path) -> None:
    cache = RenderCache(tmp_path, memory_entries=3)
    tree = _Tree()
    for index in range(10):
        cache.store(f"spec-{index}", tree, _render(f"cm-{index}"))
        assert cache.lookup(f"spec-{index}", tree) is not None

    assert cache.memory_sizes() == (3, 3)
    # What memory dropped is still on disk: an old spec is found again, and stays bounded.
    old = cache.lookup("spec-0", tree)
    assert old is not None
    assert list(old.objects) == [ObjectRef("", "ConfigMap", "default", "cm-0")]
    assert cache.memory_sizes() == (3, 3)


def test_the_most_recently_used_render_stays_in_memory(tmp_path: Path) -> None:
    cache = RenderCache(tmp_path, memory_entries=2)
    tree = _Tree()
    cache.store("spec-a", tree, _render("a"))
    cache.store("spec-b", tree, _render("b"))
    kept = cache.lookup("spec-a", tree)
    cache.store("spec-c", tree, _render("c"))

    assert cache.lookup("spec-a", tree) is kept, "a used render is not evicted first"
