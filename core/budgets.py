"""The budgets of one preview: how much time, how many units and how much nesting it may use.

A pull request is hostile: a Kustomization that renders a renamed copy of itself, thousands of
units, or tools that each take their full time bound would keep a preview running for ever. These
budgets bound the whole preview, not each call. Each has a default that a real fleet stays far
below and a `tidegate preview` flag that raises it; a budget that runs out fails the unit (or the
preview) with a message naming both (`core.errors.BudgetError`). The sizes of YAML documents
live with the parser (`core.yamlio.YamlLimits`), the size of tool output with the subprocess seam.

Data and clock arithmetic only: this module starts nothing and reads no files.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from core.errors import BudgetError

__all__ = ["Budgets", "Deadline"]


@dataclass(frozen=True)
class Budgets:
    """Limits on one preview as a whole."""

    timeout: float = 900.0
    """Wall-clock seconds for the whole preview, both revisions and every cluster."""
    max_units: int = 5000
    """Flux units (Kustomizations and HelmReleases) rendered per revision, all clusters together."""
    max_depth: int = 16
    """Levels of Flux units below a cluster entry point (a unit that a unit renders is one more)."""
    max_report_bytes: int = 16 << 20
    """Size of the JSON report; the Markdown comment has its own budget in characters."""
    max_report_chars: int = 65_000
    """Size of the Markdown comment (GitHub refuses a body over 65,536 characters)."""


class Deadline:
    """The moment a preview must be done by, shared by every render of the preview.

    Monotonic, so a clock change cannot stretch or cut it. Thread-safe: it only reads the clock.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left; zero or less once it has passed."""
        return self._end - time.monotonic()

    @property
    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self.remaining() <= 0

    def error(self) -> BudgetError:
        """The error a unit fails with once the deadline has passed."""
        return BudgetError(
            f"the preview ran out of its time budget of {self.seconds:g}s", flag="--timeout"
        )

    def check(self) -> None:
        """Raise `BudgetError` once the deadline has passed."""
        if self.expired:
            raise self.error()

    def cancel(self) -> None:
        """End the preview now: renders not yet started fail at once (used on SIGTERM)."""
        self._end = time.monotonic() - 1

    def bound(self, timeout: float) -> float:
        """Return a tool's timeout cut to what is left of the preview (at least a moment)."""
        return max(0.001, min(timeout, self.remaining()))
