"""Findings get the line of their object's document in its source file, where it can be found."""

from __future__ import annotations

from core.findings import Finding, Severity
from core.model import ObjectRef
from policies.locate import add_lines
from tests.policies.files import DictFiles

FILE = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: first, namespace: web}
---
# a comment
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: web
---
apiVersion: v1
kind: ConfigMap
metadata: {name: second, namespace: web}
"""


def _finding(kind: str, name: str, file: str | None = "apps/all.yaml") -> Finding:
    return Finding(
        rule="TT001",
        severity=Severity.WARNING,
        message="m",
        ref=ObjectRef("", kind, "web", name),
        file=file,
    )


def _lines(
    *findings: Finding, head: str | None = FILE, base: str | None = None
) -> list[int | None]:
    head_files = DictFiles({"apps/all.yaml": head} if head is not None else {})
    base_files = DictFiles({"apps/all.yaml": base} if base is not None else {})
    return [f.line for f in add_lines(findings, head_files, base_files)]


def test_documents_are_found_by_kind_and_name() -> None:
    assert _lines(
        _finding("ConfigMap", "first"),
        _finding("Deployment", "api"),
        _finding("ConfigMap", "second"),
    ) == [1, 6, 12]  # the document, after its comment


def test_a_renamed_object_is_found_when_its_kind_is_unique_in_the_file() -> None:
    assert _lines(_finding("Deployment", "prod-api"), _finding("ConfigMap", "prod-first")) == [
        6,
        None,
    ]


def test_an_object_that_leaves_is_found_at_base() -> None:
    assert _lines(_finding("ConfigMap", "second"), head=None, base=FILE) == [12]


def test_unknown_files_and_broken_yaml_leave_the_line_unknown() -> None:
    assert _lines(_finding("ConfigMap", "first", file=None)) == [None]
    assert _lines(_finding("ConfigMap", "first"), head="kind: [unclosed\n") == [None]
