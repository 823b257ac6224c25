"""A Kustomization's `spec.ignore` drift rules: which fields of which objects Flux leaves alone.

Flux's Kustomization takes `ignore: [{paths: [<JSON pointer>], target?: <Selector>}]`
(kustomize-controller, after fluxcd/pkg ssa's `jsondiff.IgnoreRule`). A rule without a target
covers every object; a target matches as Flux's selector does: `group`, `version`, `kind`, `name`
and `namespace` are regular expressions anchored at both ends (RE2, as Go's, so a hostile
pattern cannot backtrack for ever), `labelSelector` and `annotationSelector` are Kubernetes
label-selector expressions over the labels and the annotations.

This module parses the rules (a bad rule raises `InputError` naming the field) and does the
pointer arithmetic the apply engine needs: the pointers that apply to one object, an object
without them, the value at a pointer. What to do with them (compare without them, adopt the
live value or release the field) is `reconciler.apply`'s. Pure: no cluster access, no I/O.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.errors import InputError
from core.model import group_of
from reconciler import label_selector
from reconciler.notification.patterns import compile_regex

__all__ = ["IgnoreRule", "Pointer", "Target", "parse_rules", "pointers_for", "value_at", "without"]

Pointer = tuple[str, ...]
"""A parsed JSON pointer (RFC 6901): its reference tokens, unescaped."""

_MAX_PATTERN = 1024
_SELECTOR_FIELDS = ("group", "version", "kind", "name", "namespace")


@dataclass(frozen=True)
class Target:
    """Flux's `Selector`: every set field must match."""

    patterns: tuple[tuple[str, Any], ...] = ()
    """(field, compiled RE2 pattern) for group, version, kind, name and namespace."""
    labels: label_selector.Selector = field(default_factory=label_selector.Selector)
    annotations: label_selector.Selector = field(default_factory=label_selector.Selector)

    def matches(self, obj: Mapping[str, Any]) -> bool:
        """Whether `obj` is selected."""
        api_version = str(obj.get("apiVersion", ""))
        meta: Mapping[str, Any] = obj.get("metadata") or {}
        facts = {
            "group": group_of(api_version),
            "version": api_version.rsplit("/", 1)[-1],
            "kind": str(obj.get("kind", "")),
            "name": str(meta.get("name", "")),
            "namespace": str(meta.get("namespace") or ""),
        }
        if not all(pattern.fullmatch(facts[name]) for name, pattern in self.patterns):
            return False
        labels = _strings(meta.get("labels"))
        annotations = _strings(meta.get("annotations"))
        return self.labels.matches(labels) and self.annotations.matches(annotations)


@dataclass(frozen=True)
class IgnoreRule:
    """One `spec.ignore` entry: the pointers, and the objects they apply to (None: all)."""

    paths: tuple[Pointer, ...]
    target: Target | None = None


def parse_rules(value: Any, label: str) -> tuple[IgnoreRule, ...]:
    """Read `spec.ignore` of the Kustomization `label`; raise `InputError` naming a bad field."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InputError("must be a list of rules", obj=label, field="spec.ignore")
    return tuple(_rule(item, label, f"spec.ignore[{index}]") for index, item in enumerate(value))


def pointers_for(rules: Sequence[IgnoreRule], obj: Mapping[str, Any]) -> tuple[Pointer, ...]:
    """The pointers of every rule whose target selects `obj`, in order, without repeats."""
    found: dict[Pointer, None] = {}
    for rule in rules:
        if rule.target is None or rule.target.matches(obj):
            found.update(dict.fromkeys(rule.paths))
    return tuple(found)


def without(obj: Mapping[str, Any], pointers: Iterable[Pointer]) -> dict[str, Any]:
    """A deep copy of `obj` with the value at each pointer removed (absent ones are skipped)."""
    result = copy.deepcopy(dict(obj))
    for pointer in pointers:
        _remove(result, pointer)
    return result


def value_at(obj: Any, pointer: Pointer) -> tuple[bool, Any]:
    """(True, the value) at `pointer` in `obj`, or (False, None) when nothing is there."""
    node = obj
    for token in pointer:
        if isinstance(node, Mapping) and token in node:
            node = node[token]
        elif isinstance(node, list) and _index(token, len(node)) is not None:
            node = node[int(token)]
        else:
            return False, None
    return True, node


def set_value(obj: dict[str, Any], pointer: Pointer, value: Any) -> bool:
    """Put `value` at `pointer` where its parent exists; whether it was put."""
    if not pointer:
        return False
    found, parent = value_at(obj, pointer[:-1])
    last = pointer[-1]
    if found and isinstance(parent, dict):
        parent[last] = copy.deepcopy(value)
        return True
    if found and isinstance(parent, list) and _index(last, len(parent)) is not None:
        parent[int(last)] = copy.deepcopy(value)
        return True
    return False


def _remove(obj: Any, pointer: Pointer) -> None:
    if not pointer:
        return
    found, parent = value_at(obj, pointer[:-1])
    last = pointer[-1]
    if found and isinstance(parent, dict):
        parent.pop(last, None)
    elif found and isinstance(parent, list) and _index(last, len(parent)) is not None:
        del parent[int(last)]


def _index(token: str, length: int) -> int | None:
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        return None
    index = int(token)
    return index if index < length else None


def _rule(item: Any, label: str, where: str) -> IgnoreRule:
    if not isinstance(item, Mapping):
        raise InputError(
            "must be an object with paths and an optional target", obj=label, field=where
        )
    paths = item.get("paths")
    if not isinstance(paths, list) or not paths:
        raise InputError("is required: a list of JSON pointers", obj=label, field=f"{where}.paths")
    pointers = tuple(
        _pointer(path, label, f"{where}.paths[{index}]") for index, path in enumerate(paths)
    )
    target = item.get("target")
    if target is None:
        return IgnoreRule(pointers)
    if not isinstance(target, Mapping):
        raise InputError("must be a selector object", obj=label, field=f"{where}.target")
    return IgnoreRule(pointers, _target(target, label, f"{where}.target"))


def _pointer(path: Any, label: str, where: str) -> Pointer:
    if not isinstance(path, str) or not path.startswith("/"):
        raise InputError(
            "must be a JSON pointer starting with '/' (like /spec/replicas)", obj=label, field=where
        )
    if re.search(r"~[^01]|~$", path):
        raise InputError(
            "has a '~' that is not '~0' or '~1' (RFC 6901 escapes)", obj=label, field=where
        )
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/"))


def _target(target: Mapping[str, Any], label: str, where: str) -> Target:
    patterns = []
    for name in _SELECTOR_FIELDS:
        pattern = target.get(name)
        if pattern in (None, ""):
            continue
        compiled = (
            compile_regex(pattern)
            if isinstance(pattern, str) and len(pattern) <= _MAX_PATTERN
            else None
        )
        if compiled is None:
            raise InputError(
                "is not a valid regular expression (RE2 syntax)", obj=label, field=f"{where}.{name}"
            )
        patterns.append((name, compiled))
    return Target(
        tuple(patterns),
        _selector(target.get("labelSelector"), label, f"{where}.labelSelector"),
        _selector(target.get("annotationSelector"), label, f"{where}.annotationSelector"),
    )


def _selector(text: Any, label: str, where: str) -> label_selector.Selector:
    if text is None:
        return label_selector.Selector()
    if not isinstance(text, str):
        raise InputError("must be a label selector expression", obj=label, field=where)
    try:
        return label_selector.parse(text)
    except ValueError as exc:
        raise InputError(str(exc), obj=label, field=where) from None


def _strings(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else {}
