"""The code hosts a job talks to, built from the settings: GitHub (token or App) or GitLab.

Each job gets its own client (an App job authenticates as the installation that sent it, with
the installation token the process caches for every job of that installation), and every call
that fails after retries is counted in the metrics. Tokens stay inside the clients
and the returned credentials; nothing here logs them.
"""

from __future__ import annotations

from collections.abc import Callable

from app.metrics import AppMetrics
from app.review import Credentials, HostFactory
from app.settings import Settings
from app.store import Job
from core.errors import InputError
from core.vcs.github import GitHubAuth, GitHubHost, connect
from core.vcs.github_tokens import InstallationTokens
from core.vcs.gitlab import GitLabHost
from core.vcs.gitlab import connect as gitlab_connect
from core.vcs.port import CodeHost
from core.vcs.retry import RetryPolicy
from core.vcs.webhooks import Provider

__all__ = ["check_credentials", "code_hosts"]


def check_credentials(settings: Settings) -> None:
    """Refuse to review without any code-host credentials.

    Raises:
        InputError: no token and no App is configured, naming the variables to set.
    """
    if not (settings.github_token or settings.github_app_id or settings.gitlab_token):
        raise InputError(
            "set TIDEGATE_GITHUB_TOKEN, TIDEGATE_GITHUB_APP_ID or TIDEGATE_GITLAB_TOKEN"
        )


def code_hosts(
    settings: Settings, metrics: AppMetrics, *, retry: RetryPolicy | None = None
) -> HostFactory:
    """The factory of each job's code host and fetch credentials."""
    check_credentials(settings)
    options = {} if retry is None else {"retry": retry}
    # One token cache for the process: every job of an installation shares its token.
    tokens = (
        InstallationTokens(settings.github_url, settings.github_app_id, settings.github_private_key)
        if settings.github_app_id
        else None
    )

    def failed(provider: str) -> Callable[[str], None]:
        return lambda call: metrics.vcs_errors.labels(provider, call).inc()

    def hosts(job: Job) -> tuple[CodeHost, Credentials]:
        if job.provider is Provider.GITLAB:
            lab = gitlab_connect(settings.gitlab_url, settings.gitlab_token)
            host: CodeHost = GitLabHost(
                lab, job.work.project_id, on_error=failed("gitlab"), **options
            )
            # GitLab takes any user name with a project or group token over HTTPS.
            return host, Credentials("oauth2", settings.gitlab_token)
        auth = GitHubAuth(
            token=settings.github_token,
            app_id=settings.github_app_id,
            private_key=settings.github_private_key,
            installation_id=job.work.installation_id,
        )
        client, credentials = connect(settings.github_url, auth, tokens=tokens)
        token = getattr(credentials, "token", settings.github_token)
        host = GitHubHost(
            client,
            job.work.repository,
            checks=auth.app,
            on_error=failed("github"),
            credentials=credentials,
            **options,
        )
        return host, Credentials(settings.git_user, str(token))

    return hosts
