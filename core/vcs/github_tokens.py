"""GitHub App installation tokens: minted with the App's JWT, cached, renewed before they expire.

One `InstallationTokens` serves a whole process, so every job of one installation shares one
token and a burst of reviews makes one token request, not one each. A token is renewed `margin`
seconds before the expiry GitHub sent with it (a request started with it then cannot outlive
it), and after the API refused it with 401 (revoked, or a clock was wrong). Installation tokens
last an hour; the default margin is five minutes.

This module mints and hands out tokens; it makes no other API call and knows no repository.
Tokens live here and in request headers only: nothing here logs them and no repr shows them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import requests
from github import Auth, GithubException, GithubIntegration

from core.vcs.port import VcsError

__all__ = ["InstallationTokenAuth", "InstallationTokens"]


class InstallationTokens:
    """The installation tokens of one GitHub App, by installation id."""

    def __init__(
        self,
        base_url: str,
        app_id: str,
        private_key: str,
        *,
        margin: float = 300.0,
        clock: Callable[[], float] = time.time,
        timeout: float = 30.0,
    ) -> None:
        self._app = GithubIntegration(
            base_url=base_url,
            auth=Auth.AppAuth(app_id, private_key),
            timeout=int(timeout),
            retry=None,
        )
        self._margin = margin
        self._clock = clock
        self._tokens: dict[int, tuple[str, float]] = {}
        # One lock for all: jobs that need a token at once wait for the one request in flight.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"InstallationTokens({len(self._tokens)} cached)"

    def token(self, installation_id: int) -> str:
        """A token for `installation_id` valid for at least `margin` seconds more.

        Raises:
            VcsError: GitHub refused to mint one (unknown installation, wrong key or App id).
        """
        with self._lock:
            cached = self._tokens.get(installation_id)
            if cached is not None and cached[1] - self._clock() > self._margin:
                return cached[0]
            try:
                granted = self._app.get_access_token(installation_id)
            except (GithubException, requests.RequestException) as exc:
                reason = f"HTTP {exc.status}" if isinstance(exc, GithubException) else "no answer"
                raise VcsError(
                    f"GitHub refused an installation token for installation {installation_id}: "
                    f"{reason}"
                ) from None
            self._tokens[installation_id] = (granted.token, granted.expires_at.timestamp())
            return granted.token

    def forget(self, installation_id: int, token: str) -> None:
        """Drop `token` after the API refused it, unless another job already replaced it."""
        with self._lock:
            cached = self._tokens.get(installation_id)
            if cached is not None and cached[0] == token:
                del self._tokens[installation_id]

    def auth(self, installation_id: int) -> InstallationTokenAuth:
        """PyGithub credentials that take the current token for every request."""
        return InstallationTokenAuth(self, installation_id)


class InstallationTokenAuth(Auth.Auth):
    """PyGithub authentication by the cached token of one installation."""

    def __init__(self, tokens: InstallationTokens, installation_id: int) -> None:
        self._tokens = tokens
        self._installation = installation_id
        self._last = ""

    @property
    def token_type(self) -> str:
        """GitHub's scheme for installation tokens."""
        return "token"

    @property
    def token(self) -> str:
        """The installation's current token (read for every request)."""
        self._last = self._tokens.token(self._installation)
        return self._last

    def refused(self) -> None:
        """The API answered 401 to the last token handed out: the next request gets a new one."""
        if self._last:
            self._tokens.forget(self._installation, self._last)

    @property
    def _masked_token(self) -> str:
        return "token (removed)"
