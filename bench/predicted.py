"""Benchmark what predicted-vs-applied adds to a reconcile, on the synthetic fleet.

The fleet (`bench.fleet`: 3 clusters x 150 apps, charts served on 127.0.0.1) is generated as a
git repository with its change branches. Two costs are measured, as the reconciler pays them
after an apply:

1. The prediction: the offline preview of the last applied revision -> the new one for the
   changed cluster, through the shared engine (`RepositoryPredictor`), for the one-app change
   (`change/image-tag`): first with the base revision's renders in the cache (the head's changed
   unit is rendered), then fully warm (`--repeat` runs), and with `--cold N` also cold.
2. The comparison: `core.predicted.compare` plus the Markdown report, over the fleet's full
   change set (the base branch planned against an empty base, every object a creation), each
   unit compared with a change set equal to its prediction, and again with one unpredicted
   object in every tenth unit (drift reverted).

Reported: median wall and CPU seconds over `--repeat` runs, units and changes. The reconcile
itself is not measured here (see docs/benchmarks.md).

Run from the repository root: `.venv/bin/python -m bench.predicted [--repeat 5]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import fleet as fleetgen
from bench.preview_bench import serve_charts
from core.changes import Action, UnitPlan
from core.fetch.policy import FetchPolicy
from core.model import ObjectRef, UnitKind, UnitRef
from core.plan.plan import plan_preview
from core.predicted import Applied, compare
from core.preview import PreviewRequest, find_clusters, render_revision, run_preview
from core.render.cache import RenderCache
from core.render.engine import RenderEngine
from core.render.unit import RenderOptions, RenderSettings
from core.repo.git import Repository
from core.report.predicted import comparison_markdown
from devenv import toolchain
from devenv.ports import free_port
from reconciler.notification.predictor import RepositoryPredictor

_OUTCOME = {Action.CREATE: Applied.CREATED, Action.UPDATE: Applied.CONFIGURED}


def _timed(call: Callable[[], object]) -> tuple[float, float]:
    started, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - started, time.process_time() - cpu


def _median(samples: list[tuple[float, float]]) -> dict[str, float]:
    return {
        "wall_s_median": round(statistics.median(s[0] for s in samples), 4),
        "cpu_s_median": round(statistics.median(s[1] for s in samples), 4),
    }


def _applied(plan: UnitPlan, drift: bool) -> dict[ObjectRef, Applied]:
    outcomes = {c.ref: _OUTCOME.get(c.action, Applied.UNCHANGED) for c in plan.changes}
    if drift:
        outcomes[ObjectRef("", "ConfigMap", plan.unit.namespace, "edited-by-hand")] = (
            Applied.CONFIGURED
        )
    return outcomes


def _compare_all(units: list[UnitPlan], drift_every: int) -> int:
    mismatched = 0
    for index, plan in enumerate(units):
        drift = drift_every > 0 and index % drift_every == 0
        comparison = compare(plan, _applied(plan, drift))
        if not comparison.matched:
            mismatched += 1
            comparison_markdown(comparison, plan.unit, "main@sha1:" + "0" * 40)
    return mismatched


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.predicted")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--cold", type=int, default=0, help="also predict with a cold render cache, N times"
    )
    args = parser.parse_args(argv)
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tidegate-predicted-bench-") as scratch:
        work = Path(scratch)
        port = free_port()
        print("generating the fleet", file=sys.stderr)
        fleet = fleetgen.generate(
            work / "gen", chart_url=f"http://127.0.0.1:{port}", helm=fleetgen.pinned_tool("helm")
        )

        options = RenderOptions(
            kustomize=fleetgen.pinned_tool("kustomize"),
            helm=fleetgen.pinned_tool("helm"),
            jobs=args.jobs,
            fetch_policy=FetchPolicy(allowed_hosts=None, allow_loopback=True),
        )

        def engine(cache: Path) -> RenderEngine:
            return RenderEngine(options, RenderCache(cache))

        change = next(c for c in fleet.changes if c.name == "one-file")
        base = f"main@sha1:{fleet.base_sha}"
        head = f"main@sha1:{fleet.change_shas[change.name]}"
        cluster = "clusters/staging"  # the one-app change edits a staging overlay
        with serve_charts(fleet.charts, port):
            with Repository(fleet.repo) as repo:
                tree = repo.tree(fleet.base_sha)
                print("rendering the base branch", file=sys.stderr)
                # A persistent cache: the fleet is the same every time, so a second run of the
                # bench renders only the HelmReleases (their chart URL names this run's port).
                # It is also the warm cache the prediction uses: the base revision's renders
                # are in it, as they are after the pull request's own preview.
                warm_engine = engine(toolchain.cache_root() / "bench-predicted")
                renders = render_revision(
                    repo, tree, find_clusters(repo, tree), warm_engine.settings()
                )
            print("previewing the change (warms the cache)", file=sys.stderr)
            first_started, first_cpu = time.perf_counter(), time.process_time()
            unit = _changed_unit(
                fleet.repo,
                warm_engine.settings(),
                fleet.base_sha,
                fleet.change_shas[change.name],
                cluster,
            )
            first = (time.perf_counter() - first_started, time.process_time() - first_cpu)
            warm = RepositoryPredictor(fleet.repo, cluster, warm_engine)
            print("predicting (cold, then warm)", file=sys.stderr)
            cold = [
                _timed(
                    lambda i=i: RepositoryPredictor(
                        fleet.repo, cluster, engine(work / f"cold-{i}")
                    )(unit, base, head)
                )
                for i in range(args.cold)
            ]
            hot = [_timed(lambda: warm(unit, base, head)) for _ in range(args.repeat)]
        plan = warm(unit, base, head)
        assert plan is not None
        report["one_app_change"] = {
            "unit": str(unit),
            "previewed_changes": len(plan.changes),
            "prediction_base_warm_head_rendered": _median([first]),
            "prediction_cold": _median(cold) if cold else "not run (--cold 0)",
            "prediction_warm": _median(hot),
            "compare_and_report": _median(
                [_timed(lambda: _compare_all([plan], 1)) for _ in range(args.repeat)]
            ),
        }
    full = plan_preview("0" * 40, "head", {}, renders)
    units = [u for c in full.clusters for u in c.units if u.unit.kind is UnitKind.KUSTOMIZATION]
    changes = sum(len(u.changes) for u in units)
    report["full_fleet"] = {
        "units": len(units),
        "changes": changes,
        "all_matched": _median(
            [_timed(lambda: _compare_all(units, 0)) for _ in range(args.repeat)]
        ),
        "drift_in_every_tenth_unit": _median(
            [_timed(lambda: _compare_all(units, 10)) for _ in range(args.repeat)]
        ),
    }
    report["load_average_1m"] = round(os.getloadavg()[0], 1)
    print(json.dumps(report, indent=2))
    return 0


def _changed_unit(
    repository: Path, settings: RenderSettings, base: str, head: str, cluster: str
) -> UnitRef:
    """The one unit the one-app change changes, from the preview of the change."""
    request = PreviewRequest(base=base, head=head, clusters=(cluster,))
    with Repository(repository) as repo:
        preview = run_preview(repo, request, settings)
    [changed] = [u.unit for c in preview.clusters for u in c.units if u.changes]
    return changed


if __name__ == "__main__":
    raise SystemExit(main())
