"""Kubernetes label-selector expressions (`tier=front,env in (a,b),!canary`), matched locally.

The API server matches these in list and watch requests; the reconciler matches the same
grammar where it holds the objects itself: a drift ignore rule's `labelSelector` and
`annotationSelector`, and the shard selector on objects informed without it. Terms: `key`,
`!key`, `key=value`, `key==value`, `key!=value`, `key in (a,b)`, `key notin (a,b)`, joined by
commas. Pure: parsing and matching only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Selector", "parse"]

_MAX = 4096
_TERM = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9][-A-Za-z0-9_./]*)\s*"
    r"(?:(?P<op>==|=|!=)\s*(?P<value>[-A-Za-z0-9_.]*)"
    r"|\s(?P<set>in|notin)\s*\((?P<values>[^()]*)\))?\s*$"
)


@dataclass(frozen=True)
class _Requirement:
    key: str
    op: str  # exists, !exists, =, !=, in, notin
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("=", "in"):
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values  # != and notin


@dataclass(frozen=True)
class Selector:
    """Every term must match; the empty selector matches everything."""

    terms: tuple[_Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether `labels` satisfy every term."""
        return all(term.matches(labels) for term in self.terms)


def parse(text: str) -> Selector:
    """The selector `text` says; raise `ValueError` naming the term it cannot read."""
    if len(text) > _MAX:
        raise ValueError(f"a selector of at most {_MAX} characters, not {len(text)}")
    if not text.strip():
        return Selector()
    return Selector(tuple(_requirement(term) for term in _terms(text)))


def _terms(text: str) -> list[str]:
    """Split on the commas outside parentheses (`a in (x,y),b` is two terms)."""
    terms, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(text[start:index])
            start = index + 1
    terms.append(text[start:])
    return terms


def _requirement(term: str) -> _Requirement:
    match = _TERM.match(term)
    if match is None or (match["neg"] and (match["op"] or match["set"])):
        raise ValueError(f"cannot read {term.strip()!r} as a selector term")
    key = match["key"]
    if match["neg"]:
        return _Requirement(key, "!exists", frozenset())
    if match["op"]:
        return _Requirement(key, "!=" if match["op"] == "!=" else "=", frozenset({match["value"]}))
    if match["set"]:
        values = frozenset(v.strip() for v in match["values"].split(",") if v.strip())
        return _Requirement(key, match["set"], values)
    return _Requirement(key, "exists", frozenset())
