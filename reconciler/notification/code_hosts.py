"""The code-host adapters commit-status Providers use: `core.vcs.github` and `core.vcs.gitlab`.

With a token (the Provider Secret's `token`), as Flux posts: GitHub gets a commit status (a
personal or fine-grained token cannot write check runs), GitLab a commit status through a
project, group or personal access token. With GitHub App credentials (`githubAppID`,
`githubAppInstallationID`, `githubAppPrivateKey`) GitHub gets a check run of the same name
instead, through the installation's token, which can carry the predicted-vs-applied details.
The API host was checked against the fetch policy before this is called
(`commit_status.repository_of`).

The two client libraries are imported when a status is first posted through them, not with the
reconciler: together they are about a quarter of the controller's memory, and most clusters
configure no commit-status Provider.
"""

from __future__ import annotations

from core.errors import InputError
from core.vcs.retry import RetryPolicy
from reconciler.notification.commit_status import HostFactory, Repository, StatusHost
from reconciler.notification.objects import Credentials, Provider

__all__ = ["code_host", "code_hosts"]

_DEFAULT_RETRY = RetryPolicy()


def code_hosts(retry: RetryPolicy) -> HostFactory:
    """A `HostFactory` whose adapters retry 5xx answers and rate limits with `retry`."""

    def make(provider: Provider, repository: Repository, credentials: Credentials) -> StatusHost:
        return code_host(provider, repository, credentials, retry=retry)

    return make


def code_host(
    provider: Provider,
    repository: Repository,
    credentials: Credentials,
    *,
    retry: RetryPolicy = _DEFAULT_RETRY,
) -> StatusHost:
    """The adapter for `provider` (a `HostFactory`)."""
    where = f"Provider {provider.namespace}/{provider.name}"
    if provider.type not in ("github", "gitlab"):
        raise InputError(
            f"{provider.type} commit statuses are not available in this build",
            obj=where,
            field="spec.type",
        )
    if provider.type == "github" and credentials.github_app:
        from core.vcs.github import GitHubAuth, GitHubHost
        from core.vcs.github import connect as connect_github

        auth = GitHubAuth(
            app_id=credentials.github_app_id,
            private_key=credentials.github_app_private_key,
            installation_id=credentials.github_app_installation_id,
        )
        app, _ = connect_github(repository.api_url, auth, timeout=provider.timeout)
        return GitHubHost(app, repository.path, checks=True, retry=retry)
    if not credentials.token:
        raise InputError("needs a token in its Secret", obj=where, field="spec.secretRef")
    if provider.type == "gitlab":
        from core.vcs.gitlab import GitLabHost
        from core.vcs.gitlab import connect as connect_gitlab

        client = connect_gitlab(repository.api_url, credentials.token, timeout=provider.timeout)
        return GitLabHost(client, repository.path, retry=retry)
    from core.vcs.github import GitHubAuth, GitHubHost
    from core.vcs.github import connect as connect_github

    github, _ = connect_github(
        repository.api_url, GitHubAuth(token=credentials.token), timeout=provider.timeout
    )
    return GitHubHost(github, repository.path, checks=False, retry=retry)
