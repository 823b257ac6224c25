"""The long-lived part of rendering: the operator's options and the render cache, kept warm.

A service that previews one change after another (the pull-request app's worker, the
reconciler's predictor) keeps one `RenderEngine` for its whole life and asks it for fresh
`RenderSettings` for each preview: the options and the cache (its parsed renders and receipts,
bounded in memory) carry over, while everything a preview observes (units rendered, Secret values
met, chart hosts pulled from, its deadline) starts empty, so nothing grows with the number of
previews and nothing one preview learned reaches another.

It runs nothing itself and holds no repository: those belong to the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.budgets import Deadline
from core.render.cache import RenderCache
from core.render.unit import RenderObserver, RenderOptions, RenderSettings

__all__ = ["RenderEngine"]


@dataclass(frozen=True)
class RenderEngine:
    """Options and cache shared by every preview of a long-lived process."""

    options: RenderOptions
    cache: RenderCache

    def settings(
        self,
        *,
        on_render: Callable[[str], None] | None = None,
        deadline: Deadline | None = None,
    ) -> RenderSettings:
        """Settings for one preview, with its own observer (and deadline, if given)."""
        return RenderSettings(
            self.options, self.cache, RenderObserver(on_render=on_render), deadline=deadline
        )
