"""The render cache's byte budget: what one eviction pass costs, with and without downloads.

`tidegate preview` (and each job of the PR service) runs one pass of `core.render.evict` after
the preview. The pass lists every entry, so its cost grows with the cache: renders (an index and
a bodies file each), receipts, memos, and the chart and OCI downloads the budget also covers,
where an unpacked OCI artifact is a directory whose files are all sized. This builds a synthetic
cache of `--renders` renders, `--charts` chart archives (with their version pointers) and
`--artifacts` OCI artifacts (manifest, blob and an unpacked tree of `--files` files), and times:

- renders only: a cache holding just the renders (what a pass scanned before downloads counted);
- renders and downloads: the same renders with every download, all within the budget, so the
  pass removes nothing (the usual case after a preview);
- over budget: the same cache with a budget of half its bytes, everything older than the grace
  period, so the pass removes the least recently used half (timed once: it empties as it goes).

For each: the median wall time of `--repeat` passes, their CPU time (user + system, children
included) and the load average. Run from the repository root:
`.venv/bin/python -m bench.cache_budget [--renders 3000 --charts 300 --artifacts 100 --files 40]`.
It prints JSON; nothing asserts a target.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

from bench.timing import timed_medians
from core.render import evict

__all__ = ["main"]

_DAY = 24 * 3600.0


def _digest(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def _renders(root: Path, count: int) -> None:
    renders = root / "renders"
    for index in range(count):
        key = _digest("render", index)
        folder = renders / key[:2]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{key}.json").write_bytes(b"{}" + b" " * 2000)
        (folder / f"{key}.bodies.json").write_bytes(b"[]" + b" " * 6000)


def _downloads(root: Path, charts: int, artifacts: int, files: int) -> None:
    for index in range(charts):
        archive = root / "charts" / "archives" / f"{_digest('chart', index)[:40]}.tgz"
        archive.parent.mkdir(parents=True, exist_ok=True)
        archive.write_bytes(b"\x1f\x8b" + b"c" * 20_000)
        pointer = root / "charts" / "resolved" / f"{_digest('pointer', index)[:32]}.json"
        pointer.parent.mkdir(parents=True, exist_ok=True)
        pointer.write_text(json.dumps({"archive": archive.name, "url": "https://charts/x.tgz"}))
    for index in range(artifacts):
        digest = _digest("artifact", index)
        for kind, size in (("manifests", 600), ("blobs", 40_000)):
            path = root / "oci" / kind / "sha256" / digest
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"o" * size)
        tree = root / "oci" / "unpacked" / digest / "deploy"
        tree.mkdir(parents=True)
        for number in range(files):
            (tree / f"object-{number}.yaml").write_bytes(b"kind: ConfigMap\n" + b"d" * 1500)


def _age(root: Path) -> None:
    """Make every entry older than the grace period, each a second apart (a strict LRU order)."""
    when = time.time() - 2 * _DAY
    for number, path in enumerate(sorted(root.rglob("*"))):
        os.utime(path, (when + number, when + number))


def main(argv: list[str] | None = None) -> int:
    """Measure and print the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=3000)
    parser.add_argument("--charts", type=int, default=300)
    parser.add_argument("--artifacts", type=int, default=100)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tidegate-bench-budget-") as scratch:
        only, full = Path(scratch) / "renders-only", Path(scratch) / "with-downloads"
        for root in (only, full):
            _renders(root, args.renders)
        _downloads(full, args.charts, args.artifacts, args.files)
        total = evict.enforce(str(full), 1 << 62).before
        files = sum(1 for path in full.rglob("*") if path.is_file())
        renders_only = timed_medians(lambda: evict.enforce(str(only), 1 << 62), args.repeat)
        with_downloads = timed_medians(lambda: evict.enforce(str(full), 1 << 62), args.repeat)
        _age(full)
        result: list[evict.Eviction] = []
        over = timed_medians(lambda: result.append(evict.enforce(str(full), total // 2)), 1)
    report = {
        "cache": {"files": files, "bytes": total},
        "renders_only": renders_only,
        "renders_and_downloads_within_budget": with_downloads,
        "over_budget_removing_half": {**over, "removed_entries": result[0].removed},
        "downloads_over_renders_only_wall": round(
            with_downloads["wall_ms"] / renders_only["wall_ms"], 2
        ),
        "load_average_1m": round(os.getloadavg()[0], 1),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
