"""The review worker's long-lived preview process: one warm `tidegate preview` for many jobs.

Starting `tidegate preview` afresh for each pull request pays the interpreter, its imports and a
cold render cache every time. `PreviewEngine` starts `cli.preview_server` once and sends it each
job's preview flags; the process keeps its render cache warm between jobs, so a one-file change
costs about one kustomize build. It runs through the command runner's `Coprocess`: the minimal
environment (none of the service's tokens, keys or webhook secrets), the memory bound, and a
time bound per preview after which the process is killed.

A process that died or timed out is started again for the next job; after `recycle_after`
previews it is replaced anyway, so nothing the engine keeps can grow without bound. One preview
at a time: callers in other threads wait for the one running.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from core.errors import CommandError
from core.host.command import Coprocess, Limits

__all__ = ["PreviewEngine"]


class PreviewEngine:
    """Runs `tidegate preview` requests in one long-lived process, started on first use."""

    def __init__(self, *, timeout: float = 1800.0, recycle_after: int = 200) -> None:
        self._limits = Limits(timeout=timeout, env={"PYTHONPATH": _source_root()})
        self._recycle_after = max(1, recycle_after)
        self._process: Coprocess | None = None
        self._served = 0
        self._lock = threading.Lock()
        self.starts = 0
        """How many processes were started (a restart after a failure counts)."""

    def preview(self, argv: Sequence[str]) -> tuple[int, str]:
        """Run `tidegate preview argv`; return its exit code and its stderr.

        Raises:
            CommandError: the process could not start, died, or the preview timed out (the
                process is then gone; the next call starts another).
        """
        with self._lock:
            process = self._ready()
            try:
                process.send(json.dumps({"argv": list(argv)}).encode() + b"\n")
                answer = json.loads(process.read_line())
            except (CommandError, ValueError):
                self._stop()
                raise
            self._served += 1
            if self._served >= self._recycle_after:
                self._stop()
        return int(answer["code"]), str(answer["stderr"])

    def close(self) -> None:
        """Stop the process (it ends at the end of its input)."""
        with self._lock:
            self._stop()

    def _ready(self) -> Coprocess:
        if self._process is None or not self._process.alive:
            self._stop()
            argv = [sys.executable, "-m", "cli.preview_server"]
            self._process = Coprocess(argv, limits=self._limits)
            self.starts += 1
        return self._process

    def _stop(self) -> None:
        if self._process is not None:
            self._process.close()
        self._process = None
        self._served = 0


def _source_root() -> str:
    return str(Path(__file__).resolve().parent.parent)
