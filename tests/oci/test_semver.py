"""Version constraints as Masterminds/semver v3 evaluates them, and Flux's strict tag parse."""

from __future__ import annotations

import pytest

from core.semver import Constraint, SemverError, highest, parse_tag, parse_version

TAGS = ["1.0.0", "1.1.0", "1.2.3", "v1.4.0", "2.0.0", "2.1.0-rc.1", "0.2.3", "0.0.3", "latest"]


def best(constraint: str, tags: list[str] = TAGS) -> str | None:
    versions = [v for v in map(parse_tag, tags) if v is not None]
    found = highest(versions, Constraint.parse(constraint))
    return found.original if found else None


@pytest.mark.parametrize(
    ("constraint", "expected"),
    [
        ("", "2.0.0"),
        ("*", "2.0.0"),
        (">=1.0.0 <2.0.0", "v1.4.0"),
        (">=1.0.0, <2.0.0", "v1.4.0"),
        ("1.x", "v1.4.0"),
        ("~1.1", "1.1.0"),
        ("~1.2.0", "1.2.3"),
        ("^1.1", "v1.4.0"),
        ("^0.2", "0.2.3"),
        ("^0.0.3", "0.0.3"),
        (">1.x", "2.0.0"),
        ("<=1.1", "1.1.0"),
        ("1.0.0 - 1.2", "1.2.3"),
        ("!=2.0.0", "v1.4.0"),
        ("<1.0.0 || >=2.0.0", "2.0.0"),
        ("=1.1.0", "1.1.0"),
        ("1.1", "1.1.0"),
        (">=2.1.0-rc.0", "2.1.0-rc.1"),
        (">=3.0.0", None),
    ],
)
def test_constraints_pick_the_highest_match(constraint: str, expected: str | None) -> None:
    assert best(constraint) == expected


def test_prereleases_match_only_constraints_that_name_one() -> None:
    assert best(">=2.0.0") == "2.0.0"
    assert best(">=2.1.0-alpha") == "2.1.0-rc.1"


@pytest.mark.parametrize("text", ["latest", "1.2", "01.2.3", "1.2.3.4", "v1.2.3-01", "x"])
def test_tags_are_strict_versions(text: str) -> None:
    assert parse_tag(text) is None


def test_prerelease_precedence_follows_semver() -> None:
    order = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta.2", "1.0.0-beta.11"]
    parsed = [parse_version(text) for text in [*order, "1.0.0"]]
    assert sorted(parsed, key=lambda v: v.key()) == parsed


@pytest.mark.parametrize("text", ["foo", ">= ", "1.0.0 ||", ">>1", "1.0.0 junk"])
def test_bad_constraints_are_errors(text: str) -> None:
    with pytest.raises(SemverError, match="improper constraint"):
        Constraint.parse(text)
