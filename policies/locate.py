"""Find the line of an object in its source file, so findings annotate the right place.

Renders know which file an object came from (kustomize's origin) but not where in it. This reads
the file (head revision, else base for an object that leaves) and returns the first line of the
YAML document whose `kind` and `metadata.name` are the object's; when the name was changed by the
build (`namePrefix`, a generator's hash suffix), the only document of that kind, if there is just
one. Otherwise the line stays unknown. Each file is parsed once; files over 1 MiB or that are not
valid YAML are skipped, never an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

import yaml

from core.findings import Finding

if TYPE_CHECKING:
    from policies.gate import RevisionFiles

__all__ = ["add_lines"]

_MAX_FILE = 1 << 20


class _Index:
    """(kind, name, first line) of every document of each file read so far, per revision."""

    def __init__(self) -> None:
        self.files: dict[tuple[int, str], list[tuple[str, str, int]]] = {}

    def documents(self, side: RevisionFiles, path: str) -> list[tuple[str, str, int]]:
        key = (id(side), path)
        if key not in self.files:
            self.files[key] = _parse(side, path)
        return self.files[key]


def _parse(side: RevisionFiles, path: str) -> list[tuple[str, str, int]]:
    data = side.read(path)
    if data is None or len(data) > _MAX_FILE:
        return []
    try:
        nodes = list(yaml.compose_all(data.decode("utf-8", errors="replace")))
    except yaml.YAMLError:
        return []
    return [entry for node in nodes if (entry := _entry(node)) is not None]


def _entry(node: yaml.Node | None) -> tuple[str, str, int] | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    kind = name = ""
    for key, value in node.value:
        if getattr(key, "value", None) == "kind" and isinstance(value, yaml.ScalarNode):
            kind = str(value.value)
        if getattr(key, "value", None) == "metadata" and isinstance(value, yaml.MappingNode):
            for meta_key, meta_value in value.value:
                if getattr(meta_key, "value", None) == "name" and isinstance(
                    meta_value, yaml.ScalarNode
                ):
                    name = str(meta_value.value)
    return kind, name, node.start_mark.line + 1


def _line(
    index: _Index, sides: tuple[RevisionFiles, ...], path: str, kind: str, name: str
) -> int | None:
    for side in sides:
        for doc_kind, doc_name, line in index.documents(side, path):
            if doc_kind == kind and doc_name == name:
                return line
    for side in sides:
        documents = index.documents(side, path)
        same_kind = [line for doc_kind, _, line in documents if doc_kind == kind]
        if len(same_kind) == 1:
            return same_kind[0]
    return None


def add_lines(
    findings: Iterable[Finding], head: RevisionFiles, base: RevisionFiles
) -> tuple[Finding, ...]:
    """Return the findings with `line` filled in where the object's document can be found."""
    index = _Index()
    located = []
    for found in findings:
        if found.line is None and found.file and found.ref is not None:
            line = _line(index, (head, base), found.file, found.ref.kind, found.ref.name)
            if line is not None:
                found = replace(found, line=line)
        located.append(found)
    return tuple(located)
