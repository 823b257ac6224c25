"""The one repository-path normaliser: canonical forms and every way out refused."""

from __future__ import annotations

import pytest

from core.errors import InputError
from core.host.paths import flux_path, join, normalize


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("", ""),
        (".", ""),
        ("./", ""),
        ("apps", "apps"),
        ("./apps/base/", "apps/base"),
        ("apps//base/./x.yaml", "apps/base/x.yaml"),
        ("apps/../infra", "infra"),
    ],
)
def test_normalize_gives_the_canonical_form(path: str, expected: str) -> None:
    assert normalize(path) == expected


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("/etc/passwd", "not a repository-relative POSIX path"),
        ("..", "leaves the repository"),
        ("../x", "leaves the repository"),
        ("apps/../../x", "leaves the repository"),
        ("apps\\..\\..\\x", "not a repository-relative POSIX path"),
        ("apps/\0x", "not a repository-relative POSIX path"),
    ],
)
def test_normalize_refuses_paths_out_of_the_repository(path: str, problem: str) -> None:
    with pytest.raises(InputError, match=problem):
        normalize(path)


def test_normalize_names_file_and_field() -> None:
    with pytest.raises(InputError) as caught:
        normalize("../x", file="k.yaml", field="resources[0]")
    assert str(caught.value) == "file k.yaml, field resources[0]: path '../x' leaves the repository"


@pytest.mark.parametrize(
    ("base", "entry", "expected"),
    [
        ("", "a.yaml", "a.yaml"),
        ("apps/base", "a.yaml", "apps/base/a.yaml"),
        ("apps/base", "../common", "apps/common"),
        ("apps/base", "../..", ""),
        ("apps", "./x/", "apps/x"),
    ],
)
def test_join_resolves_relative_to_the_base(base: str, entry: str, expected: str) -> None:
    assert join(base, entry) == expected


@pytest.mark.parametrize(
    ("base", "entry", "problem"),
    [
        ("apps", "/etc/passwd", "absolute path '/etc/passwd' is not allowed"),
        ("apps/base", "../../..", "path '../../..' leaves the repository"),
        ("", "../outside", "path '../outside' leaves the repository"),
        ("apps", "a\\b", "not a POSIX path"),
    ],
)
def test_join_refuses_entries_out_of_the_repository(base: str, entry: str, problem: str) -> None:
    with pytest.raises(InputError, match=problem) as caught:
        join(base, entry, file="apps/kustomization.yaml", field="files[0]")
    assert "file apps/kustomization.yaml, field files[0]" in str(caught.value)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("./clusters/prod", "clusters/prod"),
        ("/clusters/prod/", "clusters/prod"),
        (" ./ ", ""),
        ("../../apps", "apps"),
        ("apps/../../../etc", "etc"),
    ],
)
def test_flux_path_joins_like_securejoin(path: str, expected: str) -> None:
    assert flux_path(path) == expected


def test_flux_path_refuses_what_is_not_posix() -> None:
    with pytest.raises(InputError, match="not a repository-relative POSIX path"):
        flux_path("apps\\prod")
