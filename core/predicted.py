"""Predicted vs applied: does what an apply changed match what the preview said it would?

The preview of A -> B for one unit (`UnitPlan`, from the shared engine) is compared with the
change set the reconciler's apply produced for the same unit (each object `created`,
`configured`, `unchanged`, `deleted` or `skipped`, as Flux's apply engine names them). The rules:

- a predicted `create` expects `created`; `update` expects `configured`; `delete` expects
  `deleted`; an `orphan` expects the object not to be deleted;
- a `move` into the unit and an `unknown` accept any outcome: the preview itself said it cannot
  tell which one Flux takes;
- an object the apply changed without a predicted change is a difference (drift reverted, a
  field the server defaults, an object another controller also writes);
- an object with a predicted change the apply left alone (or never reported) is a difference;
- `skipped` objects (reconcile disabled) and `unchanged` objects without a prediction say nothing.

The comparison is pure: no cluster, no files, no clock. It reads identities and actions only, never
an object's body, so a report built from it cannot carry a Secret value.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from core.changes import Action, UnitPlan
from core.model import ObjectRef

__all__ = ["Applied", "Comparison", "Difference", "compare"]


class Applied(enum.StrEnum):
    """What the apply did to one object (fluxcd/pkg/ssa's action names)."""

    CREATED = "created"
    CONFIGURED = "configured"
    UNCHANGED = "unchanged"
    DELETED = "deleted"
    SKIPPED = "skipped"


# The outcomes each predicted action accepts; None accepts any.
_EXPECTED: Mapping[Action, frozenset[Applied] | None] = {
    Action.CREATE: frozenset({Applied.CREATED}),
    Action.UPDATE: frozenset({Applied.CONFIGURED}),
    Action.DELETE: frozenset({Applied.DELETED}),
    Action.ORPHAN: frozenset({Applied.UNCHANGED, Applied.SKIPPED}),
    Action.MOVE: None,
    Action.UNKNOWN: None,
}
_CHANGED = frozenset({Applied.CREATED, Applied.CONFIGURED, Applied.DELETED})


@dataclass(frozen=True)
class Difference:
    """One object whose applied outcome differs from its prediction."""

    ref: ObjectRef
    predicted: Action | None
    """None: the preview predicted no change."""
    applied: Applied | None
    """None: the apply did not report the object."""

    @property
    def explanation(self) -> str:
        """What the difference usually means, in a sentence."""
        if self.predicted is None:
            return (
                f"{self.applied} without a change in the preview: drift reverted, a field the "
                "server defaults, or an object another controller writes"
            )
        if self.applied in (None, Applied.UNCHANGED, Applied.SKIPPED):
            return f"previewed as {self.predicted} but not changed: the cluster already had it"
        if self.predicted is Action.CREATE and self.applied is Applied.CONFIGURED:
            return "previewed as create but it already existed in the cluster"
        if self.predicted is Action.UPDATE and self.applied is Applied.CREATED:
            return "previewed as update but it was missing from the cluster"
        return f"previewed as {self.predicted} but {self.applied}"


@dataclass(frozen=True)
class Comparison:
    """The outcome for one unit at one revision."""

    differences: tuple[Difference, ...]
    predicted: int
    """Objects the preview said would change."""
    changed: int
    """Objects the apply changed."""

    @property
    def matched(self) -> bool:
        """Whether the apply did exactly what the preview said."""
        return not self.differences

    @property
    def headline(self) -> str:
        """`applied as previewed` or `applied with N difference(s)`."""
        if self.matched:
            return "applied as previewed"
        count = len(self.differences)
        return f"applied with {count} difference{'s' if count != 1 else ''}"


def compare(predicted: UnitPlan, applied: Mapping[ObjectRef, Applied]) -> Comparison:
    """Compare one unit's previewed changes with what its apply did."""
    expectations = {change.ref: change.action for change in predicted.changes}
    differences = [
        *_unfulfilled(expectations, applied),
        *_unpredicted(expectations, applied),
    ]
    return Comparison(
        differences=tuple(sorted(differences, key=lambda d: d.ref)),
        predicted=sum(1 for a in expectations.values() if a is not Action.ORPHAN),
        changed=sum(1 for outcome in applied.values() if outcome in _CHANGED),
    )


def _unfulfilled(
    expectations: Mapping[ObjectRef, Action], applied: Mapping[ObjectRef, Applied]
) -> Iterable[Difference]:
    for ref, action in expectations.items():
        accepted = _EXPECTED[action]
        outcome = applied.get(ref)
        if accepted is None:
            continue
        if action is Action.ORPHAN and outcome is None:
            continue  # left alone and unreported: exactly what an orphan is
        if outcome not in accepted:
            yield Difference(ref, action, outcome)


def _unpredicted(
    expectations: Mapping[ObjectRef, Action], applied: Mapping[ObjectRef, Applied]
) -> Iterable[Difference]:
    for ref, outcome in applied.items():
        if ref not in expectations and outcome in _CHANGED:
            yield Difference(ref, None, outcome)
