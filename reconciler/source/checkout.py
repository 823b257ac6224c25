"""Fetch one ref of a GitRepository into its cache, shallow and bounded, through git.

Each GitRepository has its own bare repository under the cache root (named by a hash of its
namespace and name, never by anything it says). A fetch asks the remote for exactly one ref
(or commit) at depth 1 and stores it under `refs/tidegate/fetched`, so the next fetch sends only
what changed since; a semver ref first lists the remote's tags. Every git process runs through
`core.host.command` with a time bound (the object's `spec.timeout`) and the environment from
`reconciler.source.auth`; after a fetch the cache's size is checked: a cache over its bound is
first pruned of what earlier fetches left unreachable (`git gc --prune=now`), and removed if it is
still too large, so one repository cannot fill the disk for long.

Failures become `FetchError` with Flux's reason (`AuthenticationFailed` when the remote refused
the credentials, else `GitOperationFailed`) and Flux's message shape ("failed to checkout and
determine revision: unable to clone '<url>': <git's words>"), with every secret scrubbed.
It never checks out a work tree and never runs hooks.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.errors import CommandError, Failure, InputError, TidegateError
from core.host.command import Limits, run
from reconciler.source.auth import CredentialsError, GitCredentials, git_environment, scrub_url
from reconciler.source.refs import GitReference, revision

__all__ = [
    "AUTHENTICATION_FAILED",
    "GIT_OPERATION_FAILED",
    "Checkout",
    "FetchError",
    "GitFetcher",
]

AUTHENTICATION_FAILED = "AuthenticationFailed"
GIT_OPERATION_FAILED = "GitOperationFailed"

_FETCHED = "refs/tidegate/fetched"
_PREFIX = "failed to checkout and determine revision"
# What git and ssh print when the remote refused who we are.
_AUTH_MARKERS = (
    "authentication failed",
    "could not read username",
    "could not read password",
    "http 401",
    "http 403",
    "the requested url returned error: 401",
    "the requested url returned error: 403",
    "permission denied (publickey",
    "access denied",
)
_MAX_SUBJECT = 200
_TAG_LINE = re.compile(r"^[0-9a-f]{40,64}\trefs/tags/(\S+)$")


class FetchError(TidegateError):
    """A fetch failed; `reason` is Flux's condition reason, the message is safe to show."""

    failure = Failure.SOURCE

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True)
class Checkout:
    """What a fetch produced."""

    repository: Path
    """The bare cache repository holding the commit."""
    commit: str
    revision: str
    """Flux's revision string, such as `main@sha1:<hex>`."""
    subject: str = ""
    """The first line of the commit message (repository content: shown, never trusted)."""


class GitFetcher:
    """Fetches GitRepositories into per-object caches under `root`."""

    def __init__(self, root: Path, *, max_repository_bytes: int = 1 << 30) -> None:
        self.root = root
        self.max_repository_bytes = max_repository_bytes

    def cache_of(self, namespace: str, name: str) -> Path:
        """The object's cache repository (named by a hash: object names never become paths)."""
        digest = hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:32]
        return self.root / digest

    def fetch(
        self,
        namespace: str,
        name: str,
        url: str,
        ref: GitReference,
        credentials: GitCredentials | None,
        *,
        timeout: float,
    ) -> Checkout:
        """Fetch `ref` of `url` into the object's cache and return the commit and revision.

        Raises:
            FetchError: git failed, the credentials were refused or unusable, no tag matched.
        """
        cache = self.cache_of(namespace, name)
        scrub = (credentials or GitCredentials()).scrub
        try:
            with git_environment(url, credentials) as env:
                limits = Limits(timeout=timeout, memory=2 << 30, env=env, max_output=16 << 20)
                self._init(cache, limits)
                tags = self._remote_tags(cache, url, limits) if ref.needs_tags else []
                target = ref.target(tags)
                self._git(
                    cache,
                    limits,
                    "fetch",
                    "--quiet",
                    "--no-tags",
                    "--no-write-fetch-head",
                    "--depth=1",
                    "--force",
                    "--end-of-options",
                    url,
                    f"+{target.fetch}:{_FETCHED}",
                )
                commit = self._git(cache, limits, "rev-parse", "--verify", f"{_FETCHED}^{{commit}}")
                subject = self._git(
                    cache, limits, "log", "-1", "--no-show-signature", "--format=%s", _FETCHED
                )
        except CredentialsError as exc:
            raise FetchError(AUTHENTICATION_FAILED, f"{_PREFIX}: {exc}") from None
        except InputError as exc:
            raise FetchError(GIT_OPERATION_FAILED, f"{_PREFIX}: {exc}") from None
        except CommandError as exc:
            raise _fetch_error(url, exc, scrub) from None
        self._bound(cache, limits)
        sha = commit.decode().strip()
        if target.commit and sha != target.commit:
            raise FetchError(
                GIT_OPERATION_FAILED, f"{_PREFIX}: fetched commit {sha} instead of {target.commit}"
            )
        shown = subject.decode(errors="replace").strip()[:_MAX_SUBJECT]
        return Checkout(cache, sha, revision(target.label, sha), shown)

    def forget(self, namespace: str, name: str) -> None:
        """Remove the object's cache (it was deleted, or its URL changed)."""
        shutil.rmtree(self.cache_of(namespace, name), ignore_errors=True)

    def _init(self, cache: Path, limits: Limits) -> None:
        if (cache / "HEAD").is_file():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        run(["git", "init", "--quiet", "--bare", str(cache)], limits=limits)
        # No hooks ever run in the cache, whatever a template directory would install.
        self._git(cache, limits, "config", "core.hooksPath", os.devnull)

    def _remote_tags(self, cache: Path, url: str, limits: Limits) -> list[str]:
        out = self._git(cache, limits, "ls-remote", "--tags", "--refs", "--end-of-options", url)
        tags = []
        for line in out.decode(errors="replace").splitlines():
            match = _TAG_LINE.match(line)
            if match:
                tags.append(match.group(1))
        return tags

    def _bound(self, cache: Path, limits: Limits) -> None:
        if _size(cache) <= self.max_repository_bytes:
            return
        # Earlier revisions are unreachable once the fetched ref moved on; drop them first.
        with contextlib.suppress(CommandError):  # a failed gc leaves the size to decide
            self._git(cache, limits, "gc", "--quiet", "--prune=now")
        if _size(cache) > self.max_repository_bytes:
            shutil.rmtree(cache, ignore_errors=True)
            raise FetchError(
                GIT_OPERATION_FAILED,
                f"{_PREFIX}: the repository takes more than {self.max_repository_bytes} bytes "
                "at depth 1",
            )

    @staticmethod
    def _git(cache: Path, limits: Limits, *args: str) -> bytes:
        env = {**limits.env, "GIT_DIR": str(cache)}
        limited = Limits(
            timeout=limits.timeout, memory=limits.memory, env=env, max_output=limits.max_output
        )
        return run(["git", *args], cwd=cache, limits=limited)


def _size(directory: Path) -> int:
    return sum(entry.stat().st_size for entry in directory.rglob("*") if entry.is_file())


def _fetch_error(url: str, exc: CommandError, scrub: Callable[[str], str]) -> FetchError:
    detail = scrub(exc.stderr or str(exc)).strip()
    # git prefixes its own lines with "fatal: "; Flux shows the cause alone.
    lines = [line.removeprefix("fatal: ").removeprefix("error: ") for line in detail.splitlines()]
    cause = "; ".join(line for line in lines if line.strip())[-2000:] or str(exc)
    reason = (
        AUTHENTICATION_FAILED
        if any(marker in cause.lower() for marker in _AUTH_MARKERS)
        else GIT_OPERATION_FAILED
    )
    if "timed out" in str(exc) and not exc.stderr:
        cause = str(exc)
    return FetchError(reason, f"{_PREFIX}: unable to clone '{scrub_url(url)}': {cause}")
