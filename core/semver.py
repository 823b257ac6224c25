"""Semantic versions and version constraints, with the rules Flux applies to tags and charts.

Flux picks OCI tags and chart versions with `github.com/Masterminds/semver/v3`: a constraint is
`||`-separated groups of comma- or space-separated comparisons (`=`, `!=`, `>`, `<`, `>=`, `<=`,
`~`, `~>`, `^`), with `x`/`X`/`*` or missing parts as wildcards and `a - b` hyphen ranges; a
pre-release version matches only a comparison that names a pre-release itself. Tags are read with
fluxcd/pkg `version.ParseVersion`: strict `MAJOR.MINOR.PATCH[-pre][+meta]`, an optional leading
`v` allowed; anything else is not a version and is skipped. This module is pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = ["Constraint", "SemverError", "Version", "highest", "parse_tag", "parse_version"]


class SemverError(ValueError):
    """A version or constraint that does not parse; the message quotes it."""


_LENIENT = re.compile(
    r"^v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
_NUMBER = r"(?:0|[1-9][0-9]*)"
_PRE_PART = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_STRICT = re.compile(
    rf"^({_NUMBER})\.({_NUMBER})\.({_NUMBER})"
    rf"(?:-({_PRE_PART}(?:\.{_PRE_PART})*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
_MAX_TEXT = 256


@dataclass(frozen=True)
class Version:
    """A parsed version; ordering follows semver precedence (build metadata ignored)."""

    major: int
    minor: int
    patch: int
    prerelease: str = ""
    metadata: str = ""
    original: str = field(default="", compare=False)

    def key(self) -> tuple[int, int, int, tuple[int, tuple[tuple[int, int | str], ...]]]:
        """A sort key: a release sorts after its pre-releases; numeric parts before words."""
        if not self.prerelease:
            return (self.major, self.minor, self.patch, (1, ()))
        parts = tuple(
            (0, int(part)) if part.isdigit() else (1, part) for part in self.prerelease.split(".")
        )
        return (self.major, self.minor, self.patch, (0, parts))

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += f"-{self.prerelease}"
        if self.metadata:
            text += f"+{self.metadata}"
        return text


def parse_version(text: str) -> Version:
    """Parse leniently, as Masterminds `NewVersion`: `v1`, `1.2` and `v1.2.3-rc.1` are versions."""
    match = _LENIENT.match(text) if len(text) <= _MAX_TEXT else None
    if match is None:
        raise SemverError(f"{text[:_MAX_TEXT]!r} is not a semantic version")
    major, minor, patch, pre, meta = match.groups()
    return Version(
        int(major),
        int(minor[1:]) if minor else 0,
        int(patch[1:]) if patch else 0,
        pre or "",
        meta or "",
        text,
    )


def parse_tag(text: str) -> Version | None:
    """Parse a tag as Flux does (strict semver, optional leading `v`); None when it is not one."""
    match = _STRICT.match(text.removeprefix("v")) if len(text) <= _MAX_TEXT else None
    if match is None:
        return None
    major, minor, patch, pre, meta = match.groups()
    return Version(int(major), int(minor), int(patch), pre or "", meta or "", text)


# --------------------------------------------------------------------------------------------
# Constraints.

_CV = (
    r"v?([0-9xX*]+)(\.[0-9xX*]+)?(\.[0-9xX*]+)?"
    r"(-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)
_CV_BARE = _CV.replace("(", "(?:").replace("(?:?:", "(?:")
_OPS = r"!=|>=|=>|<=|=<|~>|>|<|=|~|\^"
_ONE = re.compile(rf"^\s*({_OPS})?\s*{_CV}\s*$")
_FIND = re.compile(rf"(?:{_OPS})?\s*{_CV_BARE}")
_VALID_GROUP = re.compile(
    rf"^\s*(?:{_OPS})?\s*{_CV_BARE}\s*(?:(?:\s+|,\s*)(?:{_OPS})?\s*{_CV_BARE}\s*)*$"
)
_RANGE = re.compile(rf"\s*({_CV_BARE})\s+-\s+({_CV_BARE})\s*")


@dataclass(frozen=True)
class _Comparison:
    op: str
    version: Version
    dirty: bool
    minor_dirty: bool
    patch_dirty: bool

    def check(self, v: Version) -> bool:
        if v.prerelease and not self.version.prerelease:
            # A pre-release matches only a comparison that asks for pre-releases.
            return False
        return _CHECKS[self.op](v, self)


def _wild(part: str | None) -> bool:
    return part in (None, "", "x", "X", "*")


def _comparison(text: str) -> _Comparison:
    match = _ONE.match(text)
    if match is None:
        raise SemverError(f"improper constraint: {text.strip()!r}")
    op, major, minor, patch, pre, _meta = match.groups()
    pre = pre or ""
    minor_part = minor[1:] if minor else None
    patch_part = patch[1:] if patch else None
    if _wild(major):
        version, dirty, minor_dirty, patch_dirty = f"0.0.0{pre}", True, False, False
    elif _wild(minor_part):
        version, dirty, minor_dirty, patch_dirty = f"{major}.0.0{pre}", True, True, False
    elif _wild(patch_part):
        version, dirty, minor_dirty, patch_dirty = f"{major}.{minor_part}.0{pre}", True, False, True
    else:
        version, dirty, minor_dirty, patch_dirty = (
            f"{major}.{minor_part}.{patch_part}{pre}",
            (False),
            False,
            False,
        )
    return _Comparison(op or "", parse_version(version), dirty, minor_dirty, patch_dirty)


@dataclass(frozen=True)
class Constraint:
    """A parsed constraint: any `||` group whose comparisons all hold matches."""

    text: str
    groups: tuple[tuple[_Comparison, ...], ...]

    @classmethod
    def parse(cls, text: str) -> Constraint:
        """Parse a constraint; an empty one matches every release (`*`)."""
        if len(text) > _MAX_TEXT:
            raise SemverError("constraint is too long")
        rewritten = _RANGE.sub(lambda m: f" >= {m.group(1)}, <= {m.group(2)} ", text)
        groups: list[tuple[_Comparison, ...]] = []
        for group in rewritten.split("||"):
            if not group.strip():
                if text.strip():
                    raise SemverError(f"improper constraint: {text!r}")
                groups.append((_comparison("*"),))
                continue
            if not _VALID_GROUP.match(group):
                raise SemverError(f"improper constraint: {group.strip()!r}")
            groups.append(tuple(_comparison(found) for found in _FIND.findall(group)))
        return cls(text, tuple(groups))

    def check(self, version: Version) -> bool:
        """Tell whether a version satisfies the constraint."""
        return any(all(c.check(version) for c in group) for group in self.groups)


def _tilde(v: Version, c: _Comparison) -> bool:
    con = c.version
    if v.key() < con.key():
        return False
    if (con.major, con.minor, con.patch) == (0, 0, 0) and not c.minor_dirty and not c.patch_dirty:
        return True
    if v.major != con.major:
        return False
    return v.minor == con.minor or c.minor_dirty


def _equal(v: Version, c: _Comparison) -> bool:
    return _tilde(v, c) if c.dirty else v.key() == c.version.key()


def _not_equal(v: Version, c: _Comparison) -> bool:
    con = c.version
    if c.dirty:
        if con.major != v.major:
            return True
        if c.minor_dirty:
            return False
        if con.minor != v.minor:
            return True
        if c.patch_dirty:
            return v.prerelease != con.prerelease and bool(v.prerelease or con.prerelease)
    return v.key() != con.key()


def _greater(v: Version, c: _Comparison) -> bool:
    con = c.version
    if not c.dirty:
        return v.key() > con.key()
    if v.major != con.major:
        return v.major > con.major
    if c.minor_dirty:
        return False
    if c.patch_dirty:
        return v.minor > con.minor
    return v.key() > con.key()


def _less_equal(v: Version, c: _Comparison) -> bool:
    con = c.version
    if not c.dirty:
        return v.key() <= con.key()
    if v.major > con.major:
        return False
    return not (v.major == con.major and v.minor > con.minor and not c.minor_dirty)


def _caret(v: Version, c: _Comparison) -> bool:
    con = c.version
    if v.key() < con.key():
        return False
    if con.major > 0 or c.minor_dirty:
        return v.major == con.major
    if v.major > 0:
        return False
    if con.minor > 0 or c.patch_dirty:
        return v.minor == con.minor
    if v.minor > 0:
        return False
    return v.patch == con.patch


_CHECKS: dict[str, Callable[[Version, _Comparison], bool]] = {
    "": _equal,
    "=": _equal,
    "!=": _not_equal,
    ">": _greater,
    "<": lambda v, c: v.key() < c.version.key(),
    ">=": lambda v, c: v.key() >= c.version.key(),
    "=>": lambda v, c: v.key() >= c.version.key(),
    "<=": _less_equal,
    "=<": _less_equal,
    "~": _tilde,
    "~>": _tilde,
    "^": _caret,
}


def highest(versions: Iterable[Version], constraint: Constraint) -> Version | None:
    """Return the highest version that satisfies the constraint, or None."""
    matching = [v for v in versions if constraint.check(v)]
    return max(matching, key=Version.key) if matching else None
