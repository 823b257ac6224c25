"""OCI repository addresses: `oci://host[:port]/name` parsed strictly, tags and digests checked.

A repository URL comes from pull-request content, so everything is validated against the OCI
distribution specification's grammar before it is put into a request path: the repository name
(lower-case path components), tags (`[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`) and digests
(`sha256:` and 64 lower-case hex digits; the only algorithm accepted, as every registry uses it).
Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from core.errors import TidegateError
from core.fetch import FetchError, parse_url

__all__ = [
    "OCIReferenceError",
    "Repository",
    "check_digest",
    "check_tag",
    "parse_repository",
]

_NAME_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"^{_NAME_COMPONENT}(?:/{_NAME_COMPONENT})*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_MAX_NAME = 255


class OCIReferenceError(TidegateError):
    """An OCI URL, tag or digest that is not valid."""


@dataclass(frozen=True)
class Repository:
    """One repository in one registry."""

    host: str
    """`host` or `host:port`, as written (lower case)."""
    name: str
    """The repository path, such as `stefanprodan/manifests/podinfo`."""
    plain_http: bool
    """Speak HTTP instead of HTTPS (an `insecure` source, or a loopback registry)."""

    @property
    def base(self) -> str:
        """The registry's API root (`https://host/v2/`) for this repository."""
        scheme = "http" if self.plain_http else "https"
        return f"{scheme}://{self.host}/v2/{self.name}"

    def child(self, name: str) -> Repository:
        """The repository `name` below this one (a chart in an OCI HelmRepository)."""
        return parse_repository(f"oci://{self.host}/{self.name}/{name}", insecure=self.plain_http)

    def __str__(self) -> str:
        return f"oci://{self.host}/{self.name}"


def parse_repository(url: str, *, insecure: bool = False) -> Repository:
    """Parse `oci://host[:port]/name`; refuse tags, digests, credentials and odd characters.

    Like go-containerregistry, a loopback registry (`localhost`, `127.0.0.0/8`, `::1`) speaks
    plain HTTP even without `insecure`; whether it may be contacted at all is the fetch policy's
    decision, not this parser's.
    """
    try:
        parsed = parse_url(url, schemes=("oci",))
    except FetchError as exc:
        raise OCIReferenceError(f"invalid OCI URL: {exc.reason}") from None
    name = parsed.target.strip("/")
    if "?" in parsed.target or "#" in url:
        raise OCIReferenceError(f"{parsed.shown()}: an OCI URL has no query or fragment")
    if ":" in name.rsplit("/", 1)[-1] or "@" in name:
        raise OCIReferenceError(f"{parsed.shown()}: URL must not contain a tag or digest")
    if not name or len(name) > _MAX_NAME or not _NAME.match(name):
        raise OCIReferenceError(
            f"{parsed.shown()}: invalid repository name (lower-case letters, digits, "
            "separators `.`, `_`, `-`, components joined by `/`)"
        )
    netloc = url.split("://", 1)[1].split("/", 1)[0].lower()
    return Repository(netloc, name, insecure or _is_loopback(parsed.host))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_tag(tag: str) -> str:
    """Return `tag` if it is a valid OCI tag, else raise `OCIReferenceError`."""
    if not _TAG.match(tag):
        raise OCIReferenceError(f"invalid OCI tag {tag[:140]!r}")
    return tag


def check_digest(digest: str) -> str:
    """Return `digest` if it is a sha256 digest, else raise `OCIReferenceError`."""
    if not _DIGEST.match(digest):
        raise OCIReferenceError(f"invalid digest {digest[:140]!r} (expected sha256:<64 hex>)")
    return digest
