"""Who approved a pull request's head, as the policy gate counts it: writers and their teams.

The gate accepts an approval from a code owner of the affected path; a CODEOWNERS owner may be
a team (`@org/team` on GitHub, `@group/subgroup` on GitLab), which counts when one of its members
approved. This module asks the code host which approving writers belong to which of those teams.
The work is bounded: only the teams CODEOWNERS (at the base revision) names for the paths the
pull request changes are looked up, each (user, team) pair at most once per job. A lookup that
fails counts no team (the gate fails closed) and leaves a log line; it never fails the review.

It must not decide which approvals count for a finding: that is the gate's job
(`policies.waivers`), fed with the names returned here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

from codeowners import CodeOwners

from core.errors import BudgetError
from core.host.command import Limits, run
from core.vcs.port import CodeHost, VcsError
from policies.waivers import CODEOWNERS_OF

__all__ = ["MAX_CHANGED_PATHS", "approvals", "codeowner_teams"]

MAX_CHANGED_PATHS = 20_000
"""Changed paths matched against CODEOWNERS; a larger change looks up no team at all."""
_MAX_CODEOWNERS = 1 << 20
_MAX_LISTING = 16 << 20
"""Bytes of changed-path names read; a longer listing is too large a change to match."""
_LOGIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
"""User names on GitHub and GitLab; anything else from the API is not a reviewer we count."""
_log = logging.getLogger("tidegate.review")


def codeowner_teams(mirror: Path, base: str, head: str, host: str = "github") -> list[str]:
    """The teams (without `@`) that CODEOWNERS at `base` names for the paths changed up to `head`.

    Sorted; none when there is no CODEOWNERS or the change is too large to match. CODEOWNERS is
    read where `host` (`github`, `gitlab`) reads it.
    """
    owners = _codeowners(mirror, base, CODEOWNERS_OF[host])
    if owners is None:
        return []
    try:
        listing = run(
            ["git", "-C", str(mirror), "diff", "--name-only", "-z", "--no-renames", base, head],
            limits=Limits(timeout=120.0, max_output=_MAX_LISTING),
        )
    except BudgetError:
        listing = None
    paths = [p.decode("utf-8", errors="replace") for p in (listing or b"").split(b"\0") if p]
    if listing is None or len(paths) > MAX_CHANGED_PATHS:
        # The review goes on: the gate just counts no team approval (fail closed).
        _log.warning("too many changed paths to look up code-owner teams; no team approval counts")
        return []
    teams = {
        owner.lstrip("@") for path in paths for kind, owner in owners.of(path) if kind == "TEAM"
    }
    return sorted(teams)


def _codeowners(mirror: Path, base: str, locations: Sequence[str]) -> CodeOwners | None:
    """The first CODEOWNERS file of the base revision, as `policies.waivers` picks it."""
    for name in locations:
        kind = run(
            ["git", "-C", str(mirror), "cat-file", "-t", f"{base}:{name}"], ok_codes=(0, 128)
        )
        if kind.strip() != b"blob":
            continue
        data = run(
            ["git", "-C", str(mirror), "cat-file", "blob", f"{base}:{name}"],
            limits=Limits(max_output=_MAX_CODEOWNERS),
        )
        return CodeOwners(data.decode("utf-8", errors="replace"))
    return None


def approvals(host: CodeHost, number: int, sha: str, teams: Sequence[str]) -> list[str]:
    """Approvers of head `sha` with write access, then `@team` for each team one of them is in.

    The provider decides which approvals stand for `sha` (see `CodeHost.approvers`); a user
    without write access cannot approve a merge on either provider, so theirs never counts, nor
    does it make their team count.
    """
    users = [
        user
        for user in host.approvers(number, sha)
        if _LOGIN.fullmatch(user) and host.can_write(user)
    ]
    memberships: dict[tuple[str, str], bool] = {}
    found = [f"@{team}" for team in teams if _approved_by_member(host, users, team, memberships)]
    return [*users, *found]


def _approved_by_member(
    host: CodeHost, users: Sequence[str], team: str, memberships: dict[tuple[str, str], bool]
) -> bool:
    for user in users:
        key = (user.lower(), team.lower())
        if key not in memberships:
            try:
                memberships[key] = host.in_team(user, team)
            except VcsError as exc:
                # Fail closed: an unknown membership is none; the next review asks again.
                _log.warning("team lookup failed, not counted: @%s: %s", team, exc)
                memberships[key] = False
        if memberships[key]:
            return True
    return False
