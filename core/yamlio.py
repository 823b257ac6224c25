"""YAML in and out through libyaml's C implementation, with PyYAML's safe semantics and budgets.

PyYAML's pure-Python scanner dominated the cost of a render (parsing kustomize's output and
re-parsing each object after substitution); the C loader and dumper that PyYAML ships do the same
safe loading several times faster. Only plain data is loaded: no Python tags, ever.

Every document comes from a repository or a tool run on one, so it is hostile. libyaml's composer
recurses on the C stack (tens of thousands of nesting levels crash the process), the render cache's
serialiser gives up at 255 levels, and PyYAML shares aliased nodes, so a few hundred bytes of
anchors can stand for a billion nodes once serialised or compared. Before anything is composed,
`load` and `load_all` therefore check the input's size and walk libyaml's event stream (an
iterative state machine, no recursion) to enforce a nesting depth and a budget on the nodes that
aliases add. A document over budget raises `BudgetError` naming the budget and its flag.

This module must not build objects from input that failed those checks.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from core.errors import BudgetError

__all__ = [
    "DEFAULT_LIMITS",
    "MarkedYAMLError",
    "YAMLError",
    "YamlLimits",
    "configure",
    "dump",
    "limits",
    "load",
    "load_all",
]

YAMLError = yaml.YAMLError
MarkedYAMLError = yaml.MarkedYAMLError

# Fall back to the pure-Python classes where PyYAML was built without libyaml.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@dataclass(frozen=True)
class YamlLimits:
    """What one call to `load` or `load_all` may be given."""

    max_bytes: int = 64 << 20
    """Size of the whole input (a repository file, or everything one tool printed)."""
    max_document_bytes: int = 16 << 20
    """Size of one document of a stream."""
    max_depth: int = 100
    """Nesting of mappings and sequences, counting what aliases reach."""
    max_alias_nodes: int = 100_000
    """Nodes that aliases add to one document when expanded (billion-laughs guard)."""


DEFAULT_LIMITS = YamlLimits()
MAX_DEPTH_CEILING = 200
"""The render cache serialises with orjson, which refuses more than 255 levels of nesting."""

_current = DEFAULT_LIMITS


def configure(new: YamlLimits) -> None:
    """Set the limits for this process (the command line applies its flags once, at start)."""
    global _current  # one process-wide setting, set before any render starts
    if not 1 <= new.max_depth <= MAX_DEPTH_CEILING:
        raise ValueError(f"the YAML depth budget must be between 1 and {MAX_DEPTH_CEILING}")
    _current = new


def limits() -> YamlLimits:
    """Return the limits in force."""
    return _current


def load(data: str | bytes, *, budget: YamlLimits | None = None) -> Any:
    """Parse one YAML document into plain data, after checking it against the budgets."""
    _check(data, budget or _current)
    return yaml.load(data, Loader=_Loader)  # noqa: S506 - a safe loader


def load_all(data: str | bytes, *, budget: YamlLimits | None = None) -> Iterator[Any]:
    """Parse every document of a YAML stream into plain data, after checking the budgets.

    The whole stream is checked before the first document is returned, so a caller never holds
    part of a stream that turns out to be over budget.
    """
    _check(data, budget or _current)
    return yaml.load_all(data, Loader=_Loader)


def dump(data: Any, **options: Any) -> str:
    """Write plain data as YAML (block style, keys sorted unless `sort_keys=False`)."""
    options.setdefault("default_flow_style", False)
    text: str = yaml.dump(data, Dumper=_Dumper, **options)
    return text


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB" if size >= 1 << 20 else f"{size} bytes"


def _check(data: str | bytes, budget: YamlLimits) -> None:
    """Refuse input over the size budget, then walk its events for depth and aliases.

    Syntax errors are left to the real load, which reports them with their position.
    """
    if len(data) > budget.max_bytes:
        raise BudgetError(
            f"YAML input of {_mib(len(data))} exceeds the YAML size budget of "
            f"{_mib(budget.max_bytes)}",
            flag="--max-yaml-bytes",
        )
    if _plainly_shallow(data, budget):
        return
    loader = _Loader(data)
    try:
        _walk(loader, budget)
    except yaml.YAMLError:
        pass
    finally:
        loader.dispose()


# Line breaks other than \n (libyaml also breaks lines at \r, NEL, LS and PS) and the marks of
# UTF-16/32 input: text with any of them is walked, since the patterns below would misread it.
_ODD = (
    b"\r",
    b"\x00",
    b"\xc2\x85",
    b"\xe2\x80\xa8",
    b"\xe2\x80\xa9",
    b"\xef\xbb\xbf",
    b"\xfe\xff",
    b"\xff\xfe",
)
# Document markers sit at the start of a line (the first document needs none).
_MARKER = re.compile(rb"\n(?:---|\.\.\.)(?=[ \t\n]|\Z)")


def _plainly_shallow(data: str | bytes, budget: YamlLimits) -> bool:
    """Tell, from the text alone, that a document has no aliases and cannot be too deep.

    Walking the events costs about half as much again as loading, so ordinary documents (block
    style, no anchors: what kustomize and most charts print) skip it. The bound is safe: a block
    collection nested in another starts at a greater column, or at the same one for a sequence
    under a mapping key, so depth is at most twice the widest line prefix (indentation, then any
    compact `- ` or `? `) plus one; without non-empty flow collections, flow style adds at most
    one level. Anything else is walked.
    """
    raw = data.encode(errors="surrogatepass") if isinstance(data, str) else data
    # Plain substring counts and searches: this runs on every load and must cost next to nothing.
    if b"&" in raw or any(mark in raw for mark in _ODD):
        return False
    if raw.count(b"[") != raw.count(b"[]") or raw.count(b"{") != raw.count(b"{}"):
        return False  # a non-empty flow collection
    # The widest prefix allowed is the largest w with 2 * (w + 1) + 1 <= max_depth. A line that
    # starts with more characters that a prefix may hold is walked (an over-estimate: safe).
    widest = (budget.max_depth - 1) // 2 - 1
    if widest < 0 or re.search(rb"(?:\A|\n)[ \t?\-]{%d}" % (widest + 1), raw):
        return False
    bounds = [0, *(m.start() for m in _MARKER.finditer(raw)), len(raw)]
    return max(b - a for a, b in itertools.pairwise(bounds)) <= budget.max_document_bytes


class _Frame:
    """An open mapping or sequence: its anchor, the nodes under it and its height."""

    __slots__ = ("anchor", "height", "nodes")

    def __init__(self, anchor: str | None) -> None:
        self.anchor = anchor
        self.nodes = 1
        self.height = 1


def _walk(loader: Any, budget: YamlLimits) -> None:
    stack: list[_Frame] = []
    anchors: dict[str, tuple[int, int]] = {}
    aliased = 0
    document_start = 0
    while loader.check_event():
        event = loader.get_event()
        kind = type(event)
        if kind is yaml.ScalarEvent:
            if stack:
                stack[-1].nodes += 1
            if event.anchor:
                anchors[event.anchor] = (1, 0)
        elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
            if len(stack) >= budget.max_depth:
                _too_deep(budget, event)
            stack.append(_Frame(event.anchor))
        elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            frame = stack.pop()
            if frame.anchor:
                anchors[frame.anchor] = (frame.nodes, frame.height)
            if stack:
                stack[-1].nodes += frame.nodes
                stack[-1].height = max(stack[-1].height, frame.height + 1)
        elif kind is yaml.AliasEvent:
            nodes, height = anchors.get(event.anchor, (1, 0))
            aliased += nodes
            if len(stack) + height > budget.max_depth:
                _too_deep(budget, event)
            if aliased > budget.max_alias_nodes:
                raise BudgetError(
                    f"YAML aliases expand to more than {budget.max_alias_nodes} nodes in one "
                    f"document (line {event.start_mark.line + 1})",
                    flag="--max-yaml-alias-nodes",
                )
            if stack:
                stack[-1].nodes += nodes
                stack[-1].height = max(stack[-1].height, height + 1)
        elif kind is yaml.DocumentStartEvent:
            document_start = event.start_mark.index
            anchors.clear()
            aliased = 0
        elif kind is yaml.DocumentEndEvent:
            size = event.end_mark.index - document_start
            if size > budget.max_document_bytes:
                raise BudgetError(
                    f"a YAML document of {_mib(size)} (ending on line {event.end_mark.line + 1}) "
                    f"exceeds the document size budget of {_mib(budget.max_document_bytes)}",
                    flag="--max-yaml-document-bytes",
                )


def _too_deep(budget: YamlLimits, event: Any) -> None:
    raise BudgetError(
        f"YAML nested deeper than {budget.max_depth} levels (line {event.start_mark.line + 1})",
        flag="--max-yaml-depth",
    )
