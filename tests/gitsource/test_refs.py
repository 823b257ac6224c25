"""Reference precedence, revision strings and the names git is never given."""

from __future__ import annotations

import pytest

from core.errors import InputError
from reconciler.source.refs import GitReference, Target, revision, select_semver_tag

SHA = "0123456789abcdef0123456789abcdef01234567"
WHERE = "GitRepository ns/repo"


def ref(**fields: str) -> GitReference:
    return GitReference.from_spec(fields, WHERE)


def test_no_ref_means_the_master_branch() -> None:
    assert GitReference.from_spec(None, WHERE).target() == Target("refs/heads/master", "master")
    assert ref().target() == Target("refs/heads/master", "master")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"branch": "main"}, Target("refs/heads/main", "main")),
        ({"branch": "main", "tag": "v1"}, Target("refs/tags/v1", "v1")),
        ({"tag": "v1", "semver": ">=1.0.0"}, Target("refs/tags/v1.2.0", "v1.2.0")),
        (
            {"semver": "*", "name": "refs/pull/4/head"},
            Target("refs/pull/4/head", "refs/pull/4/head"),
        ),
        ({"name": "refs/heads/x", "commit": SHA}, Target(SHA, "", SHA)),
        ({"branch": "main", "commit": SHA}, Target(SHA, "main", SHA)),
    ],
)
def test_precedence_is_commit_name_semver_tag_branch(
    fields: dict[str, str], expected: Target
) -> None:
    assert ref(**fields).target(["v1.0.0", "v1.2.0", "v2.0.0-rc.1", "latest"]) == expected


def test_revision_strings_are_fluxs() -> None:
    assert revision("main", SHA) == f"main@sha1:{SHA}"
    assert revision("v1.2.3", SHA) == f"v1.2.3@sha1:{SHA}"
    assert revision("refs/heads/main", SHA) == f"refs/heads/main@sha1:{SHA}"
    assert revision("", SHA) == f"sha1:{SHA}"
    assert revision("main", "a" * 64) == f"main@sha256:{'a' * 64}"


def test_semver_picks_the_highest_matching_tag_and_skips_non_versions() -> None:
    tags = ["v1.0.0", "1.1.0", "v1.10.0", "v2.0.0", "v1.11.0-rc.1", "release", "v1.2"]
    assert select_semver_tag(tags, "~1") == "v1.10.0"
    assert select_semver_tag(tags, ">=1.0.0 <3") == "v2.0.0"
    with pytest.raises(InputError, match="no tag matches the semver constraint '>=5'"):
        select_semver_tag(tags, ">=5")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("branch", "-upload-pack=evil"),
        ("branch", "main:refs/heads/x"),
        ("branch", "+main"),
        ("tag", "../../etc"),
        ("branch", "a b"),
        ("branch", "main.lock"),
        ("name", "heads/main"),
        ("commit", "abc123"),
        ("commit", SHA.upper()),
        ("semver", ">=> 1"),
    ],
)
def test_unsafe_or_invalid_names_are_refused_naming_the_field(field: str, value: str) -> None:
    with pytest.raises(InputError) as caught:
        ref(**{field: value})
    assert f"object {WHERE}, field spec.ref.{field}:" in str(caught.value)


def test_a_ref_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(InputError, match=r"field spec\.ref: spec\.ref must be an object"):
        GitReference.from_spec("main", WHERE)
