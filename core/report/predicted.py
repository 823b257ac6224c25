"""The predicted-vs-applied comparison as Markdown, for a commit comment or a GitLab note.

One line of verdict, then a table of the differences (object, what the preview said, what the
apply did, what that usually means), at most `limit` rows with a count of the rest. Object names
are put in code spans that no backtick in a name can break out of, and table cells escape `|`.
Formatting only: no I/O. It holds identities and actions, never an object's body.
"""

from __future__ import annotations

from core.model import ObjectRef, UnitRef
from core.predicted import Comparison
from core.report.markdown import _cell

__all__ = ["MARKER", "comparison_markdown"]

MARKER = "<!-- tidegate:predicted-vs-applied -->"
"""A hidden first line, so the comment can be recognised."""


def comparison_markdown(
    comparison: Comparison, unit: UnitRef, revision: str, *, cluster: str = "", limit: int = 50
) -> str:
    """The report for `unit` at `revision` (`main@sha1:<hex>`)."""
    where = f"{cluster}/{unit}" if cluster else str(unit)
    lines = [
        MARKER,
        f"**Tidegate: {comparison.headline}** for {_cell(where)} at {_cell(revision)}.",
        "",
        f"Previewed changes: {comparison.predicted}; applied changes: {comparison.changed}.",
    ]
    if comparison.matched:
        return "\n".join(lines) + "\n"
    lines += ["", "| Object | Previewed | Applied | Meaning |", "|---|---|---|---|"]
    for difference in comparison.differences[:limit]:
        lines.append(
            f"| {_cell(_name(difference.ref))} | {difference.predicted or 'no change'} "
            f"| {difference.applied or 'not reported'} | {difference.explanation} |"
        )
    rest = len(comparison.differences) - limit
    if rest > 0:
        lines += ["", f"…and {rest} more difference{'s' if rest != 1 else ''}."]
    return "\n".join(lines) + "\n"


def _name(ref: ObjectRef) -> str:
    kind = f"{ref.kind}.{ref.group}" if ref.group else ref.kind
    return f"{kind} {ref.namespace}/{ref.name}" if ref.namespace else f"{kind} {ref.name}"
