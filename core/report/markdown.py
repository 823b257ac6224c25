"""The preview as a pull-request comment body (GitHub and GitLab flavoured Markdown).

Layout, top to bottom: a hidden marker line (`<!-- tidegate:preview -->`) so a bot can find and
edit its one comment; a summary table per cluster; alert lines that are never collapsed (cluster
errors, failed units and units whose source was unavailable, then what will be deleted and
orphaned, then suspended units); then per
cluster one collapsible `<details>` section per unit with its changes and `diff` blocks. Noise
hidden by normalization is counted per rule ("12 lines hidden by rule helm-chart-labels"), and
changes Flux skips are counted, so nothing disappears silently.

Size: the body must fit a budget (65,000 characters by default; GitHub rejects more than 65,536).
When it does not, the diffs of the largest sections are left out first (their headers and counts
stay), then sections shrink to one line, and the comment says so; a final cut at a line
boundary guarantees the budget. Every code span and fence is longer than any backtick run in its
content, so no diff or error can break out of its block.

Formatting only: no I/O. Free text (errors, notes) is scrubbed of anything shaped like a mask
token; diffs come from `core.plan.compare`, which never emits one.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from core.changes import Action, Change, ClusterPlan, Preview, UnitPlan, UnitStatus
from core.findings import PolicyResult, Severity
from core.plan import compare as comparing
from core.report import policy as report_policy

__all__ = ["DEFAULT_LIMIT", "MARKER", "MIN_LIMIT", "render"]

MARKER = "<!-- tidegate:preview -->"
DEFAULT_LIMIT = 65_000
"""Characters; GitHub's limit for a comment body is 65,536."""
MIN_LIMIT = 2_000
"""The smallest budget that still holds the summary."""
_ALERT_UNITS = 20
"""Units listed per alert; more are summarized as a count."""
_ALERT_OBJECTS = 10
"""Objects listed per unit in an alert line."""
_FINDINGS_SHOWN = 30
"""Findings listed per group above the fold; the rest are counted."""
_SHOWN_FIELDS = 10
_ERROR_EXCERPT = 300
_SHA = 12

_PAST = {
    Action.CREATE: "created",
    Action.UPDATE: "updated",
    Action.DELETE: "deleted",
    Action.ORPHAN: "orphaned",
    Action.MOVE: "moved in",
    Action.UNKNOWN: "of unknown fate",
}
_TABLE = (Action.CREATE, Action.UPDATE, Action.DELETE, Action.ORPHAN, Action.MOVE)


def render(
    preview: Preview, *, limit: int = DEFAULT_LIMIT, policy: PolicyResult | None = None
) -> str:
    """Return the comment body for a preview, at most `limit` characters long.

    With a policy result, the gate's verdict and its findings come right after the summary
    table: blocking findings first, each with how to waive it, then warnings and notices, then
    every applied waiver with its reason.
    """
    if limit < MIN_LIMIT:
        raise ValueError(f"a comment budget under {MIN_LIMIT} characters cannot hold a summary")
    return _Fitter(_top(preview, policy), list(_body(preview)), limit).fit()


# Small Markdown helpers.


def _longest_run(text: str, char: str = "`") -> int:
    runs = re.findall(f"{re.escape(char)}+", text)
    return max((len(run) for run in runs), default=0)


def _code(text: str) -> str:
    """An inline code span that holds any text on one line."""
    flat = " ".join(text.split())
    ticks = "`" * (_longest_run(flat) + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{ticks}{pad}{flat}{pad}{ticks}"


def _cell(text: str) -> str:
    # GitHub splits table cells on `|` even inside code spans.
    return _code(text).replace("|", "\\|")


def _fence(text: str, info: str = "") -> str:
    """A fenced block longer than any backtick run in `text`."""
    fence = "`" * max(3, _longest_run(text) + 1)
    return f"{fence}{info}\n{text.rstrip(chr(10))}\n{fence}"


def _excerpt(text: str) -> str:
    flat = " ".join(comparing.scrub(text).split())
    return flat if len(flat) <= _ERROR_EXCERPT else flat[: _ERROR_EXCERPT - 1] + "…"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _noise(counts: Mapping[str, int]) -> str:
    return ", ".join(
        f"{_plural(counts[name], 'line')} hidden by rule {name}" for name in sorted(counts)
    )


# The part above the fold.


def _top(preview: Preview, policy: PolicyResult | None = None) -> str:
    parts = [
        MARKER,
        "### Tidegate preview",
        f"Merging {_code(preview.head[:_SHA])} into {_code(preview.base[:_SHA])}.",
    ]
    if policy is not None:
        parts.extend(_policy(policy))
    if not preview.clusters:
        parts.append("No cluster entry points were found on either side.")
        return "\n\n".join(parts)
    parts.append(_table(preview.clusters, skip=preview.skip_unavailable))
    parts.extend(_alerts(preview))
    if not preview.changed and not preview.failed:
        parts.append("✅ Nothing changes in any cluster.")
    return "\n\n".join(parts)


def _counts(cluster: ClusterPlan) -> dict[Action, int]:
    counts = dict.fromkeys(Action, 0)
    for unit in cluster.units:
        for change in unit.changes:
            counts[change.action] += 1
    return counts


def _table(clusters: Iterable[ClusterPlan], *, skip: bool) -> str:
    rows = [
        "| Cluster | Created | Updated | Deleted | Orphaned | Moved | Failed units "
        "| Source unavailable |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cluster in clusters:
        counts = _counts(cluster)
        failed = sum(unit.status is UnitStatus.FAILED for unit in cluster.units)
        unavailable = sum(unit.status is UnitStatus.UNAVAILABLE for unit in cluster.units)
        cells = [_cell(cluster.path)]
        cells += [_count_cell(counts[action], loud=action is Action.DELETE) for action in _TABLE]
        cells.append(_count_cell(failed, loud=True, mark="❌"))
        cells.append(_count_cell(unavailable, loud=True, mark="❌" if not skip else "⚠️"))
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _count_cell(count: int, *, loud: bool = False, mark: str = "⚠️") -> str:
    return f"{mark} **{count}**" if loud and count else str(count)


def _alerts(preview: Preview) -> Iterator[str]:
    yield from _error_alert(preview)
    yield from _failed_alert(preview)
    yield from _unavailable_alert(preview)
    yield from _action_alert(preview, Action.DELETE, "⚠️", "will be deleted")
    yield from _action_alert(
        preview, Action.ORPHAN, "⚠️", "will be orphaned (left in the cluster, no longer pruned)"
    )
    yield from _action_alert(
        preview,
        Action.UNKNOWN,
        "❔",
        "may be created, deleted or moved: a unit they may move from or to failed",
    )
    yield from _suspended_alert(preview)


def _listing(header: str, lines: list[str]) -> str:
    shown = lines[:_ALERT_UNITS]
    if len(lines) > len(shown):
        shown.append(f"- … and {len(lines) - len(shown)} more")
    return "\n".join([header, *shown])


def _error_alert(preview: Preview) -> Iterator[str]:
    lines = [
        f"- {_code(cluster.path)}: {_code(_excerpt(error))}"
        for cluster in preview.clusters
        for error in cluster.errors
    ]
    if lines:
        yield _listing(f"❌ **{_plural(len(lines), 'cluster error')}:**", lines)


def _failed_alert(preview: Preview) -> Iterator[str]:
    lines = [
        f"- {_code(cluster.path)} {_code(str(unit.unit))}{_reason(unit)}: "
        f"{_code(_excerpt(unit.error or ''))}"
        for cluster in preview.clusters
        for unit in cluster.units
        if unit.status is UnitStatus.FAILED
    ]
    if lines:
        header = (
            f"❌ **{_plural(len(lines), 'unit')} failed; their objects are withheld and nothing "
            "is shown as deleted for them:**"
        )
        yield _listing(header, lines)


def _reason(unit: UnitPlan) -> str:
    """The type of a unit's failure, in words (` (build failure)`), or nothing when unknown."""
    return f" ({unit.reason.value} failure)" if unit.reason is not None else ""


def _unavailable_alert(preview: Preview) -> Iterator[str]:
    lines = [
        f"- {_code(cluster.path)} {_code(str(unit.unit))}: {_code(_excerpt(unit.error or ''))}"
        for cluster in preview.clusters
        for unit in cluster.units
        if unit.status is UnitStatus.UNAVAILABLE
    ]
    if not lines:
        return
    units = _plural(len(lines), "unit")
    if preview.skip_unavailable:
        header = (
            f"⚠️ **{units} NOT previewed: a source could not be reached. Unavailable sources are "
            "skipped, so this result does not cover these units; what they would change is "
            "unknown:**"
        )
    else:
        header = (
            f"❌ **{units} could not be previewed: a source could not be reached (this is not a "
            "render error); their objects are withheld and the preview fails:**"
        )
    yield _listing(header, lines)


def _action_alert(preview: Preview, action: Action, mark: str, effect: str) -> Iterator[str]:
    lines = []
    total = 0
    for cluster in preview.clusters:
        for unit in cluster.units:
            refs = [str(c.ref) for c in unit.changes if c.action is action]
            if not refs:
                continue
            total += len(refs)
            shown = ", ".join(_code(ref) for ref in refs[:_ALERT_OBJECTS])
            more = f" and {len(refs) - _ALERT_OBJECTS} more" if len(refs) > _ALERT_OBJECTS else ""
            removed = " (unit removed)" if unit.status is UnitStatus.REMOVED else ""
            lines.append(f"- {_code(cluster.path)} {_code(str(unit.unit))}{removed}: {shown}{more}")
    if lines:
        yield _listing(f"{mark} **{_plural(total, 'object')} {effect}:**", lines)


def _suspended_alert(preview: Preview) -> Iterator[str]:
    lines = [
        f"- {_code(cluster.path)} {_code(str(unit.unit))}"
        for cluster in preview.clusters
        for unit in cluster.units
        if unit.suspended and (unit.changes or unit.status is not UnitStatus.UNCHANGED)
    ]
    if lines:
        header = f"⏸️ **{_plural(len(lines), 'suspended unit')}: changes apply when resumed:**"
        yield _listing(header, lines)


def _policy(result: PolicyResult) -> Iterator[str]:
    """The gate's verdict, blocking findings (with how to waive), others, and waivers."""
    blocking = result.blocking
    others = [f for f in result.findings if not f.blocking and not f.waived]
    if result.passed:
        yield f"✅ **Policy gate passed** ({_plural(len(result.rules), 'rule')} evaluated)."
    else:
        yield f"❌ **Policy gate failed: {_plural(len(blocking), 'blocking finding')}.**"
    if blocking:
        rows = [
            f"- ❌ {_code(f.rule)} {_code(_excerpt(report_policy.message(f)))} "
            f"{_code(report_policy.location(f))}\n  To unblock: {report_policy.how_to_waive(f)}."
            for f in blocking
        ]
        yield _findings_listing("**Blocking:**", rows)
    if others:
        marks = {Severity.ERROR: "❌", Severity.WARNING: "⚠️", Severity.NOTICE: "ℹ️"}  # noqa: RUF001
        rows = [
            f"- {marks[f.severity]} {_code(f.rule)} {_code(_excerpt(report_policy.message(f)))} "
            f"{_code(report_policy.location(f))}"
            for f in others
        ]
        yield _findings_listing(f"**{_plural(len(others), 'other finding')}:**", rows)
    if result.waived:
        rows = [
            f"- {_code(f.rule)} {_code(report_policy.location(f))}: waived by "
            f"{f.waiver.kind.value}{f' ({f.waiver.by})' if f.waiver.by else ''}: "
            f"{_code(_excerpt(f.waiver.reason))}"
            for f in result.waived
            if f.waiver is not None
        ]
        yield _findings_listing(f"**{_plural(len(rows), 'waiver')} applied:**", rows)


def _findings_listing(header: str, rows: list[str]) -> str:
    shown = rows[:_FINDINGS_SHOWN]
    if len(rows) > len(shown):
        shown.append(
            f"- … and {len(rows) - len(shown)} more (every finding is in the JSON, "
            "SARIF and JUnit reports)"
        )
    return "\n".join([header, *shown])


# The sections below the fold.


@dataclass
class _Section:
    """One unit's section in three sizes: with diffs, without them, and as one line."""

    full: str
    bare: str
    line: str
    level: int = 0

    def text(self) -> str:
        return (self.full, self.bare, self.line)[self.level]


def _body(preview: Preview) -> Iterator[str | _Section]:
    for cluster in preview.clusters:
        shown = [u for u in cluster.units if _listed(u)]
        quiet = [u for u in cluster.units if not _listed(u)]
        yield f"#### {_code(cluster.path)}"
        for unit in shown:
            yield _section(unit)
        if quiet:
            yield _quiet(quiet)


def _listed(unit: UnitPlan) -> bool:
    """Units worth a section: anything but an unchanged unit."""
    return unit.status is not UnitStatus.UNCHANGED


def _quiet(units: list[UnitPlan]) -> str:
    """Unchanged units: a count, plus a line for each with hidden noise or skipped changes."""
    lines = [f"{_plural(len(units), 'unit')} unchanged."]
    for unit in units:
        extras = _extras(unit)
        if extras:
            lines.append(f"- {_code(str(unit.unit))}: {'; '.join(extras)}")
    return "\n".join(lines)


def _extras(unit: UnitPlan) -> list[str]:
    """What a unit hides: noise per rule, noise-only objects, changes Flux skips."""
    extras = []
    if unit.suppressed:
        extras.append(_noise(unit.suppressed))
    if noisy := unit.noise_only:
        extras.append(f"{_plural(noisy, 'object')} differ only in hidden noise")
    if unit.skipped:
        extras.append(
            f"{_plural(unit.skipped, 'changed object')} left out because Flux does not "
            "apply them (reconcile: disabled, ssa: Ignore, or a HelmRelease's CRD policy)"
        )
    return extras


def _headline(unit: UnitPlan) -> str:
    counts: dict[Action, int] = {}
    for change in unit.changes:
        counts[change.action] = counts.get(change.action, 0) + 1
    parts = [unit.status.value]
    parts += [f"{counts[a]} {_PAST[a]}" for a in (*_TABLE, Action.UNKNOWN) if counts.get(a)]
    if unit.suspended:
        parts.append("suspended")
    return " · ".join(parts)


def _section(unit: UnitPlan) -> _Section:
    loud = unit.status in (UnitStatus.FAILED, UnitStatus.UNAVAILABLE)
    mark = "❌ " if loud else "⏸️ " if unit.suspended else ""
    title = html.escape(str(unit.unit))
    headline = _headline(unit)
    opening = "<details open>" if loud else "<details>"
    summary = f"{opening}\n<summary>{mark}<b>{title}</b> · {html.escape(headline)}</summary>"
    intro = _intro(unit)
    full = [summary, *intro, *_changes(unit.changes, diffs=True), "</details>"]
    bare = [summary, *intro]
    if any(change.diff for change in unit.changes):
        bare.append("_Diffs left out to fit the comment size limit._")
    bare += [*_changes(unit.changes, diffs=False), "</details>"]
    line = f"- {mark}{_code(str(unit.unit))} · {headline} (details left out: size limit)"
    return _Section("\n\n".join(full), "\n\n".join(bare), line)


def _intro(unit: UnitPlan) -> list[str]:
    parts = []
    if unit.suspended:
        parts.append("⏸️ Suspended: Flux applies these changes only when it is resumed.")
    if unit.error is not None:
        parts.append(_fence(comparing.scrub(unit.error)))
    if note := unit.note:
        parts.append(html.escape(comparing.scrub(note)))
    if extras := _extras(unit):
        parts.append("<sub>" + html.escape("; ".join(extras)) + ".</sub>")
    if unit.notices:
        lines = [f"- {html.escape(comparing.scrub(notice))}" for notice in unit.notices]
        parts.append("\n".join(lines))
    return parts


def _changes(changes: Iterable[Change], *, diffs: bool) -> Iterator[str]:
    """Yield change lines, runs of them without diffs as one tight list."""
    run: list[str] = []
    for change in changes:
        run.append(_change_line(change))
        if diffs and change.diff:
            yield "\n".join(run)
            yield _fence(change.diff, "diff")
            run = []
    if run:
        yield "\n".join(run)


def _change_line(change: Change) -> str:
    text = f"- **{change.action.value}** {_code(str(change.ref))}"
    if change.moved_from is not None:
        text += f" from {_code(str(change.moved_from))}"
    if change.fields:
        shown = ", ".join(_code(f) for f in change.fields[:_SHOWN_FIELDS])
        more = len(change.fields) - _SHOWN_FIELDS
        text += f": {shown}" + (f" and {more} more" if more > 0 else "")
    if change.note:
        text += f" ({html.escape(comparing.scrub(change.note))})"
    return text


# Fitting the budget.


class _Fitter:
    """Shrinks sections, largest first, until the comment fits its budget."""

    def __init__(self, top: str, items: list[str | _Section], limit: int) -> None:
        self.top = top
        self.items = items
        self.limit = limit
        self.sections = [item for item in items if isinstance(item, _Section)]
        self.body = sum(len(self._text(item)) for item in items)

    @staticmethod
    def _text(item: str | _Section) -> str:
        return item if isinstance(item, str) else item.text()

    def _note(self) -> str:
        bare = sum(s.level >= 1 for s in self.sections)
        lines = sum(s.level == 2 for s in self.sections)
        if not bare:
            return ""
        note = (
            f"✂️ To stay under {self.limit:,} characters, the diffs of "
            f"{_plural(bare, 'unit')} were left out, largest first"
        )
        if lines:
            note += f", and {_plural(lines, 'unit')} shown as one line only"
        return note + ". The JSON report has every diff."

    def _size(self) -> int:
        note = self._note()
        parts = 1 + len(self.items) + (1 if note else 0)
        return len(self.top) + len(note) + self.body + 2 * (parts - 1) + 1

    def _shrink(self, section: _Section, level: int) -> None:
        before = len(section.text())
        section.level = level
        self.body += len(section.text()) - before

    def text(self) -> str:
        """Assemble the comment as it stands."""
        note = self._note()
        parts = [self.top, *([note] if note else []), *(self._text(i) for i in self.items)]
        return "\n\n".join(parts) + "\n"

    def fit(self) -> str:
        """Return the comment within the budget."""
        for level in (1, 2):
            if self._size() <= self.limit:
                break
            candidates = [s for s in self.sections if s.level < level]
            for section in sorted(candidates, key=lambda s: -len(s.text())):
                self._shrink(section, level)
                if self._size() <= self.limit:
                    break
        text = self.text()
        return text if len(text) <= self.limit else _cut(text, self.limit)


def _cut(text: str, limit: int) -> str:
    """Cut at a line boundary (by now every section is one line) and say so."""
    suffix = "\n\n✂️ The comment was cut here to fit the size limit; the JSON report has it all.\n"
    head = text[: limit - len(suffix)]
    return head[: head.rfind("\n") + 1].rstrip("\n") + suffix
