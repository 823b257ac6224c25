"""One comment per pull/merge request, found by a hidden marker and kept current.

A report is split into numbered parts when it exceeds the provider's limit (GitHub: 65,536
characters per comment), at section boundaries (`## ` headings) and, inside an oversized
section, at line boundaries, closing an open code fence or `<details>` at the end of a part and
reopening it at the start of the next. `sync` edits parts in place, adds missing ones and
deletes surplus ones, so no stale part survives a re-run. A report that would need more than
`MAX_PARTS` comments is replaced by its summary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.vcs.port import CodeHost

__all__ = ["GITHUB_LIMIT", "GITLAB_LIMIT", "MAX_PARTS", "marker", "split", "sync"]

GITHUB_LIMIT = 65_536
GITLAB_LIMIT = 1_000_000
MAX_PARTS = 10

_MARKER = "<!-- tidegate:{key} part {part} -->"
_RESERVE = 400
"""Room in each part for the marker, the part header and the closers of open blocks."""


def marker(key: str, part: int) -> str:
    """The hidden line that identifies part `part` (1-based) of the comment named `key`."""
    return _MARKER.format(key=key, part=part)


def split(body: str, summary: str, *, key: str, limit: int) -> list[str]:
    """Return the comment bodies for `body`, each within `limit` characters."""
    chunks = _chunks(body, limit - _RESERVE)
    if len(chunks) > MAX_PARTS:
        chunks = [
            summary[: limit - _RESERVE]
            + "\n\n_The full report is too large for comments; see the check's details._\n"
        ]
    total = len(chunks)
    parts = []
    for index, chunk in enumerate(chunks, start=1):
        header = f"{marker(key, index)}\n"
        if total > 1:
            header += f"_Part {index} of {total}_\n\n"
        parts.append(header + chunk)
    return parts


def sync(host: CodeHost, number: int, parts: Sequence[str], *, key: str) -> None:
    """Make the pull request's `key` comments exactly `parts`: edit, add, delete.

    Only comments carrying this key's marker are touched; unchanged parts are not re-sent.
    """
    prefix = _MARKER.split("{key}")[0] + key + " part "
    mine: dict[int, list[tuple[int, str]]] = {}
    for comment in host.comments(number):
        first = comment.body.split("\n", 1)[0]
        if first.startswith(prefix) and first.endswith(" -->"):
            number_text = first[len(prefix) : -len(" -->")]
            if number_text.isdigit():
                mine.setdefault(int(number_text), []).append((comment.id, comment.body))
    for index, body in enumerate(parts, start=1):
        existing = mine.pop(index, [])
        if not existing:
            host.create_comment(number, body)
            continue
        comment_id, old = existing[0]
        if old != body:
            host.edit_comment(number, comment_id, body)
        for duplicate_id, _ in existing[1:]:
            host.delete_comment(number, duplicate_id)
    for stale in mine.values():
        for comment_id, _ in stale:
            host.delete_comment(number, comment_id)


@dataclass
class _Open:
    """Blocks open at a point of the text, to close and reopen across a split."""

    fence: str = ""
    details: int = 0

    def close(self) -> str:
        return ("\n" + self.fence if self.fence else "") + "\n</details>" * self.details + "\n"

    def reopen(self) -> str:
        return "<details>\n\n" * self.details + (self.fence + "\n" if self.fence else "")

    def track(self, line: str) -> None:
        stripped = line.strip()
        if self.fence:
            if stripped == self.fence[: len(stripped)] and stripped.startswith("```"):
                self.fence = ""
            return
        if stripped.startswith("```"):
            self.fence = stripped
            return
        self.details += stripped.count("<details") - stripped.count("</details>")
        self.details = max(0, self.details)


def _chunks(body: str, size: int) -> list[str]:
    sections = _sections(body)
    chunks: list[str] = []
    current = ""
    for section in sections:
        if len(current) + len(section) <= size:
            current += section
            continue
        if current:
            chunks.append(current)
            current = ""
        if len(section) <= size:
            current = section
        else:
            pieces = _split_lines(section, size)
            chunks.extend(pieces[:-1])
            current = pieces[-1]
    if current or not chunks:
        chunks.append(current)
    return chunks


def _sections(body: str) -> list[str]:
    sections: list[str] = []
    current: list[str] = []
    for line in body.splitlines(keepends=True):
        if line.startswith("## ") and current:
            sections.append("".join(current))
            current = []
        current.append(line)
    if current:
        sections.append("".join(current))
    return sections


def _split_lines(section: str, size: int) -> list[str]:
    """Split one oversized section at lines, carrying open fences and `<details>` across."""
    pieces: list[str] = []
    state = _Open()
    current = ""
    for line in section.splitlines(keepends=True):
        # A single line longer than a part is cut; nothing else can make it fit.
        while len(line) > size // 2:
            line_head, line = line[: size // 2], line[size // 2 :]
            current, state = _add(pieces, current, line_head + "\n", state, size)
        current, state = _add(pieces, current, line, state, size)
    pieces.append(current)
    return pieces


def _add(pieces: list[str], current: str, line: str, state: _Open, size: int) -> tuple[str, _Open]:
    if current and len(current) + len(line) + len(state.close()) > size:
        pieces.append(current + state.close())
        current = state.reopen()
    state.track(line)
    return current + line, state
