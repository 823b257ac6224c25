"""Semantic versions and the version constraints Flux and helm accept for a chart.

`HelmChart.spec.version` is a Masterminds/semver constraint (`1.2.3`, `>=1.0.0 <2.0.0`, `~1.2`,
`^0.3`, `1.x`, `1.2 - 1.4`, `a || b`, comma or space for "and"); empty means `*`, the latest
stable version. `best_match` picks the highest version of a list that satisfies one. As in
Masterminds/semver, a pre-release version matches only a group of constraints of which one
names a pre-release itself. Pure functions: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import total_ordering

__all__ = ["ConstraintError", "Version", "best_match", "parse_constraint"]

_VERSION = re.compile(
    r"^v?(?P<major>0|[1-9]\d*)(?:\.(?P<minor>0|[1-9]\d*))?(?:\.(?P<patch>0|[1-9]\d*))?"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
_PARTIAL = re.compile(
    r"^v?(?P<major>\d+|[xX*])(?:\.(?P<minor>\d+|[xX*]))?(?:\.(?P<patch>\d+|[xX*]))?"
    r"(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$"
)
_TERM = re.compile(r"^(?P<op>!=|>=|=>|<=|=<|~>|[=><~^])?\s*(?P<version>\S+)$")
_MAX_CONSTRAINT = 256


class ConstraintError(ValueError):
    """A version constraint that cannot be parsed."""


@total_ordering
@dataclass(frozen=True)
class Version:
    """A semantic version; build metadata is ignored for ordering, as semver says."""

    major: int
    minor: int
    patch: int
    pre: tuple[int | str, ...] = ()
    text: str = ""

    @classmethod
    def parse(cls, text: str) -> Version | None:
        """Parse `1.2.3`, `v1.2.3-rc.1+build`, or a partial `1.2`; None when invalid."""
        match = _VERSION.match(text.strip())
        if not match:
            return None
        pre = match.group("pre")
        return cls(
            int(match.group("major")),
            int(match.group("minor") or 0),
            int(match.group("patch") or 0),
            tuple(int(p) if p.isdigit() else p for p in pre.split(".")) if pre else (),
            text,
        )

    def _key(self) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
        # A release sorts after its pre-releases; numeric identifiers before alphanumeric ones.
        pre = tuple((0, p) if isinstance(p, int) else (1, p) for p in self.pre)
        return (self.major, self.minor, self.patch, 0 if self.pre else 1, pre)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


Check = Callable[[Version], bool]


@dataclass(frozen=True)
class _Group:
    checks: tuple[Check, ...]
    allows_pre: bool

    def __call__(self, version: Version) -> bool:
        if version.pre and not self.allows_pre:
            return False
        return all(check(version) for check in self.checks)


def parse_constraint(text: str) -> Callable[[Version], bool]:
    """Return a predicate for a constraint string, or raise `ConstraintError`."""
    text = text.strip() or "*"
    if len(text) > _MAX_CONSTRAINT:
        raise ConstraintError("version constraint too long")
    groups = [_group(part) for part in text.split("||")]
    return lambda version: any(group(version) for group in groups)


def _group(text: str) -> _Group:
    hyphen = re.fullmatch(r"\s*(\S+)\s+-\s+(\S+)\s*", text)
    if hyphen:
        terms = [f">={hyphen.group(1)}", f"<={hyphen.group(2)}"]
    else:
        # Operators may be followed by spaces (`>= 1.2`): glue them to their version first.
        glued = re.sub(r"(!=|>=|=>|<=|=<|~>|[=><~^])\s+", r"\1", text)
        terms = [t for t in re.split(r"[\s,]+", glued) if t]
    if not terms:
        raise ConstraintError(f"empty version constraint {text.strip()!r}")
    checks = []
    allows_pre = False
    for term in terms:
        check, has_pre = _term(term)
        checks.append(check)
        allows_pre = allows_pre or has_pre
    return _Group(tuple(checks), allows_pre)


def _term(term: str) -> tuple[Check, bool]:
    match = _TERM.match(term)
    partial = _PARTIAL.match(match.group("version")) if match else None
    if match is None or partial is None:
        raise ConstraintError(f"invalid version constraint {term!r}")
    op = {"=>": ">=", "=<": "<=", "~>": "~"}.get(match.group("op") or "=", match.group("op") or "=")
    parts = [partial.group(n) for n in ("major", "minor", "patch")]
    # How many leading numbers are given: the rest are wildcards.
    given = 0
    for part in parts:
        if part is None or part in "xX*":
            break
        given += 1
    nums = [int(p) if i < given and p is not None else 0 for i, p in enumerate(parts)]
    pre_text = partial.group("pre") if given == 3 else None
    low = Version.parse(f"{nums[0]}.{nums[1]}.{nums[2]}" + (f"-{pre_text}" if pre_text else ""))
    if low is None:
        raise ConstraintError(f"invalid version constraint {term!r}")
    if given == 0:
        return (lambda v: True), False
    upper = _next(nums, given)  # first version above the wildcard range (exclusive)
    checks: dict[str, Check] = {
        "=": (lambda v: v == low) if given == 3 else (lambda v: low <= v < upper),
        "!=": (lambda v: v != low) if given == 3 else (lambda v: not low <= v < upper),
        ">": (lambda v: v > low) if given == 3 else (lambda v: v >= upper),
        ">=": lambda v: v >= low,
        "<": lambda v: v < low,
        "<=": (lambda v: v <= low) if given == 3 else (lambda v: v < upper),
        "~": lambda v: low <= v < _next(nums, min(given, 2)),
        "^": lambda v: low <= v < _caret(nums, given),
    }
    return checks[op], pre_text is not None


def _next(nums: list[int], given: int) -> Version:
    """The smallest version above every version sharing the first `given` numbers."""
    bumped = [*nums[: given - 1], nums[given - 1] + 1] + [0] * (3 - given)
    return Version(bumped[0], bumped[1], bumped[2], (0,))


def _caret(nums: list[int], given: int) -> Version:
    """`^`: changes that keep the left-most non-zero number (or the last given one)."""
    for index in range(given):
        if nums[index] != 0 or index == given - 1:
            return _next(nums, index + 1)
    return _next(nums, 1)


def best_match(constraint: str, versions: Iterable[str]) -> str | None:
    """Return the highest of `versions` satisfying `constraint` (as written), else None.

    A version string equal to the constraint wins outright, as in helm, so a chart with a
    non-semver version can still be pinned exactly. Unparseable versions are ignored.

    Raises:
        ConstraintError: the constraint is invalid.
    """
    listed = list(versions)
    if constraint.strip() and constraint.strip() in listed:
        return constraint.strip()
    matches = parse_constraint(constraint)
    best: tuple[Version, str] | None = None
    for text in listed:
        version = Version.parse(text)
        if version is not None and matches(version) and (best is None or version > best[0]):
            best = (version, text)
    return best[1] if best else None
