"""Commit statuses for `github` and `gitlab` Providers, through the code-host port (`core.vcs`).

Flux's rules (notification-controller's git notifiers):
- only events with metadata `commit_status: update`, a `commit` key, or severity error become a
  status; `Progressing` events never do;
- the commit is the hash after the last `:` (or, in the legacy `<branch>/<sha>` form, the last
  `/`) of metadata `commit`, else `originRevision`, else `revision`;
- the state is success for info and failure for error;
- the name (context) is `commitStatusExpr` evaluated over `event`, `provider` and `alert`, or
  `<kind>/<name>/<first segment of the Provider's UID>`, lower-cased;
- the description is the reason split on CamelCase and lower-cased.
Two additions, which Flux's own controllers never send and so never meet:
- metadata `commit_status: pending` (a revision starts applying) sets a pending status, although
  its reason is `Progressing`;
- metadata `commit_status_description` replaces the description (Tidegate's reconciler says
  "applied in 14s, healthy" where Flux says "reconciliation succeeded").
Descriptions are cut to GitHub's 140 characters here, so the text posted is the text a later
duplicate check compares with.
The repository comes from the Provider's address (`https://github.com/org/repo`, ssh URLs
converted); the API host is checked against the fetch policy's allow-list before any client is
made. `post_status` skips a status identical (state and description) to the newest one of its
name, as Flux does, and a pending one over a success, so a redelivered event changes nothing.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from core.errors import InputError
from core.fetch import FetchError, FetchPolicy, parse_url
from core.vcs.port import CommitReport, ReportState
from policies.cel.engine import CompileError, Engine, EvalError
from reconciler.notification.event import ERROR, Event
from reconciler.notification.objects import Alert, Credentials, Provider

__all__ = [
    "COMMIT_STATUS_TYPES",
    "DESCRIPTION_KEY",
    "PENDING",
    "HostFactory",
    "Repository",
    "StatusHost",
    "commit_of",
    "description_of",
    "post_status",
    "repository_of",
    "status_for",
]

COMMIT_STATUS_TYPES = frozenset({"github", "gitlab"})
PENDING = "pending"
"""The `commit_status` metadata value of an event that starts applying a revision."""
DESCRIPTION_KEY = "commit_status_description"
"""The metadata key whose value replaces the reason as the status description."""
_DESCRIPTION_LIMIT = 140
"""GitHub refuses longer commit status descriptions."""
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_ENGINE = Engine(variables=("event", "provider", "alert"))


@dataclass(frozen=True)
class Repository:
    """Where a Provider's statuses go."""

    api_url: str
    """`https://api.github.com`, `https://<host>/api/v3` or `https://<host>` (GitLab)."""
    path: str
    """`org/repo` (GitLab: `group/subgroup/project`)."""


class StatusHost(Protocol):
    """What a commit-status Provider needs of a code host (GitHub and GitLab adapters)."""

    def report(self, sha: str, report: CommitReport) -> None:
        """Set the status named `report.name` on `sha`."""

    def latest_status(self, sha: str, name: str) -> tuple[ReportState, str] | None:
        """State and description of the newest status named `name` on `sha`."""

    def comment_on_commit(self, sha: str, body: str) -> None:
        """Add a comment to the commit."""


HostFactory = Callable[[Provider, Repository, Credentials], StatusHost]
"""Makes the code-host adapter for one Provider (GitHub or GitLab by `provider.type`)."""


def status_for(provider: Provider, alert: Alert, event: Event) -> tuple[str, CommitReport] | None:
    """The commit and report `event` sets, or None when Flux would not set one."""
    pending = event.metadata.get("commit_status") == PENDING and event.severity != ERROR
    if not pending and (event.reason == "Progressing" or not _wants_status(event)):
        return None
    state = ReportState.SUCCESS
    if pending:
        state = ReportState.PENDING
    elif event.severity == ERROR:
        state = ReportState.FAILURE
    description = event.metadata.get(DESCRIPTION_KEY) or description_of(event.reason)
    if len(description) > _DESCRIPTION_LIMIT:
        description = description[: _DESCRIPTION_LIMIT - 1] + "…"
    report = CommitReport(name=_name(provider, alert, event), state=state, title=description)
    return commit_of(event, provider), report


def post_status(host: StatusHost, sha: str, report: CommitReport) -> bool:
    """Set `report` on `sha` unless the newest status of its name makes it moot; True if set.

    Moot: the newest status says the same, or it is a success and this is a pending one. A
    commit's revision is applied again only after a failure, so a pending status over a success
    can only be a replay of an earlier delivery, and posting it would leave the commit pending.
    """
    latest = host.latest_status(sha, report.name)
    if latest == (report.state, report.title):
        return False
    if report.state is ReportState.PENDING and latest and latest[0] is ReportState.SUCCESS:
        return False
    host.report(sha, report)
    return True


def commit_of(event: Event, provider: Provider) -> str:
    """The commit hash of the event's revision metadata."""
    revision = next(
        (
            event.metadata[k]
            for k in ("commit", "originRevision", "revision")
            if k in event.metadata
        ),
        "",
    )
    sha = revision.rpartition(":")[2] if ":" in revision else revision.rpartition("/")[2]
    if not re.fullmatch(r"[0-9a-f]{7,64}", sha):
        raise InputError(
            f"failed to extract commit hash from {revision[:200]!r} revision",
            obj=f"Provider {provider.namespace}/{provider.name}",
            field="event.metadata.revision",
        )
    return sha


def description_of(reason: str) -> str:
    """`ReconciliationSucceeded` -> `reconciliation succeeded`."""
    return _CAMEL.sub(" ", reason).lower()


def repository_of(provider: Provider, address: str, policy: FetchPolicy) -> Repository:
    """The repository a Provider's address names, its API host allowed by `policy`."""
    where = f"Provider {provider.namespace}/{provider.name}"
    url = _https(address)
    parts = urllib.parse.urlsplit(url)
    path = parts.path.strip("/").removesuffix(".git")
    if parts.scheme not in ("http", "https") or not parts.hostname or path.count("/") < 1:
        raise InputError(
            "must be a repository URL such as https://github.com/org/repo",
            obj=where,
            field="spec.address",
        )
    origin = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    if provider.type == "github":
        api = "https://api.github.com" if parts.hostname == "github.com" else f"{origin}/api/v3"
    else:
        api = origin
    try:
        policy.check_host(parse_url(api))
    except FetchError as exc:
        raise InputError(f"refused: {exc.reason}", obj=where, field="spec.address") from None
    return Repository(api, path)


def _wants_status(event: Event) -> bool:
    return (
        event.metadata.get("commit_status") == "update"
        or "commit" in event.metadata
        or event.severity == ERROR
    )


def _name(provider: Provider, alert: Alert, event: Event) -> str:
    involved = event.involved_object
    if not provider.commit_status_expr:
        uid_head = provider.uid.split("-", 1)[0]
        return f"{involved.kind}/{involved.name}/{uid_head}".lower()
    where = f"Provider {provider.namespace}/{provider.name}"
    try:
        program = _ENGINE.compile(provider.commit_status_expr)
    except CompileError as exc:
        raise InputError(str(exc), obj=where, field="spec.commitStatusExpr") from None
    value = program.evaluate(_ENGINE.activation(_variables(provider, alert, event)))
    if isinstance(value, EvalError) or not isinstance(value, str) or not value:
        why = (
            value.message if isinstance(value, EvalError) else "must evaluate to a non-empty string"
        )
        raise InputError(why, obj=where, field="spec.commitStatusExpr")
    return value


def _variables(provider: Provider, alert: Alert, event: Event) -> Mapping[str, Any]:
    def meta(namespace: str, name: str, uid: str = "") -> dict[str, str]:
        return {"namespace": namespace, "name": name, "uid": uid}

    return {
        "event": event.to_wire(),
        "provider": {
            "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
            "kind": "Provider",
            "metadata": meta(provider.namespace, provider.name, provider.uid),
            "spec": {"type": provider.type, "address": provider.address},
        },
        "alert": {
            "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
            "kind": "Alert",
            "metadata": meta(alert.namespace, alert.name),
            "spec": {"eventSeverity": alert.event_severity, "summary": alert.summary},
        },
    }


def _https(address: str) -> str:
    """The ssh forms (`git@host:org/repo`, `ssh://git@host/org/repo`) as https, as Flux does."""
    if address.startswith("ssh://"):
        rest = address.removeprefix("ssh://").rpartition("@")[2]
        host, _, path = rest.partition("/")
        return f"https://{host.split(':')[0]}/{path}"
    match = re.fullmatch(r"[\w.-]+@([\w.-]+):(.+)", address)
    if match:
        return f"https://{match.group(1)}/{match.group(2)}"
    return address
