"""Typed readers for the JSON the render cache keeps about clusters and their plans.

A kept cluster (`core.render.clusters`) and a kept plan (`core.plan.kept`) are read back from
files any process may have written, cut short or damaged. Each reader returns the value with its
type, or raises `TypeError` or `ValueError` when the data is not what was written, so that the
caller can discard the whole entry and work it out again. This module reads values only: it
opens no file and decides nothing.
"""

from __future__ import annotations

from typing import Any

from core.model import ObjectRef, UnitKind, UnitRef

__all__ = ["flag", "number", "object_ref", "optional_text", "text", "unit_ref"]


def unit_ref(data: Any) -> UnitRef:
    """A unit named as `[kind, namespace, name]`."""
    kind, namespace, name = data
    return UnitRef(UnitKind(kind), text(namespace), text(name))


def object_ref(data: Any) -> ObjectRef:
    """An object named as `[group, kind, namespace, name]`."""
    group, kind, namespace, name = data
    return ObjectRef(text(group), text(kind), text(namespace), text(name))


def text(value: Any) -> str:
    """A string."""
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


def optional_text(value: Any) -> str | None:
    """A string, or None where none was stored."""
    return None if value is None else text(value)


def flag(value: Any) -> bool:
    """A boolean."""
    if not isinstance(value, bool):
        raise TypeError("not a boolean")
    return value


def number(value: Any) -> int:
    """A whole number."""
    # bool is an int in Python; a stored flag where a count belongs is damage.
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("not a number")
    return value
