"""Noise rules: fields stripped from both sides of a comparison, and how much each rule hid.

A rendered object carries fields that change without anything changing in the cluster that a
reviewer cares about: chart-version labels that move on every chart bump, `checksum/*` pod-template
annotations, SOPS metadata that changes on every re-encryption, and server-set fields such as
`status` or `metadata.resourceVersion`. Each `Rule` has a name and strips one family of them from a
copy of the object, returning what it removed. `suppressed_lines` turns the removals of both sides
into the number of diff lines each rule hid, so the report can say "12 lines hidden by rule
helm-chart-labels" instead of hiding a change silently.

This module must never format or return a removed value (SOPS metadata is ciphertext and `status`
may echo anything): removals are only compared and counted. It does no I/O.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from core.model import RawObject

# PyYAML's safe dumper: the libyaml one, several times faster, when PyYAML was built with it.
try:
    from yaml import CSafeDumper as SafeDumper
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeDumper  # type: ignore[assignment]

__all__ = [
    "CHECKSUM_ANNOTATIONS",
    "HELM_CHART_LABELS",
    "RULES",
    "SERVER_FIELDS",
    "SOPS_METADATA",
    "FieldPath",
    "Normalized",
    "Removal",
    "Rule",
    "SafeDumper",
    "changed_lines",
    "normalize",
    "suppressed_lines",
    "text_keys",
]


FieldPath = tuple[str | int, ...]
"""Keys from the object's root to one field, list positions as ints."""


@dataclass(frozen=True)
class Removal:
    """One field a rule removed; the value is kept only to count the lines it differs by."""

    path: FieldPath
    value: Any


@dataclass(frozen=True)
class Rule:
    """A named noise rule."""

    name: str
    description: str
    strip: Callable[[RawObject], list[Removal]]
    """Remove this rule's fields from an object in place and return what was removed."""


@dataclass(frozen=True)
class Normalized:
    """An object with every rule applied, and what each rule removed from it."""

    body: RawObject
    removed: Mapping[str, tuple[Removal, ...]]
    """Removals by rule name; rules that removed nothing are absent."""


# Pod templates (and the job template of a CronJob), where chart labels and checksum annotations
# are copied so that pods restart; they change together with the chart, not with the workload.
_TEMPLATE_METADATA: tuple[FieldPath, ...] = (
    ("spec", "template", "metadata"),
    ("spec", "jobTemplate", "metadata"),
    ("spec", "jobTemplate", "spec", "template", "metadata"),
)
_CHART_LABELS = ("helm.sh/chart", "app.kubernetes.io/version", "chart")
_SERVER_METADATA = (
    "creationTimestamp",
    "managedFields",
    "resourceVersion",
    "uid",
    "generation",
    "selfLink",
)


def _pop(root: RawObject, path: FieldPath) -> list[Removal]:
    """Remove the field at `path` if present, then drop the mappings the removal left empty.

    Emptied mappings are dropped because one side may have had only noise in, say, its labels
    and the other no labels at all: keeping `labels: {}` would show a change that is not there.
    Top-level fields are never dropped this way.
    """
    parents: list[tuple[dict[Any, Any], str | int]] = []
    node: Any = root
    for key in path[:-1]:
        child = node.get(key) if isinstance(node, dict) else None
        if not isinstance(child, dict):
            return []
        parents.append((node, key))
        node = child
    if not isinstance(node, dict) or path[-1] not in node:
        return []
    removal = Removal(path, node.pop(path[-1]))
    for parent, key in reversed(parents[1:]):
        if parent[key]:
            break
        del parent[key]
    return [removal]


def _mapping_at(root: RawObject, path: FieldPath) -> Mapping[Any, Any]:
    node: Any = root
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, Mapping) else {}


def _all_metadata() -> Iterator[FieldPath]:
    yield ("metadata",)
    yield from _TEMPLATE_METADATA


def _strip_server_fields(body: RawObject) -> list[Removal]:
    removed = _pop(body, ("status",))
    for meta in _all_metadata():
        for key in _SERVER_METADATA:
            removed += _pop(body, (*meta, key))
    return removed


def _strip_chart_labels(body: RawObject) -> list[Removal]:
    removed: list[Removal] = []
    for meta in _all_metadata():
        for key in _CHART_LABELS:
            removed += _pop(body, (*meta, "labels", key))
    return removed


def _strip_checksum_annotations(body: RawObject) -> list[Removal]:
    removed: list[Removal] = []
    for meta in _TEMPLATE_METADATA:
        annotations = _mapping_at(body, (*meta, "annotations"))
        for key in sorted(str(k) for k in annotations if str(k).startswith("checksum/")):
            removed += _pop(body, (*meta, "annotations", key))
    return removed


def _strip_sops(body: RawObject) -> list[Removal]:
    # Flux removes the block when it decrypts, so it never reaches the cluster.
    return _pop(body, ("sops",))


SERVER_FIELDS = Rule(
    "server-fields",
    "status, metadata.creationTimestamp, managedFields, resourceVersion, uid, generation",
    _strip_server_fields,
)
HELM_CHART_LABELS = Rule(
    "helm-chart-labels",
    "helm.sh/chart, app.kubernetes.io/version and chart labels on objects and pod templates",
    _strip_chart_labels,
)
CHECKSUM_ANNOTATIONS = Rule(
    "checksum-annotations",
    "checksum/* annotations on pod templates",
    _strip_checksum_annotations,
)
SOPS_METADATA = Rule(
    "sops-metadata",
    "the sops block of SOPS-encrypted objects (it changes on every re-encryption)",
    _strip_sops,
)
RULES: tuple[Rule, ...] = (SERVER_FIELDS, HELM_CHART_LABELS, CHECKSUM_ANNOTATIONS, SOPS_METADATA)
"""The default rules, applied in this order."""


def normalize(body: Mapping[str, Any], rules: Sequence[Rule] = RULES) -> Normalized:
    """Return a copy of `body` with every rule applied, and what each rule removed."""
    copied: RawObject = copy.deepcopy(dict(body))
    removed: dict[str, tuple[Removal, ...]] = {}
    for rule in rules:
        found = rule.strip(copied)
        if found:
            removed[rule.name] = tuple(found)
    return Normalized(copied, removed)


def changed_lines(before: Sequence[str], after: Sequence[str]) -> int:
    """Count the lines a unified diff of two line lists marks with `-` or `+`."""
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    return sum(
        (i2 - i1) + (j2 - j1) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"
    )


def _fragment(removals: Sequence[Removal]) -> list[str]:
    """Lay removed fields out as YAML lines, one top-level key per removed field."""
    if not removals:
        return []
    doc = {".".join(str(part) for part in r.path): text_keys(r.value) for r in removals}
    text = yaml.dump(doc, Dumper=SafeDumper, sort_keys=True, default_flow_style=False)
    return text.splitlines()


def text_keys(value: Any) -> Any:
    """Return a copy of `value` whose mapping keys are strings, so it dumps with sorted keys.

    YAML allows keys such as `1` or `true` next to string keys, and sorting those would fail.
    """
    if isinstance(value, Mapping):
        return {str(key): text_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [text_keys(item) for item in value]
    return value


def suppressed_lines(before: Normalized | None, after: Normalized | None) -> dict[str, int]:
    """Count, per rule, the diff lines its removals would have added to the diff.

    A side that does not exist (a created or deleted object) counts as having removed nothing.
    Rules whose removals are equal on both sides hid nothing and are left out.
    """
    empty: Mapping[str, tuple[Removal, ...]] = {}
    old = before.removed if before else empty
    new = after.removed if after else empty
    counts: dict[str, int] = {}
    for name in sorted(old.keys() | new.keys()):
        if old.get(name) == new.get(name):
            continue  # equal removals hide no line; skip dumping them
        lines = changed_lines(_fragment(old.get(name, ())), _fragment(new.get(name, ())))
        if lines:
            counts[name] = lines
    return counts
