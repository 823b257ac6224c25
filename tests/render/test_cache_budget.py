"""The render cache's byte budget: least recently used entries go first, entries a lookup found
stay, the masking key is never removed, and a reader that loses an entry gets a miss."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from core.model import Manifest
from core.render import evict
from core.render.cache import CachedRender, RenderCache
from core.render.evict import GRACE_SECONDS, Eviction
from tests.render.test_cache_writes import INPUTS, TREE

DAY = 24 * 3600.0


def _render(name: str) -> CachedRender:
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "a"}}
    return CachedRender.of([Manifest("v1", body, source="apps/web/settings.yaml")], INPUTS)


def _entry_bytes(root: Path) -> int:
    return sum(
        p.stat().st_size
        for top in ("renders", "receipts", "revisions")
        for p in (root / top).rglob("*")
        if p.is_file()
    )


def _age_everything(root: Path, days_ago: float) -> None:
    """Make every stored file look last used `days_ago` days ago."""
    when = os.path.getmtime(root) - days_ago * DAY
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (when, when))


def _filled(root: Path, names: list[str]) -> None:
    """Store one render per name, the first the least recently used."""
    for index, name in enumerate(names):
        RenderCache(root).store(name, TREE, _render(name))
        # Older names were used longer ago; everything is older than the grace period.
        for path in root.rglob("*.json"):
            if path.stat().st_mtime > os.path.getmtime(root) - DAY:
                when = os.path.getmtime(root) - (len(names) - index) * DAY
                os.utime(path, (when, when))


def test_the_least_recently_used_entries_go_and_recently_hit_ones_stay(tmp_path: Path) -> None:
    names = ["one", "two", "three", "four"]
    _filled(tmp_path, names)
    RenderCache(tmp_path).masking_key()
    key = (tmp_path / "masking.key").read_bytes()
    per_render = _entry_bytes(tmp_path) // len(names)
    # "one" is the oldest on disk, but a lookup finds it now: that makes it the most recent.
    assert RenderCache(tmp_path).lookup("one", TREE) is not None

    result = RenderCache(tmp_path).enforce_budget(2 * per_render)

    assert result.removed > 0
    assert _entry_bytes(tmp_path) <= 2 * per_render
    fresh = RenderCache(tmp_path)
    kept = [name for name in names if fresh.lookup(name, TREE) is not None]
    assert kept == ["one", "four"]
    assert (tmp_path / "masking.key").read_bytes() == key


def test_entries_used_within_the_grace_period_stay_over_budget(tmp_path: Path) -> None:
    RenderCache(tmp_path).store("recent", TREE, _render("recent"))

    result = RenderCache(tmp_path).enforce_budget(1)

    assert (result.removed, result.after) == (0, result.before)
    assert RenderCache(tmp_path).lookup("recent", TREE) is not None


def test_a_budget_of_one_byte_empties_the_cache_but_keeps_the_masking_key(tmp_path: Path) -> None:
    _filled(tmp_path, ["one", "two"])
    key = RenderCache(tmp_path).masking_key()

    RenderCache(tmp_path).enforce_budget(1, grace=0)

    assert _entry_bytes(tmp_path) == 0
    assert (tmp_path / "masking.key").read_bytes() == key
    assert RenderCache(tmp_path).masking_key() == key


def test_a_render_held_in_memory_and_evicted_elsewhere_is_a_miss(tmp_path: Path) -> None:
    reader = RenderCache(tmp_path)
    reader.store("web", TREE, _render("web"))
    assert reader.lookup("web", TREE) is not None
    _age_everything(tmp_path, 2)
    # Another process trims the cache; this reader still holds the render's index in memory.
    RenderCache(tmp_path).enforce_budget(1)
    reader._touched.clear()  # its next hit checks the disk again, as after `MARK_EVERY`

    assert reader.lookup("web", TREE) is None
    reader.store("web", TREE, _render("web"))
    found = reader.lookup("web", TREE)
    assert found is not None
    assert [m.ref.name for m in found.objects.values()] == ["web"]


def test_a_hit_marks_its_entry_used_once_per_process(tmp_path: Path) -> None:
    RenderCache(tmp_path).store("web", TREE, _render("web"))
    _age_everything(tmp_path, 2)
    (index,) = [p for p in (tmp_path / "renders").rglob("*.json") if ".bodies" not in p.name]
    cache = RenderCache(tmp_path)

    assert cache.lookup("web", TREE) is not None
    marked = index.stat().st_mtime
    assert marked > os.path.getmtime(tmp_path) - GRACE_SECONDS
    os.utime(index, (marked - DAY, marked - DAY))
    assert cache.lookup("web", TREE) is not None

    assert index.stat().st_mtime == marked - DAY


@pytest.mark.parametrize("name", ["masking.key", "tools/kustomize", "elsewhere/entry.json"])
def test_files_outside_the_entry_directories_are_never_removed(tmp_path: Path, name: str) -> None:
    _filled(tmp_path, ["one"])
    other = tmp_path / name
    other.parent.mkdir(parents=True, exist_ok=True)
    other.write_bytes(b"x" * 4096)
    _age_everything(tmp_path, 30)

    RenderCache(tmp_path).enforce_budget(1, grace=0)

    assert other.read_bytes() == b"x" * 4096


def test_a_long_lived_process_scans_again_only_when_the_budget_or_the_room_asks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _filled(tmp_path, ["one", "two", "three", "four"])
    per_render = _entry_bytes(tmp_path) // 4
    scans: list[int] = []
    real_enforce = evict.enforce

    def counted(root: str, max_bytes: int, *, grace: float) -> Eviction:
        scans.append(max_bytes)
        return real_enforce(root, max_bytes, grace=grace)

    monkeypatch.setattr(evict, "enforce", counted)
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    service = RenderCache(tmp_path)
    roomy = 100 * per_render

    service.enforce_budget(roomy)
    skipped = service.enforce_budget(roomy)  # same budget, a second later: no scan
    assert (scans, skipped.removed) == ([roomy], 0)
    assert skipped.after == _entry_bytes(tmp_path)

    service.enforce_budget(2 * per_render, grace=0)  # a lowered budget takes effect at once
    assert scans == [roomy, 2 * per_render]
    assert _entry_bytes(tmp_path) <= 2 * per_render

    # A budget the cache fills exactly leaves no room: every call scans.
    full = _entry_bytes(tmp_path)
    service.enforce_budget(full)
    service.enforce_budget(full)
    assert scans == [roomy, 2 * per_render, full, full]

    service.enforce_budget(roomy)
    service.enforce_budget(roomy)
    now[0] += 61
    service.enforce_budget(roomy)  # a minute later the budget is checked again
    assert scans == [roomy, 2 * per_render, full, full, roomy, roomy]
    RenderCache(tmp_path).enforce_budget(roomy)  # a new process always scans
    assert len(scans) == 7


def test_marks_survive_passes_that_remove_nothing_and_not_one_that_removes(
    tmp_path: Path,
) -> None:
    # A warm process trims after every preview. Re-marking every render on disk after each
    # would cost a large fleet's preview one utime per unit; a render a pass removed must miss.
    RenderCache(tmp_path).store("web", TREE, _render("web"))
    (index,) = [p for p in (tmp_path / "renders").rglob("*.json") if ".bodies" not in p.name]
    cache = RenderCache(tmp_path)
    assert cache.lookup("web", TREE) is not None  # marked on disk
    marked = index.stat().st_mtime

    os.utime(index, (marked - DAY, marked - DAY))
    cache.enforce_budget(1 << 30)  # a pass: nothing to remove
    cache.enforce_budget(1 << 30)  # the same budget within the minute: skipped
    cache.enforce_budget(1 << 31)  # another budget: a pass, nothing to remove
    assert cache.lookup("web", TREE) is not None
    kept_mark = index.stat().st_mtime

    cache.enforce_budget(1, grace=0)  # a pass that removes the render

    assert kept_mark == marked - DAY  # no utime: the process's mark still held
    assert cache.lookup("web", TREE) is None  # the mark was forgotten: a miss, not a stale hit
