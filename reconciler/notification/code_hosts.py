"""The code-host adapters commit-status Providers use: GitHub through `core.vcs.github`.

Token mode only (the Provider Secret's `token`), so GitHub gets a commit status, as Flux posts.
GitLab statuses need the GitLab adapter of `core.vcs`, which this build does not have yet: such
a Provider fails with an error naming it rather than a new API client being written here.
"""

from __future__ import annotations

from core.errors import InputError
from core.vcs.github import GitHubAuth, GitHubHost, connect
from core.vcs.port import CodeHost
from reconciler.notification.commit_status import Repository
from reconciler.notification.objects import Credentials, Provider

__all__ = ["code_host"]


def code_host(provider: Provider, repository: Repository, credentials: Credentials) -> CodeHost:
    """The adapter for `provider` (a `HostFactory`)."""
    where = f"Provider {provider.namespace}/{provider.name}"
    if provider.type != "github":
        raise InputError(
            f"{provider.type} commit statuses are not available in this build",
            obj=where,
            field="spec.type",
        )
    if not credentials.token:
        raise InputError("needs a token in its Secret", obj=where, field="spec.secretRef")
    client, _ = connect(
        repository.api_url, GitHubAuth(token=credentials.token), timeout=provider.timeout
    )
    return GitHubHost(client, repository.path, checks=False)
