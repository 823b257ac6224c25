"""The service's settings, from environment variables (secrets also from files).

Each secret `X` is read from `$X` or from the file named by `$X_FILE` (a mounted Kubernetes
Secret); secrets are kept as bytes/strings in this object only and its `repr` shows none of them.
Security-relevant settings (forks, sandbox, fetch allow-list via the operator file) come from the
operator alone, never from a repository.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import InputError
from core.host import tools

__all__ = [
    "ENVIRONMENT",
    "LiveCluster",
    "Settings",
    "from_environment",
    "job_database_url",
    "live_clusters",
    "with_tools",
]


@dataclass(frozen=True)
class LiveCluster:
    """A cluster entry point the review plans against the cluster itself, and how to reach it.

    The kubeconfig is a secret of the service: only the preview process (never a renderer, never
    a comment or a log line) reads it.
    """

    path: str
    """The cluster entry point in the repository, as `tidegate preview --path` takes it."""
    kubeconfig: Path = field(repr=False)
    context: str = ""


ENVIRONMENT = {
    "TIDEGATE_DATA_DIR": "directory for the job database, mirrors and render cache (required)",
    "TIDEGATE_DATABASE_URL[_FILE]": "job database: postgresql://USER:PASSWORD@HOST/DB for several "
    "replicas (default: SQLite in TIDEGATE_DATA_DIR)",
    "TIDEGATE_JOB_LEASE": "seconds a worker holds a job before another may take it (default 900)",
    "TIDEGATE_JOB_ATTEMPTS": "claims of one job before it ends in error (default 5)",
    "TIDEGATE_GITHUB_URL": "GitHub API base URL (default https://api.github.com)",
    "TIDEGATE_GITHUB_TOKEN[_FILE]": "token mode: a token; reports as commit statuses",
    "TIDEGATE_GITHUB_APP_ID": "App mode: the GitHub App's id; reports as check runs",
    "TIDEGATE_GITHUB_PRIVATE_KEY[_FILE]": "App mode: the App's private key (PEM)",
    "TIDEGATE_GITHUB_WEBHOOK_SECRET[_FILE]": "secret GitHub signs deliveries with",
    "TIDEGATE_GITLAB_URL": "GitLab base URL (default https://gitlab.com)",
    "TIDEGATE_GITLAB_TOKEN[_FILE]": "GitLab project or group access token (api scope)",
    "TIDEGATE_GITLAB_WEBHOOK_SECRET[_FILE]": "token GitLab sends with deliveries",
    "TIDEGATE_ALLOW_FORKS": "preview pull requests from forks: true|false (default false)",
    "TIDEGATE_CONFIG": "operator configuration file (fetch allow-list), see docs/security.md",
    "TIDEGATE_LIVE_CLUSTERS": "clusters planned against their real state, comma-separated "
    "clusters/NAME=KUBECONFIG[#CONTEXT] (read-only identity, see docs/pr-app.md); the others "
    "are previewed offline. `tidegate serve --live-cluster` overrides it",
    "TIDEGATE_KUSTOMIZE / TIDEGATE_HELM": "tool paths (default: found on PATH)",
    "TIDEGATE_SANDBOX": "required (default) | files; `off` is refused by the service",
}


@dataclass(frozen=True)
class Settings:
    """Everything the service is configured with."""

    data_dir: Path
    github_url: str = "https://api.github.com"
    github_token: str = field(default="", repr=False)
    github_app_id: str = ""
    github_private_key: str = field(default="", repr=False)
    github_webhook_secret: bytes = field(default=b"", repr=False)
    gitlab_url: str = "https://gitlab.com"
    gitlab_token: str = field(default="", repr=False)
    gitlab_webhook_secret: bytes = field(default=b"", repr=False)
    allow_forks: bool = False
    operator_config: Path | None = None
    kustomize: str = "kustomize"
    helm: str = "helm"
    sandbox: str = "required"
    database_url: str = field(default="", repr=False)
    """The job database's URL; empty means SQLite in `data_dir`. It may hold a password."""
    job_lease: float = 900.0
    job_attempts: int = 5
    live_clusters: tuple[LiveCluster, ...] = ()
    """Clusters previewed `--live`; the operator's alone, never a repository's to choose."""
    git_user: str = field(default="x-access-token", repr=False)
    """User name for HTTPS fetches with the token (GitHub's convention)."""


def from_environment(env: Mapping[str, str] = os.environ) -> Settings:
    """Read the settings.

    Raises:
        InputError: a required setting is missing or a value is invalid, naming the variable.
    """
    data_dir = env.get("TIDEGATE_DATA_DIR", "")
    if not data_dir:
        raise InputError("TIDEGATE_DATA_DIR is required")
    forks = env.get("TIDEGATE_ALLOW_FORKS", "false").lower()
    if forks not in ("true", "false"):
        raise InputError("TIDEGATE_ALLOW_FORKS must be true or false")
    sandbox = env.get("TIDEGATE_SANDBOX", "required")
    if sandbox not in ("required", "files"):
        raise InputError(
            "TIDEGATE_SANDBOX must be required or files (the service never renders unconfined)"
        )
    config = env.get("TIDEGATE_CONFIG")
    lease = _number(env, "TIDEGATE_JOB_LEASE", "900", minimum=1)
    attempts = _number(env, "TIDEGATE_JOB_ATTEMPTS", "5", minimum=1, integer=True)
    return Settings(
        data_dir=Path(data_dir),
        github_url=env.get("TIDEGATE_GITHUB_URL", "https://api.github.com"),
        github_token=_secret(env, "TIDEGATE_GITHUB_TOKEN"),
        github_app_id=env.get("TIDEGATE_GITHUB_APP_ID", ""),
        github_private_key=_secret(env, "TIDEGATE_GITHUB_PRIVATE_KEY"),
        github_webhook_secret=_secret(env, "TIDEGATE_GITHUB_WEBHOOK_SECRET").encode(),
        gitlab_url=env.get("TIDEGATE_GITLAB_URL", "https://gitlab.com"),
        gitlab_token=_secret(env, "TIDEGATE_GITLAB_TOKEN"),
        gitlab_webhook_secret=_secret(env, "TIDEGATE_GITLAB_WEBHOOK_SECRET").encode(),
        allow_forks=forks == "true",
        operator_config=Path(config) if config else None,
        kustomize=env.get("TIDEGATE_KUSTOMIZE", "kustomize"),
        helm=env.get("TIDEGATE_HELM", "helm"),
        sandbox=sandbox,
        database_url=_secret(env, "TIDEGATE_DATABASE_URL"),
        job_lease=lease,
        job_attempts=int(attempts),
        live_clusters=live_clusters(
            [e for e in env.get("TIDEGATE_LIVE_CLUSTERS", "").split(",") if e.strip()],
            setting="TIDEGATE_LIVE_CLUSTERS",
        ),
    )


def with_tools(settings: Settings) -> Settings:
    """The settings with kustomize and helm located (path or PATH), before any job runs.

    Raises:
        InputError: a tool is missing, naming it and its variable; never a build of it.
    """
    return dataclasses.replace(
        settings,
        kustomize=str(tools.locate("kustomize", settings.kustomize, setting="TIDEGATE_KUSTOMIZE")),
        helm=str(tools.locate("helm", settings.helm, setting="TIDEGATE_HELM")),
    )


_CLUSTER_PATH = re.compile(r"[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*")


def live_clusters(entries: Sequence[str], *, setting: str) -> tuple[LiveCluster, ...]:
    """Parse `clusters/NAME=KUBECONFIG[#CONTEXT]` entries; the kubeconfig must be a readable file.

    Raises:
        InputError: an entry is malformed, names a cluster twice or a kubeconfig that cannot be
            read, naming the setting and the cluster (never the kubeconfig's content).
    """
    found: dict[str, LiveCluster] = {}
    for entry in entries:
        path, sep, rest = entry.strip().partition("=")
        path = path.strip().strip("/")
        kubeconfig, _, context = rest.strip().partition("#")
        if not sep or not _CLUSTER_PATH.fullmatch(path) or ".." in path.split("/"):
            raise InputError(
                f"{setting}: {entry.strip()[:80]!r} is not clusters/NAME=KUBECONFIG[#CONTEXT]"
            )
        if path in found:
            raise InputError(f"{setting}: cluster {path} is given twice")
        config = Path(kubeconfig)
        if not config.is_absolute():
            raise InputError(f"{setting}: the kubeconfig of {path} must be an absolute path")
        try:
            with config.open("rb"):
                pass
        except OSError as exc:
            raise InputError(
                f"{setting}: cannot read the kubeconfig of {path}: {exc.strerror}"
            ) from None
        found[path] = LiveCluster(path, config, context.strip())
    return tuple(found.values())


def job_database_url(settings: Settings) -> str:
    """The job database's URL: the configured one, or SQLite in the data directory."""
    return settings.database_url or f"sqlite:///{settings.data_dir / 'jobs.sqlite'}"


def _number(
    env: Mapping[str, str], name: str, default: str, *, minimum: int, integer: bool = False
) -> float:
    text = env.get(name, default)
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{name} must be a number, not {text[:40]!r}") from None
    if not math.isfinite(value) or value < minimum or (integer and not value.is_integer()):
        kind = "a whole number" if integer else "a finite number"
        raise InputError(f"{name} must be {kind} of at least {minimum}")
    return value


def _secret(env: Mapping[str, str], name: str) -> str:
    if env.get(name):
        return env[name].strip()
    path = env.get(f"{name}_FILE")
    if not path:
        return ""
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise InputError(f"{name}_FILE: cannot read {path}: {exc.strerror}") from None
