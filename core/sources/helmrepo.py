"""Charts from an HTTP HelmRepository, downloaded by Tidegate itself before helm runs.

`ChartPuller.pull` reads the repository's `index.yaml` (size-capped, safe YAML), resolves the
chart version constraint as source-controller does, downloads the archive the index names (a
relative URL is resolved against the repository URL; an absolute one may point elsewhere, and
its host must be allowed too), checks it against the index's sha256 digest, and returns a local
`.tgz` that helm templates without any network. Every download goes through `core.fetch`, so
the allow-list and address rules apply to the index, the archive and each redirect.

Archives are saved under names derived from a hash of (chart URL, version, digest), never from
repository content, so a chart called `../../x` cannot write outside the cache. Successful pulls
are cached on disk, and a hit marks the files it used (`core.host.usage`), so the render cache's
byte budget (`core.render.evict`) removes the least recently used first; one it removed is
downloaded again; an index is kept in memory for `index_ttl` seconds (base and head share one
download); a source that could not be reached is remembered for `failure_ttl` seconds, so one
dead repository costs one timeout per preview, not one per unit and side. While a preview
`holds` the puller, neither expires: both revisions (and any second pass over a cluster) see the
same index and the same unreachable sources, however long the preview takes.

OCI HelmRepositories (`type: oci`, `oci://` URLs) are not handled here: they are an OCI
registry client's job, and `pull` refuses them by name.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import semver, yamlio
from core.errors import Failure, TidegateError
from core.fetch import FetchedResponse, FetchError, FetchPolicy, fetch, parse_url
from core.host.usage import mark_used

__all__ = ["ChartLimits", "ChartPuller", "SourceUnavailableError"]

# Helm chart names: letters, digits, dots, dashes and underscores; never a path.
_CHART_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,250}$")
_EXACT = re.compile(r"^v?\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]*)?$")
_GZIP_MAGIC = b"\x1f\x8b"


class SourceUnavailableError(TidegateError):
    """A source could not be reached (DNS, connection, timeout, HTTP 408/429/5xx).

    Distinct from a render error: the unit's content may be fine, the preview just could not
    see it. `url` has no query string; `reason` is short and never a response body.
    """

    failure = Failure.SOURCE

    def __init__(self, url: str, reason: str, *, cached: bool = False) -> None:
        self.url = url
        self.reason = reason
        suffix = " (remembered from an earlier attempt)" if cached else ""
        super().__init__(f"source unavailable: {url}: {reason}{suffix}")


@dataclass(frozen=True)
class ChartLimits:
    """Size bounds, with source-controller's defaults."""

    max_index_bytes: int = 50 << 20
    max_chart_bytes: int = 10 << 20


Clock = Callable[[], float]


class ChartPuller:
    """Pulls charts from HTTP chart repositories; safe to share between threads and sides."""

    def __init__(
        self,
        cache_dir: Path,
        *,
        limits: ChartLimits | None = None,
        index_ttl: float = 60.0,
        failure_ttl: float = 60.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.cache_dir = cache_dir
        self.limits = limits or ChartLimits()
        self.index_ttl = index_ttl
        self.failure_ttl = failure_ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._indexes: dict[str, tuple[float, Mapping[str, Any]]] = {}
        self._failures: dict[str, tuple[float, str, str]] = {}
        self._holds = 0
        self.hosts_used: set[str] = set()
        """`host:port` of every URL a pull under a trusted policy (one allowing every host,
        as for the base revision) needed: the hosts the trusted revision uses."""

    @contextmanager
    def held(self) -> Iterator[None]:
        """Keep every index and remembered failure, whatever their age, for the block.

        Without this, a preview slowed down (a loaded CI runner) could let a failure at the base
        expire before the head asks again, and render the two sides from different answers.
        """
        with self._lock:
            self._holds += 1
        try:
            yield
        finally:
            with self._lock:
                self._holds -= 1

    def _fresh(self, expires: float) -> bool:
        """Tell whether a kept entry still holds (call with the lock held)."""
        return self._holds > 0 or expires > self.clock()

    def pull(self, repo_url: str, chart: str, version: str | None, policy: FetchPolicy) -> Path:
        """Return a local chart archive for `chart` at `version` (a constraint; None: `*`).

        Raises:
            SourceUnavailableError: the repository or archive could not be reached.
            TidegateError: anything else (refused URL, unknown chart or version, bad index,
                oversized or corrupt archive); the message names the URL and the cause.
        """
        if repo_url.startswith("oci://"):
            raise TidegateError(
                f"{repo_url}: OCI chart repositories are not supported by the HTTP chart puller"
            )
        if not _CHART_NAME.match(chart) or ".." in chart:
            raise TidegateError(f"invalid chart name {chart[:100]!r}")
        repo = parse_url(repo_url)
        policy.check_host(repo)
        self._note(repo.host, repo.port, policy)
        constraint = (version or "").strip() or "*"
        pointer = self._pointer_path(repo_url, chart, constraint)
        if _EXACT.match(constraint):
            cached = self._from_pointer(pointer, policy)
            if cached is not None:
                return cached
        entry = self._resolve(repo_url, chart, constraint, policy)
        chart_url = _chart_url(repo_url, entry, chart)
        digest = str(entry.get("digest") or "")
        archive = self.cache_dir / "archives" / _name(chart_url, str(entry["version"]), digest)
        target = parse_url(chart_url)
        policy.check_host(target)
        self._note(target.host, target.port, policy)
        if not mark_used(archive):
            body = self._get(chart_url, policy, self.limits.max_chart_bytes).body
            _check_archive(chart_url, body, digest)
            _write(archive, body)
        if _EXACT.match(constraint):
            _write(pointer, json.dumps({"archive": archive.name, "url": chart_url}).encode())
        return archive

    # The index.

    def _resolve(
        self, repo_url: str, chart: str, constraint: str, policy: FetchPolicy
    ) -> Mapping[str, Any]:
        index_url = repo_url.rstrip("/") + "/index.yaml"
        entries = self._index(index_url, policy)
        versions = entries.get(chart)
        if not isinstance(versions, list) or not versions:
            raise TidegateError(f"{_shown(index_url)}: no chart named {chart!r} in the index")
        by_version: dict[str, Mapping[str, Any]] = {}
        for position, item in enumerate(versions):
            if not isinstance(item, Mapping) or not isinstance(item.get("version"), str | int):
                raise TidegateError(
                    f"{_shown(index_url)}: field entries.{chart}[{position}].version is missing"
                )
            by_version.setdefault(str(item["version"]), item)
        chosen = _best(constraint, by_version)
        if chosen is None:
            raise TidegateError(
                f"{_shown(index_url)}: no version of chart {chart!r} matches {constraint!r}"
            )
        return by_version[chosen]

    def _index(self, index_url: str, policy: FetchPolicy) -> Mapping[str, Any]:
        policy.check_host(parse_url(index_url))
        with self._lock:
            kept = self._indexes.get(index_url)
            if kept is not None and self._fresh(kept[0]):
                return kept[1]
        body = self._get(index_url, policy, self.limits.max_index_bytes).body
        try:
            document = yamlio.load(body)
        except yamlio.YAMLError:
            raise TidegateError(f"{_shown(index_url)}: the index is not valid YAML") from None
        entries = document.get("entries") if isinstance(document, Mapping) else None
        if not isinstance(entries, Mapping):
            raise TidegateError(f"{_shown(index_url)}: the index has no entries mapping")
        with self._lock:
            self._indexes[index_url] = (self.clock() + self.index_ttl, entries)
        return entries

    # Downloads, with failures remembered.

    def _get(self, url: str, policy: FetchPolicy, max_bytes: int) -> FetchedResponse:
        with self._lock:
            failed = self._failures.get(url)
            remembered = failed is not None and self._fresh(failed[0])
        if failed is not None and remembered:
            raise SourceUnavailableError(failed[1], failed[2], cached=True)
        try:
            response = fetch(url, policy=policy, max_bytes=max_bytes)
        except FetchError as exc:
            if not exc.unavailable:
                raise
            with self._lock:
                self._failures[url] = (self.clock() + self.failure_ttl, exc.url, exc.reason)
            raise SourceUnavailableError(exc.url, exc.reason) from None
        # Where a redirect ended (a CDN, say) is a host the trusted side used too.
        final = parse_url(response.url)
        self._note(final.host, final.port, policy)
        return response

    def _note(self, host: str, port: int, policy: FetchPolicy) -> None:
        if policy.allowed_hosts is not None:
            return  # an untrusted side's hosts never become trusted
        with self._lock:
            self.hosts_used.add(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")

    # The exact-version shortcut: no index needed when the archive is already here.

    def _pointer_path(self, repo_url: str, chart: str, version: str) -> Path:
        key = hashlib.sha256(f"{repo_url}\0{chart}\0{version}".encode()).hexdigest()[:32]
        return self.cache_dir / "resolved" / f"{key}.json"

    def _from_pointer(self, pointer: Path, policy: FetchPolicy) -> Path | None:
        try:
            data = json.loads(pointer.read_text())
            archive = self.cache_dir / "archives" / Path(str(data["archive"])).name
            chart_url = str(data["url"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not mark_used(archive):
            return None  # evicted: resolve and download again
        mark_used(pointer)
        # A cached archive is still subject to the allow-list of the side asking for it.
        target = parse_url(chart_url)
        policy.check_host(target)
        self._note(target.host, target.port, policy)
        return archive


def _best(constraint: str, versions: Iterable[str]) -> str | None:
    """The highest listed version matching `constraint`, as source-controller picks it.

    A version written exactly as the constraint wins outright (helm's rule, so a chart with a
    non-semver version can still be pinned); versions that do not parse are skipped.
    """
    listed = list(versions)
    if constraint in listed:
        return constraint
    try:
        parsed = semver.Constraint.parse(constraint)
    except semver.SemverError as exc:
        raise TidegateError(f"invalid chart version {constraint!r}: {exc}") from None
    candidates: dict[semver.Version, str] = {}
    for text in listed:
        try:
            candidates.setdefault(semver.parse_version(text), text)
        except semver.SemverError:
            continue
    best = semver.highest(candidates, parsed)
    return candidates[best] if best is not None else None


def _chart_url(repo_url: str, entry: Mapping[str, Any], chart: str) -> str:
    urls = entry.get("urls")
    if not isinstance(urls, list) or not urls or not isinstance(urls[0], str) or not urls[0]:
        raise TidegateError(
            f"{_shown(repo_url)}: chart {chart!r} version {entry.get('version')} has no urls"
        )
    return urllib.parse.urljoin(repo_url.rstrip("/") + "/", urls[0])


def _name(chart_url: str, version: str, digest: str) -> str:
    """A cache file name of our own: a hash, never a name taken from the repository."""
    key = hashlib.sha256(f"{chart_url}\0{version}\0{digest}".encode()).hexdigest()[:40]
    return f"{key}.tgz"


def _check_archive(url: str, body: bytes, digest: str) -> None:
    if not body.startswith(_GZIP_MAGIC):
        raise TidegateError(f"{_shown(url)}: not a chart archive (.tgz)")
    if digest and hashlib.sha256(body).hexdigest() != digest.lower().removeprefix("sha256:"):
        raise TidegateError(f"{_shown(url)}: the archive does not match the index's digest")


def _write(path: Path, data: bytes) -> None:
    """Write atomically, so a concurrent reader sees the whole file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _shown(url: str) -> str:
    """A URL for a message, without its query."""
    return url.split("?", 1)[0]
