"""A read-only client of the OCI distribution API, on top of the guarded fetch.

`RegistryClient` resolves a tag or digest to a manifest (following an image index to its
linux/amd64 entry, as go-containerregistry's `remote.Image` does), lists tags (following `Link`
pagination, bounded), and downloads blobs, verifying every manifest and blob against its sha256
digest. Anonymous pulls answer a registry's `401` with its token challenge
(`WWW-Authenticate: Bearer realm=…,service=…,scope=…`): the token is asked for with the pull scope
and sent only to the registry's origin. Manifests and blobs are cached on disk by digest, the
only key that cannot change under us; tag lookups are never cached. A hit marks the file used
(`core.host.usage`) for the render cache's byte budget, and one the budget removed is downloaded
again.

Every request goes through `core.fetch.fetch`: the registry host must pass the policy. A token
service or blob storage that an allowed registry sends us to (Docker Hub's auth.docker.io, a
signed storage redirect) is trusted as part of that registry, but still only on addresses the
policy allows. Errors name the repository and say what failed in a few words; they never carry a
response body or a token.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from core.errors import Failure, TidegateError
from core.fetch import FetchedResponse, FetchError, FetchPolicy, fetch, parse_url
from core.host.usage import mark_used
from core.oci.reference import Repository, check_digest, check_tag

__all__ = [
    "INDEX_TYPES",
    "MANIFEST_TYPES",
    "Manifest",
    "OCIError",
    "RegistryClient",
    "RegistryError",
    "RegistryLimits",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
_ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])
_DEFAULT_PLATFORM = {"os": "linux", "architecture": "amd64"}
_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class OCIError(TidegateError):
    """An OCI source failed; `unavailable` is the URL when the registry could not be reached.

    Unreachable (name resolution, connection, timeout, HTTP 408/429/5xx) is a condition of the
    network or the registry, not of the repository: the preview reports it apart.
    """

    failure = Failure.SOURCE

    def __init__(self, message: str, *, unavailable: str | None = None) -> None:
        super().__init__(message)
        self.unavailable = unavailable


class RegistryError(OCIError):
    """A registry could not be read, or answered with something invalid."""


@dataclass(frozen=True)
class RegistryLimits:
    """Bounds on what one registry may make us download."""

    manifest_bytes: int = 4 * 1024 * 1024
    blob_bytes: int = 128 * 1024 * 1024
    tag_pages: int = 50
    tags: int = 100_000
    token_bytes: int = 64 * 1024


@dataclass(frozen=True)
class Manifest:
    """A resolved image manifest."""

    digest: str
    """What the reference resolved to: the index's digest when it was an index (as Flux
    reports it in the revision), else the manifest's."""
    media_type: str
    config: Mapping[str, Any]
    layers: tuple[Mapping[str, Any], ...]
    annotations: Mapping[str, str]


class RegistryClient:
    """Reads repositories from registries under one fetch policy; caches content by digest."""

    def __init__(
        self,
        policy: FetchPolicy,
        cache_dir: Path,
        limits: RegistryLimits | None = None,
    ) -> None:
        self.policy = policy
        self.cache_dir = cache_dir
        self.limits = limits or RegistryLimits()
        self._tokens: dict[tuple[str, str], str] = {}

    # ----------------------------------------------------------------------------------------
    # Public operations.

    def manifest(self, repo: Repository, reference: str) -> Manifest:
        """Resolve a tag or digest to its image manifest (an index's linux/amd64 entry)."""
        if reference.startswith("sha256:"):
            check_digest(reference)
        else:
            check_tag(reference)
        digest, doc = self._manifest_doc(repo, reference)
        resolved = digest
        if _media_type(doc) in INDEX_TYPES or "manifests" in doc:
            child = _platform_child(doc, repo, reference)
            _, doc = self._manifest_doc(repo, child)
        if _media_type(doc) not in MANIFEST_TYPES and _media_type(doc) != "":
            raise RegistryError(f"{repo}:{reference}: unsupported manifest type {_media_type(doc)}")
        layers = doc.get("layers")
        if not isinstance(layers, list) or not all(isinstance(x, dict) for x in layers):
            raise RegistryError(f"{repo}:{reference}: the manifest has no valid layers")
        config = doc.get("config") if isinstance(doc.get("config"), dict) else {}
        annotations = doc.get("annotations") if isinstance(doc.get("annotations"), dict) else {}
        return Manifest(
            resolved,
            _media_type(doc) or OCI_MANIFEST,
            dict(config or {}),
            tuple(layers),
            {str(k): str(v) for k, v in (annotations or {}).items()},
        )

    def tags(self, repo: Repository) -> list[str]:
        """List a repository's tags, following pagination within the limits."""
        url = f"{repo.base}/tags/list"
        found: list[str] = []
        for _ in range(self.limits.tag_pages):
            response = self._get(repo, url, accept="application/json", max_bytes=8 * 1024 * 1024)
            try:
                doc = json.loads(response.body)
                tags = doc.get("tags") or []
            except (ValueError, AttributeError):
                raise RegistryError(f"{repo}: the tag list is not valid JSON") from None
            if not isinstance(tags, list):
                raise RegistryError(f"{repo}: the tag list is not a list")
            found.extend(str(tag) for tag in tags)
            if len(found) > self.limits.tags:
                raise RegistryError(f"{repo}: more than {self.limits.tags} tags")
            link = _NEXT_LINK.search(response.headers.get("link", ""))
            if link is None:
                return found
            url = urllib.parse.urljoin(response.url, link.group(1))
            if parse_url(url).origin != parse_url(response.url).origin:
                raise RegistryError(f"{repo}: the tag list links to another host")
        raise RegistryError(f"{repo}: more than {self.limits.tag_pages} pages of tags")

    def blob(self, repo: Repository, descriptor: Mapping[str, Any]) -> Path:
        """Return a cached file holding a verified blob, downloading it when needed."""
        digest = check_digest(str(descriptor.get("digest") or ""))
        size = descriptor.get("size")
        if isinstance(size, int) and size > self.limits.blob_bytes:
            raise RegistryError(
                f"{repo}: blob {digest} is {size} bytes, over the {self.limits.blob_bytes} limit"
            )
        path = self._cached("blobs", digest)
        if mark_used(path):
            return path
        response = self._get(
            repo,
            f"{repo.base}/blobs/{digest}",
            accept="*/*",
            max_bytes=self.limits.blob_bytes,
            follow_anywhere=True,
        )
        self._store(path, digest, response.body, repo)
        return path

    # ----------------------------------------------------------------------------------------
    # Manifests.

    def _manifest_doc(self, repo: Repository, reference: str) -> tuple[str, dict[str, Any]]:
        if reference.startswith("sha256:"):
            cached = self._cached("manifests", reference)
            if mark_used(cached):
                with contextlib.suppress(FileNotFoundError):  # evicted since: fetch it again
                    return reference, _parse_manifest(cached.read_bytes(), repo, reference)
        response = self._get(
            repo,
            f"{repo.base}/manifests/{reference}",
            accept=_ACCEPT,
            max_bytes=self.limits.manifest_bytes,
        )
        digest = "sha256:" + hashlib.sha256(response.body).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise RegistryError(f"{repo}@{reference}: the manifest does not match its digest")
        doc = _parse_manifest(response.body, repo, reference)
        self._store(self._cached("manifests", digest), digest, response.body, repo)
        return digest, doc

    # ----------------------------------------------------------------------------------------
    # HTTP with the token dance.

    def _get(
        self,
        repo: Repository,
        url: str,
        *,
        accept: str,
        max_bytes: int,
        follow_anywhere: bool = False,
    ) -> FetchedResponse:
        """GET from the registry, answering one token challenge anonymously."""
        key = (repo.host, repo.name)
        headers = {"Authorization": f"Bearer {self._tokens[key]}"} if key in self._tokens else {}
        policy = self.policy
        try:
            if follow_anywhere:
                # The registry host is checked first; where it then sends a download is its
                # business, within the address rules.
                policy.check_host(parse_url(url))
                policy = replace(policy, allowed_hosts=None)
            response = fetch(
                url,
                policy=policy,
                max_bytes=max_bytes,
                accept=accept,
                headers=headers,
                ok_statuses=(401,),
            )
            if response.status == 401 and not headers:
                token = self._token(repo, response.headers.get("www-authenticate", ""))
                self._tokens[key] = token
                response = fetch(
                    url,
                    policy=policy,
                    max_bytes=max_bytes,
                    accept=accept,
                    headers={"Authorization": f"Bearer {token}"},
                    ok_statuses=(401,),
                )
        except FetchError as exc:
            raise RegistryError(f"{repo}: {_describe(exc)}", unavailable=_down(exc)) from None
        if response.status == 401:
            raise RegistryError(
                f"{repo}: the registry refused anonymous access (HTTP 401); "
                "previews pull without credentials"
            )
        return response

    def _token(self, repo: Repository, challenge: str) -> str:
        """Ask the challenge's token service for an anonymous pull token."""
        scheme, _, rest = challenge.partition(" ")
        if scheme.lower() != "bearer":
            raise RegistryError(
                f"{repo}: the registry asks for {scheme or 'unknown'} credentials; "
                "previews pull without credentials"
            )
        params = {
            m.group(1).lower(): m.group(2) or m.group(3) for m in _CHALLENGE_PARAM.finditer(rest)
        }
        realm = params.get("realm", "")
        if not realm:
            raise RegistryError(f"{repo}: the token challenge names no realm")
        query = {"scope": params.get("scope") or f"repository:{repo.name}:pull"}
        if params.get("service"):
            query["service"] = params["service"]
        separator = "&" if "?" in realm else "?"
        url = realm + separator + urllib.parse.urlencode(query)
        try:
            parsed = parse_url(url)
            if repo.plain_http is False and parsed.scheme != "https":
                raise RegistryError(f"{repo}: the token service is not HTTPS")
            # The registry named its token service: its host needs no allow-list entry of its
            # own, but the address rules still hold.
            response = fetch(
                url,
                policy=replace(self.policy, allowed_hosts=None),
                max_bytes=self.limits.token_bytes,
                accept="application/json",
            )
        except FetchError as exc:
            raise RegistryError(
                f"{repo}: token service: {_describe(exc)}", unavailable=_down(exc)
            ) from None
        try:
            doc = json.loads(response.body)
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"{repo}: the token service gave no token")
        return token

    # ----------------------------------------------------------------------------------------
    # Cache.

    def _cached(self, kind: str, digest: str) -> Path:
        return self.cache_dir / kind / "sha256" / digest.removeprefix("sha256:")

    def _store(self, path: Path, digest: str, body: bytes, repo: Repository) -> None:
        """Write verified content atomically; what is in the cache always matches its name."""
        if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
            raise RegistryError(f"{repo}: content of {digest} does not match its digest")
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(body)
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise


def _describe(exc: FetchError) -> str:
    """A fetch failure in the registry's words: what, not the whole URL again."""
    return exc.reason if exc.reason.startswith("refused") else f"{exc.reason} ({exc.url})"


def _down(exc: FetchError) -> str | None:
    """The URL that could not be reached, when the failure is the network's or the server's."""
    return exc.url if exc.unavailable else None


def _media_type(doc: Mapping[str, Any]) -> str:
    return str(doc.get("mediaType") or "")


def _parse_manifest(body: bytes, repo: Repository, reference: str) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise RegistryError(f"{repo}:{reference}: the manifest is not a JSON object")
    return doc


def _platform_child(index: Mapping[str, Any], repo: Repository, reference: str) -> str:
    """Pick the linux/amd64 entry of an index; an entry without a platform counts as one."""
    for entry in index.get("manifests") or []:
        if not isinstance(entry, dict):
            continue
        platform = entry.get("platform") or _DEFAULT_PLATFORM
        if not isinstance(platform, dict):
            continue
        if all(platform.get(k) == v for k, v in _DEFAULT_PLATFORM.items()):
            return check_digest(str(entry.get("digest") or ""))
    raise RegistryError(f"{repo}:{reference}: the index has no linux/amd64 manifest")
