"""Compare two renders of one object: a masked unified YAML diff and the changed field paths.

`compare` normalizes both sides (see `core.plan.normalize`), decides whether anything a reviewer
cares about changed, and produces what the report shows: a unified diff with `--- before/<object>`
and `+++ after/<object>` headers, the changed field paths (`spec.replicas`, `data.password`) and
the diff lines each noise rule hid. Mask tokens are compared as they are (two tokens differ exactly
when the Secret values differ) but are shown only as `***`, `*** (before)` or `*** (after)`.

This module must never put a mask token, a Secret value or a removed noise value into any text it
returns, and never raise with one: in particular a DeepDiff result, whose repr carries values, must
not escape it. It does no I/O.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from core import secrets
from core.model import Manifest
from core.plan import normalize

__all__ = [
    "Comparison",
    "compare",
    "field_path",
    "scrub",
]


@dataclass(frozen=True)
class Comparison:
    """What differs between two renders of one object (either side may be absent)."""

    changed: bool
    """Whether the normalized objects differ; noise alone never makes this true."""
    diff: str = ""
    """Unified YAML diff of the normalized, masked objects; empty when nothing changed."""
    fields: tuple[str, ...] = ()
    """Changed field paths, only when both sides exist."""
    suppressed: dict[str, int] = field(default_factory=dict)
    """Diff lines hidden by each noise rule."""


def compare(
    before: Manifest | None,
    after: Manifest | None,
    *,
    rules: Sequence[normalize.Rule] = normalize.RULES,
) -> Comparison:
    """Compare two renders of the same object; None stands for "not rendered on that side"."""
    subject = after or before
    if subject is None:
        raise ValueError("compare needs at least one side")
    if before is not None and after is not None and (before is after or before.body == after.body):
        return Comparison(changed=False)  # most objects of a big repository; skip the work
    old = normalize.normalize(before.body, rules) if before else None
    new = normalize.normalize(after.body, rules) if after else None
    suppressed = normalize.suppressed_lines(old, new)
    if old is not None and new is not None and old.body == new.body:
        return Comparison(changed=False, suppressed=suppressed)
    label = str(subject.ref)
    shown_old, shown_new = _display_pair(old.body if old else _ABSENT, new.body if new else _ABSENT)
    try:
        before_lines = _yaml_lines(shown_old) if old else []
        after_lines = _yaml_lines(shown_new) if new else []
    except yaml.YAMLError:
        # The YAML error's message quotes the offending value: name the object only.
        raise ValueError(f"{label} holds a value that cannot be shown as YAML") from None
    diff = _unified(before_lines, after_lines, label)
    fields = _changed_fields(old.body, new.body) if old and new else ()
    return Comparison(changed=True, diff=diff, fields=fields, suppressed=suppressed)


class _Absent:
    """Marks the missing side of a pair while walking two objects together."""


_ABSENT: Any = _Absent()


def _display_pair(before: Any, after: Any) -> tuple[Any, Any]:
    """Copy both sides with every mask token replaced by what a diff may show for it."""
    if before is _ABSENT or after is _ABSENT:
        # A field on one side only (an added Secret key, say) shows a plain `***`.
        return _display_alone(before), _display_alone(after)
    if isinstance(before, dict) and isinstance(after, dict):
        return _display_mappings(before, after)
    if isinstance(before, list) and isinstance(after, list):
        pairs = [_display_pair(b, a) for b, a in zip(before, after, strict=False)]
        shared = len(pairs)
        return (
            [p[0] for p in pairs] + [_display_alone(b) for b in before[shared:]],
            [p[1] for p in pairs] + [_display_alone(a) for a in after[shared:]],
        )
    if secrets.is_token(before) or secrets.is_token(after):
        shown = secrets.display_pair(before, after)
        return (
            shown[0] if secrets.is_token(before) else _display_alone(before),
            shown[1] if secrets.is_token(after) else _display_alone(after),
        )
    return _display_alone(before), _display_alone(after)


def _display_mappings(before: dict[Any, Any], after: dict[Any, Any]) -> tuple[Any, Any]:
    old: dict[str, Any] = {}
    new: dict[str, Any] = {}
    for key in before.keys() | after.keys():
        shown = _display_pair(before.get(key, _ABSENT), after.get(key, _ABSENT))
        name = _display_key(key)
        if key in before:
            old[name] = shown[0]
        if key in after:
            new[name] = shown[1]
    return old, new


def _display_alone(value: Any) -> Any:
    """Copy one side with no counterpart: any token in it shows as a plain `***`."""
    if isinstance(value, dict):
        return {_display_key(k): _display_alone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_display_alone(item) for item in value]
    return secrets.MASK if secrets.is_token(value) else value


def _display_key(key: Any) -> str:
    # Keys are never masked by the model, but a key must not smuggle a token out either.
    return secrets.MASK if secrets.is_token(key) else str(key)


class _Dumper(normalize.SafeDumper):
    """Safe YAML with multi-line strings as literal blocks, so their diffs are line by line."""


def _represent_str(dumper: normalize.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def _yaml_lines(obj: Any) -> list[str]:
    text = yaml.dump(
        obj,
        Dumper=_Dumper,
        sort_keys=True,
        default_flow_style=False,
        allow_unicode=True,
        width=10_000,
    )
    return text.splitlines()


def _unified(before: list[str], after: list[str], label: str) -> str:
    lines = difflib.unified_diff(
        before, after, fromfile=f"before/{label}", tofile=f"after/{label}", lineterm=""
    )
    return "\n".join(lines) + "\n"


_PLAIN_KEY = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$-]*$")


def field_path(parts: Iterable[str | int]) -> str:
    """Format a path as `spec.template.spec.containers[0].image`; odd keys as `["tls.crt"]`."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part, ensure_ascii=False)}]"
    return text


def _path_order(parts: Sequence[str | int]) -> tuple[tuple[int, int, str], ...]:
    # List positions sort numerically and before keys, so `[2]` comes before `[10]`.
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in parts)


def _changed_fields(before: Any, after: Any) -> tuple[str, ...]:
    """Return the paths that differ between two normalized objects, in a stable order."""
    paths: set[tuple[Any, ...]] = set()
    _collect_paths(before, after, (), paths)
    shown = {tuple(p if isinstance(p, int) else _display_key(p) for p in path) for path in paths}
    return tuple(field_path(p) for p in sorted(shown, key=_path_order))


def _collect_paths(
    before: Any, after: Any, prefix: tuple[Any, ...], out: set[tuple[Any, ...]]
) -> None:
    """Walk mappings down to what differs; let DeepDiff place the differences inside lists.

    Descending through mappings with `==` first skips the unchanged bulk of an object, which
    keeps DeepDiff (much slower per node) to the few lists that changed.
    """
    if before == after:
        return
    if isinstance(before, dict) and isinstance(after, dict):
        for key in before.keys() | after.keys():
            if key in before and key in after:
                _collect_paths(before[key], after[key], (*prefix, key), out)
            else:
                out.add((*prefix, key))
        return
    if isinstance(before, list) and isinstance(after, list):
        if len(before) == len(after):
            # Same length: positions pair up, as DeepDiff would pair them (order matters).
            for index, (old, new) in enumerate(zip(before, after, strict=True)):
                _collect_paths(old, new, (*prefix, index), out)
            return
        # Items added or removed: DeepDiff places them. Imported here because its import costs
        # more than most previews spend planning.
        from deepdiff import DeepDiff

        for levels in DeepDiff(before, after, view="tree").values():
            out.update((*prefix, *level.path(output_format="list")) for level in levels)
        return
    out.add(prefix)


# Where a token may start (a letter after a non-alphanumeric), and the run it extends over.
_START = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]")
_RUN = re.compile(r"[^\s'\"`()\[\]{}<>=,;]+")
_WINDOW = 256
"""Characters handed to `is_token`: more than any token prefix, so a prefix test suffices."""


def scrub(text: str) -> str:
    """Replace anything shaped like a mask token in free text (an error message) with `***`.

    The model never lets a token reach text, but messages written elsewhere (a render error
    quoting an object, say) are checked once more before they are shown.
    """
    parts: list[str] = []
    done = 0
    for start in _START.finditer(text):
        at = start.start()
        if at < done or not secrets.is_token(text[at : at + _WINDOW]):
            continue
        run = _RUN.match(text, at)
        parts += [text[done:at], secrets.MASK]
        done = run.end() if run else at + 1
    parts.append(text[done:])
    return "".join(parts)
