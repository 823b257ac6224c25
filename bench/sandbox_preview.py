"""`tidegate preview` with and without the render sandbox, on the synthetic fleet of `bench.fleet`.

For each change, the incremental preview (a cache warmed on the base, copied fresh for every run,
as in `bench.preview_bench`) runs `--repeat` times with `TIDEGATE_SANDBOX=off` and as many times
with the sandbox (the default), alternating so that load on the machine hits both alike. Prints
the median wall time of each and their ratio.

    python -m bench.sandbox_preview --work "$(mktemp -d)" --change one-file --change rename

Warming the cache renders all 468 units of the base; `--warm DIR --port P` reuses a cache a
previous run warmed on a fleet generated with the same chart port (the fleet is deterministic).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from bench import fleet as fleetgen
from bench import preview_bench as bench
from devenv.ports import free_port


@contextmanager
def sandbox_setting(value: str | None) -> Iterator[None]:
    """Set `TIDEGATE_SANDBOX` for the commands started inside the block."""
    old = os.environ.pop("TIDEGATE_SANDBOX", None)
    if value is not None:
        os.environ["TIDEGATE_SANDBOX"] = value
    try:
        yield
    finally:
        os.environ.pop("TIDEGATE_SANDBOX", None)
        if old is not None:
            os.environ["TIDEGATE_SANDBOX"] = old


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="an empty working directory")
    parser.add_argument("--port", type=int, default=0, help="chart server port (default: free)")
    parser.add_argument("--warm", type=Path, help="a cache already warmed on the base")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each kind (median)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per command")
    parser.add_argument(
        "--change", dest="changes", action="append", choices=("one-file", "rename", "base")
    )
    ours = parser.parse_args(argv)
    port = ours.port or free_port()
    args = bench.parse_args(
        ["--work", str(ours.work), "--port", str(port), "--timeout", str(ours.timeout)]
    )
    run = bench.prepare(args, ours.work)
    print("| change | incremental, no sandbox | incremental, sandbox | ratio |")
    print("|---|---:|---:|---:|")
    with bench.serve_charts(run.fleet.charts, port):
        if ours.warm is not None:
            tool = bench.Tidegate(
                Path(sys.executable).parent / "tidegate",
                run.fleet.repo,
                run.kustomize,
                run.helm,
                None,
                ours.timeout,
                bench._scratch(ours.work, "tidegate"),
            )
            warm = ours.warm
        else:
            with sandbox_setting("off"):
                ready = bench.setup_tidegate(run)
            if ready is None:
                print(run.tidegate_error, file=sys.stderr)
                return 2
            tool, warm = ready
        for change in run.fleet.changes:
            if ours.changes and change.name not in ours.changes:
                continue
            plain: list[float] = []
            boxed: list[float] = []
            for _ in range(ours.repeat):
                for setting, into in (("off", plain), (None, boxed)):
                    with sandbox_setting(setting):
                        sample = bench.tidegate_incremental(
                            tool, warm, fleetgen.BASE_BRANCH, change.branch
                        )
                    into.append(sample.seconds)
                    print(f"{change.name} sandbox={setting or 'on'}: {sample.seconds:.2f} s",
                          file=sys.stderr)  # fmt: skip
            off, on = statistics.median(plain), statistics.median(boxed)
            print(f"| {change.name} | {off:.2f} s | {on:.2f} s | {on / off:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
