"""Chart version constraints resolved as Flux and helm resolve them (Masterminds/semver)."""

from __future__ import annotations

import pytest

from core.sources.semver import ConstraintError, Version, best_match

VERSIONS = ["0.1.0", "0.2.5", "1.0.0", "1.1.0", "1.2.3", "1.2.9", "1.3.0-rc.1", "2.0.0", "v2.1.0"]


@pytest.mark.parametrize(
    ("constraint", "expected"),
    [
        ("", "v2.1.0"),
        ("*", "v2.1.0"),
        ("1.2.3", "1.2.3"),
        ("=1.1.0", "1.1.0"),
        (">=1.0.0 <2.0.0", "1.2.9"),
        (">=1.0.0, <2.0.0", "1.2.9"),
        (">= 1.0.0 < 2.0.0", "1.2.9"),
        ("~1.2.0", "1.2.9"),
        ("~1.2", "1.2.9"),
        ("~1", "1.2.9"),
        ("^1.1", "1.2.9"),
        ("^0.1.0", "0.1.0"),
        ("^0", "0.2.5"),
        ("1.x", "1.2.9"),
        ("1.2.x", "1.2.9"),
        ("1.0.0 - 1.2.3", "1.2.3"),
        ("<1.0.0", "0.2.5"),
        ("<=1.2", "1.2.9"),
        (">1.2", "v2.1.0"),
        ("!=2.x", "1.2.9"),
        ("<1.0.0 || >=2.0.0 <2.1.0", "2.0.0"),
        (">=1.3.0-rc.0 <1.4.0", "1.3.0-rc.1"),
        (">=3.0.0", None),
    ],
)
def test_best_match(constraint: str, expected: str | None) -> None:
    assert best_match(constraint, VERSIONS) == expected


def test_prereleases_match_only_constraints_that_name_one() -> None:
    assert best_match("*", ["1.0.0", "1.1.0-beta.1"]) == "1.0.0"
    assert best_match(">=1.1.0-0", ["1.0.0", "1.1.0-beta.1"]) == "1.1.0-beta.1"


def test_an_exact_non_semver_version_still_matches_by_its_text() -> None:
    assert best_match("2024-07-01", ["2024-07-01", "1.0.0"]) == "2024-07-01"


def test_ordering_follows_semver_precedence() -> None:
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-rc.1", "1.0.0"]
    parsed = [Version.parse(v) for v in ordered]
    assert all(p is not None for p in parsed)
    assert sorted(parsed, key=lambda v: v._key()) == parsed  # type: ignore[union-attr]
    assert Version.parse("1.0.0+build.1") == Version.parse("1.0.0")


@pytest.mark.parametrize("constraint", [">>1.0", "1.2.3.4", "abc", "~", ">=1.0.0 ||"])
def test_invalid_constraints_are_errors(constraint: str) -> None:
    with pytest.raises(ConstraintError):
        best_match(constraint, VERSIONS)
