"""A GitRepository's `spec.ref`: which remote ref to fetch, and the revision string of the result.

Flux's precedence, first set wins: `commit` > `name` > `semver` > `tag` > `branch`; no ref at all
means the branch `master` (the API's default). Revision strings are Flux's (fluxcd/pkg
`git.Commit.String()`): `<branch>@sha1:<hex>`, `<tag>@sha1:<hex>`, the full ref for `name`
(`refs/heads/main@sha1:<hex>`), and a bare `sha1:<hex>` for a commit alone (`<branch>@sha1:` when
a branch names where the commit lives). `semver` picks the highest tag (leading `v` allowed,
strict semver) satisfying the constraint, as source-controller does.

Every name is checked before it reaches git: a ref is a refspec source and a command argument,
so a name that could be read as an option (`-x`), a refspec (`a:b`, `+a`) or a path trick (`..`)
is refused with a message naming the field. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from core import semver
from core.errors import InputError

__all__ = ["DEFAULT_BRANCH", "GitReference", "Target", "revision", "select_semver_tag"]

DEFAULT_BRANCH = "master"
"""The branch Flux's API defaults to when `spec.ref` is empty."""

_COMMIT = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
# git check-ref-format's rules, tightened to the characters refs use in practice.
_REF_CHARS = re.compile(r"[A-Za-z0-9._/+@{}-]+")
_MAX_REF = 250


@dataclass(frozen=True)
class Target:
    """What to fetch for a reference and how its revision string starts."""

    fetch: str
    """The remote ref (`refs/heads/main`) or the commit id to fetch."""
    label: str
    """The revision's prefix before `@`: `main`, `v1.2.3`, `refs/pull/1/head`; "" for none."""
    commit: str = ""
    """The commit `spec.ref.commit` pins, checked against what the fetch returns."""


@dataclass(frozen=True)
class GitReference:
    """`spec.ref`, validated."""

    branch: str = ""
    tag: str = ""
    semver: str = ""
    name: str = ""
    commit: str = ""

    @classmethod
    def from_spec(cls, ref: Any, where: str) -> GitReference:
        """Read `spec.ref` (a mapping or absent); `where` names the object in errors.

        Raises:
            InputError: a field is not a string, or not a name git could take safely.
        """
        if ref is None:
            return cls()
        if not isinstance(ref, Mapping):
            raise InputError("spec.ref must be an object", obj=where, field="spec.ref")
        values = {key: _string(ref, key, where) for key in ("branch", "tag", "semver", "name")}
        commit = _string(ref, "commit", where)
        if commit and not _COMMIT.fullmatch(commit):
            raise InputError(
                f"spec.ref.commit must be a full commit id (40 or 64 lower-case hex), got "
                f"{commit[:80]!r}",
                obj=where,
                field="spec.ref.commit",
            )
        for key in ("branch", "tag", "name"):
            if values[key]:
                _check_ref(values[key], f"spec.ref.{key}", where)
        if values["name"] and not values["name"].startswith("refs/"):
            raise InputError(
                f"spec.ref.name must be a full reference such as refs/heads/main, got "
                f"{values['name'][:80]!r}",
                obj=where,
                field="spec.ref.name",
            )
        if values["semver"]:
            try:
                semver.Constraint.parse(values["semver"])
            except semver.SemverError as exc:
                raise InputError(
                    f"spec.ref.semver: {exc}", obj=where, field="spec.ref.semver"
                ) from None
        return cls(commit=commit, **values)

    @property
    def needs_tags(self) -> bool:
        """Whether resolving this reference needs the remote's tag list (semver)."""
        return not self.commit and not self.name and bool(self.semver)

    def target(self, tags: Iterable[str] = ()) -> Target:
        """What to fetch, by Flux's precedence; `tags` are the remote's tag names (for semver).

        Raises:
            InputError: no tag satisfies the semver constraint.
        """
        if self.commit:
            return Target(self.commit, self.branch, self.commit)
        if self.name:
            return Target(self.name, self.name)
        if self.semver:
            tag = select_semver_tag(tags, self.semver)
            return Target(f"refs/tags/{tag}", tag)
        if self.tag:
            return Target(f"refs/tags/{self.tag}", self.tag)
        branch = self.branch or DEFAULT_BRANCH
        return Target(f"refs/heads/{branch}", branch)


def revision(label: str, commit: str) -> str:
    """Flux's revision string: `<label>@sha1:<hex>`, or `sha1:<hex>` without a label."""
    algorithm = "sha256" if len(commit) == 64 else "sha1"
    return f"{label}@{algorithm}:{commit}" if label else f"{algorithm}:{commit}"


def select_semver_tag(tags: Iterable[str], constraint: str) -> str:
    """The tag of the highest version satisfying `constraint` (tags that are not versions skip).

    Raises:
        InputError: none matches.
    """
    parsed = semver.Constraint.parse(constraint)
    versions = [v for v in (semver.parse_tag(tag) for tag in tags) if v is not None]
    best = semver.highest(versions, parsed)
    if best is None:
        raise InputError(
            f"no tag matches the semver constraint {constraint!r}", field="spec.ref.semver"
        )
    return best.original


def _string(ref: Mapping[str, Any], key: str, where: str) -> str:
    value = ref.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError(f"spec.ref.{key} must be a string", obj=where, field=f"spec.ref.{key}")
    return value.strip()


def _check_ref(value: str, field: str, where: str) -> None:
    """Refuse what git would take as an option, a refspec or a path trick."""
    bad = (
        len(value) > _MAX_REF
        or not _REF_CHARS.fullmatch(value)
        or value.startswith(("-", "/", ".", "+"))
        or value.endswith(("/", ".", ".lock"))
        or ".." in value
        or "//" in value
        or "@{" in value
        or "/." in value
    )
    if bad:
        raise InputError(
            f"{field} is not a valid git reference: {value[:80]!r}", obj=where, field=field
        )
