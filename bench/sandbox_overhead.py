"""Per-process cost of the render sandbox: the same tool run with and without confinement.

Runs `kustomize build` of a small kustomization (and `true`, which isolates the wrapper's own
cost) through `core.host.command.run`, alternating unconfined and confined runs so that load on
the machine hits both alike, and prints the median wall time and the median CPU time (user +
system of the child and everything it ran) of each, and the difference.

    python -m bench.sandbox_overhead --rounds 30
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from core.host.command import Confinement, run
from core.host.sandbox import Sandbox
from devenv import toolchain

KUSTOMIZATION = """\
resources: [deploy.yaml]
configMapGenerator:
- name: settings
  literals: [mode=fast]
"""
DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx:1.27}]}
"""


def sample(argv: Sequence[str], confine: Confinement | None) -> tuple[float, float]:
    """Return (wall seconds, child CPU seconds) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    run(argv, confine=confine)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def compare(name: str, argv: Sequence[str], confine: Confinement, rounds: int) -> dict[str, float]:
    plain: list[tuple[float, float]] = []
    boxed: list[tuple[float, float]] = []
    sample(argv, None)  # warm the page cache
    sample(argv, confine)
    for _ in range(rounds):
        plain.append(sample(argv, None))
        boxed.append(sample(argv, confine))
    result = {
        "plain_wall_ms": statistics.median(w for w, _ in plain) * 1000,
        "sandbox_wall_ms": statistics.median(w for w, _ in boxed) * 1000,
        "plain_cpu_ms": statistics.median(c for _, c in plain) * 1000,
        "sandbox_cpu_ms": statistics.median(c for _, c in boxed) * 1000,
    }
    print(
        f"| {name} | {result['plain_wall_ms']:.1f} ms | {result['sandbox_wall_ms']:.1f} ms"
        f" | +{result['sandbox_wall_ms'] - result['plain_wall_ms']:.1f} ms"
        f" | {result['plain_cpu_ms']:.1f} ms | {result['sandbox_cpu_ms']:.1f} ms"
        f" | +{result['sandbox_cpu_ms'] - result['plain_cpu_ms']:.1f} ms |"
    )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="runs of each kind (median)")
    args = parser.parse_args(argv)
    jail = Sandbox.probe("required")
    kustomize = toolchain.binary("kustomize")
    true = shutil.which("true")
    if true is None:
        print("no `true` on PATH", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="sandbox-bench-") as scratch:
        work = Path(scratch) / "app"
        home = Path(scratch) / "home"
        work.mkdir()
        home.mkdir()
        (work / "kustomization.yaml").write_text(KUSTOMIZATION)
        (work / "deploy.yaml").write_text(DEPLOY)
        confine = jail.confine(read=[work], write=[home])
        assert confine is not None
        print(f"Landlock ABI {jail.abi}, {args.rounds} rounds, medians")
        print("| process | wall | in sandbox | difference | CPU | in sandbox | difference |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        compare("`true`", [true], confine, args.rounds)
        build = [str(kustomize), "build", str(work), "--load-restrictor", "LoadRestrictionsNone"]
        compare("`kustomize build` (small)", build, confine, args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
