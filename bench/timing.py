"""Wall and CPU timing shared by the benchmarks.

CPU is this process's user and system time plus that of its finished children (kustomize, helm,
git), so a bench that shells out is charged for what its tools cost. Nothing here judges a
figure: the benches report medians, and docs/benchmarks.md says what they mean.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

__all__ = ["cpu_seconds", "timed_medians"]


def cpu_seconds() -> float:
    """User and system seconds of this process and of its finished children."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def timed_medians(run: Callable[[], Any], repeat: int) -> dict[str, float]:
    """Run `run` `repeat` times; the median wall and CPU milliseconds."""
    walls, cpus = [], []
    for _ in range(repeat):
        started, cpu = time.perf_counter(), cpu_seconds()
        run()
        walls.append(time.perf_counter() - started)
        cpus.append(cpu_seconds() - cpu)
    return {
        "wall_ms": round(statistics.median(walls) * 1000, 2),
        "cpu_ms": round(statistics.median(cpus) * 1000, 2),
    }
