"""What one apply or prune did to each object, in Flux's words.

kustomize-controller reports a run as a change set: one entry per object with an action
(`created`, `configured`, `unchanged`, `deleted`, `skipped`, `unknown`), logged and sent as an
event as lines such as `Deployment/apps/podinfo configured`. The inventory is made from the
entries of an apply, every action included. This module holds data only: no bodies, no values.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from core.inventory import Entry, Inventory
from core.model import ObjectRef

__all__ = ["Action", "ChangeSet", "ChangeSetEntry"]


class Action(enum.StrEnum):
    """fluxcd/pkg ssa's actions."""

    CREATED = "created"
    CONFIGURED = "configured"
    UNCHANGED = "unchanged"
    DELETED = "deleted"
    SKIPPED = "skipped"
    UNKNOWN = "unknown"


_QUIET = frozenset({Action.UNCHANGED, Action.SKIPPED})


@dataclass(frozen=True)
class ChangeSetEntry:
    """One object and what happened to it."""

    ref: ObjectRef
    version: str
    """The API version alone (`v1`), as the inventory keeps it."""
    action: Action

    @property
    def subject(self) -> str:
        """`Kind/namespace/name`, or `Kind/name` for a cluster-scoped object."""
        return str(self.ref)

    def __str__(self) -> str:
        return f"{self.subject} {self.action}"


@dataclass
class ChangeSet:
    """The entries of one run, in the order the objects were handled."""

    entries: list[ChangeSetEntry] = field(default_factory=list)
    complete: bool = False
    """Set when every object was handled; an apply that stopped early leaves it False, and
    prune refuses such a change set."""

    def add(self, entry: ChangeSetEntry) -> None:
        """Record one object."""
        self.entries.append(entry)

    def extend(self, entries: Iterable[ChangeSetEntry]) -> None:
        """Record several objects."""
        self.entries.extend(entries)

    @property
    def changed(self) -> list[ChangeSetEntry]:
        """Entries that wrote or deleted something (neither unchanged nor skipped)."""
        return [entry for entry in self.entries if entry.action not in _QUIET]

    def actions(self) -> dict[str, Action]:
        """The action per object, keyed by `Kind/namespace/name`."""
        return {entry.subject: entry.action for entry in self.entries}

    def summary(self) -> str:
        """Flux's event text: one `Kind/ns/name action` line per changed object."""
        return "\n".join(str(entry) for entry in self.changed)

    def inventory(self) -> Inventory:
        """The inventory an apply of this change set leaves: every object, every action."""
        return Inventory.of(Entry(entry.ref, entry.version) for entry in self.entries)
