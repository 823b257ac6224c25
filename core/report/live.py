"""Drift found by a live preview, as a Markdown section and as a key of the JSON report.

Drift is where the cluster would change differently from what the pull request shows (see
`core.plan.drift`). It is listed apart from the change, one row per object: the unit, the
object, what applying head does to the cluster and what the pull request's preview shows.
Formatting only: no I/O. Rows hold identities and actions, never an object's body.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from core.plan.drift import Drift
from core.report.markdown import _cell

__all__ = ["drift_markdown", "with_drift_json"]


def drift_markdown(drift: Sequence[Drift], *, limit: int = 200) -> str:
    """The `Drift` section appended to the live report ("" when there is none)."""
    if not drift:
        return "\n### Drift\n\nThe cluster is as the base revision says: no drift.\n"
    lines = [
        "",
        "### Drift",
        "",
        "Changes the cluster would see that the pull request does not show (edits by hand,"
        " objects still in an inventory after leaving Git, fields other controllers write):",
        "",
        "| Cluster | Unit | Object | Against the cluster | In the pull request |",
        "|---|---|---|---|---|",
    ]
    for item in drift[:limit]:
        lines.append(
            f"| {_cell(item.cluster)} | {_cell(str(item.unit))} | {_cell(_name(item))} "
            f"| {item.live or 'no change'} | {item.previewed or 'no change'} |"
        )
    if len(drift) > limit:
        lines += ["", f"…and {len(drift) - limit} more."]
    return "\n".join(lines) + "\n"


def with_drift_json(report: str, drift: Sequence[Drift]) -> str:
    """The JSON report with a top-level `drift` list."""
    document = json.loads(report)
    document["drift"] = [
        {
            "cluster": item.cluster,
            "unit": str(item.unit),
            "group": item.ref.group,
            "kind": item.ref.kind,
            "namespace": item.ref.namespace,
            "name": item.ref.name,
            "live": item.live.value if item.live else None,
            "previewed": item.previewed.value if item.previewed else None,
        }
        for item in drift
    ]
    return json.dumps(document, indent=2) + "\n"


def _name(item: Drift) -> str:
    ref = item.ref
    kind = f"{ref.kind}.{ref.group}" if ref.group else ref.kind
    return f"{kind} {ref.namespace}/{ref.name}" if ref.namespace else f"{kind} {ref.name}"
