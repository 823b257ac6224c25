"""Download a Flux source artifact by URL, verify its digest and unpack it safely.

A Kustomization reads its source as source-controller's consumers do: GET `status.artifact.url`,
check the bytes against `status.artifact.digest` (`sha256:<hex>`, or `sha384:`/`sha512:`), and
untar the gzip archive into a fresh directory. The archive may have been written by anyone who
could reach the storage, so the unpacking fails closed: an entry with an absolute path, a `..`
segment, a link that leaves the root, a device, FIFO or sparse file fails the whole artifact, and
the total size, the number of entries and the directory depth are capped. Links that stay inside
the root are skipped, as Flux's archives never carry links. Files are created by this module
below the target with plain permissions; nothing goes through `tarfile.extract`.

Every error is an `ArtifactError` naming the artifact (its URL without query, and the object it
belongs to when the caller says), never the archive's bytes. The download goes through
`core.fetch`, so loopback and private addresses are refused unless the policy allows them:
`artifact_policy` gives the usual one (any host, the in-cluster private addresses source-controller
lives on, loopback only on the operator's explicit opt-in).

It never writes outside the target, never follows a link and never keeps a partial result: the
archive is unpacked into a temporary sibling that is renamed into place only when complete.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core.errors import Failure, TidegateError
from core.fetch import FetchError, FetchPolicy, fetch, parse_url

__all__ = [
    "ArtifactError",
    "ArtifactLimits",
    "artifact_policy",
    "download_artifact",
    "extract_artifact",
    "verify_digest",
]

# The digest algorithms Flux writes (fluxcd/pkg artifact/digest) that the standard library has.
_ALGORITHMS = {"sha256": 64, "sha384": 96, "sha512": 128}
_CHUNK = 64 * 1024


class ArtifactError(TidegateError):
    """An artifact could not be downloaded, did not match its digest or is unsafe to unpack.

    `unavailable` is True when the storage could not be reached (retry later); `missing` when it
    answered 404, which means the artifact was garbage-collected or the storage lost it (retry
    after the source reconciles again). Neither is a defect of the Kustomization itself.
    """

    failure = Failure.SOURCE

    def __init__(
        self, artifact: str, reason: str, *, unavailable: bool = False, missing: bool = False
    ) -> None:
        self.artifact = artifact
        self.reason = reason
        self.unavailable = unavailable
        self.missing = missing
        super().__init__(f"artifact {artifact}: {reason}")


@dataclass(frozen=True)
class ArtifactLimits:
    """Bounds on one artifact; the defaults fit large GitOps repositories."""

    download_bytes: int = 256 << 20
    """The compressed archive, as downloaded."""
    unpacked_bytes: int = 1 << 30
    """The sum of the sizes of the files unpacked."""
    files: int = 50_000
    """Entries in the archive, directories included."""
    depth: int = 64
    """Path segments of one entry."""


def artifact_policy(*, allow_loopback: bool = False) -> FetchPolicy:
    """The fetch policy for artifact URLs taken from sources' status.

    Any host may serve artifacts and private addresses are allowed, since source-controller is an
    in-cluster Service; loopback only when the operator says so (a development cluster).
    """
    return FetchPolicy(allowed_hosts=None, allow_private=True, allow_loopback=allow_loopback)


def download_artifact(
    url: str,
    digest: str,
    target: Path,
    *,
    policy: FetchPolicy,
    limits: ArtifactLimits | None = None,
    owner: str = "",
) -> Path:
    """Download the artifact at `url`, check `digest`, unpack it into the new directory `target`.

    Args:
        url: `status.artifact.url` of the source.
        digest: `status.artifact.digest`, such as `sha256:<hex>`.
        target: A directory that must not exist yet; created only on success.
        policy: Which hosts and addresses may be contacted (see `artifact_policy`).
        limits: Size bounds.
        owner: The object the artifact belongs to, for messages (`GitRepository ns/name`).

    Returns:
        `target`.

    Raises:
        ArtifactError: the download failed, the digest did not match, or the archive is unsafe.
    """
    bounds = limits or ArtifactLimits()
    try:
        shown = parse_url(url).shown()
    except FetchError as exc:
        raise ArtifactError(_label(exc.url, owner), exc.reason) from None
    label = _label(shown, owner)
    expected = _parse_digest(digest, label)
    try:
        response = fetch(url, policy=policy, max_bytes=bounds.download_bytes)
    except FetchError as exc:
        raise ArtifactError(
            label, exc.reason, unavailable=exc.unavailable, missing=exc.reason == "HTTP 404"
        ) from None
    _check_digest(response.body, expected, label)
    extract_artifact(response.body, target, limits=bounds, artifact=label)
    return target


def verify_digest(data: bytes, digest: str, *, artifact: str) -> None:
    """Raise `ArtifactError` unless `data` has `digest` (`<algorithm>:<hex>`)."""
    _check_digest(data, _parse_digest(digest, artifact), artifact)


def extract_artifact(
    archive: bytes, target: Path, *, limits: ArtifactLimits | None = None, artifact: str
) -> None:
    """Unpack a gzip (or plain) tar archive into `target`, which must not exist yet.

    Raises:
        ArtifactError: the archive is invalid or unsafe, or breaks a bound; `target` is then not
            created.
    """
    bounds = limits or ArtifactLimits()
    if target.exists() or target.is_symlink():
        raise ArtifactError(artifact, f"the target directory {target.name!r} already exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unpacking-", dir=target.parent))
    try:
        _Unpacker(staging, bounds, artifact).unpack(archive)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _label(url: str, owner: str) -> str:
    return f"{url} of {owner}" if owner else url


def _parse_digest(digest: str, artifact: str) -> tuple[str, str]:
    algorithm, _, value = (digest or "").partition(":")
    size = _ALGORITHMS.get(algorithm)
    if size is None:
        raise ArtifactError(artifact, f"unsupported digest {digest[:80]!r}")
    if len(value) != size or any(ch not in "0123456789abcdef" for ch in value):
        raise ArtifactError(artifact, f"malformed {algorithm} digest {digest[:80]!r}")
    return algorithm, value


def _check_digest(data: bytes, expected: tuple[str, str], artifact: str) -> None:
    algorithm, value = expected
    actual = hashlib.new(algorithm, data).hexdigest()
    if actual != value:
        raise ArtifactError(
            artifact, f"digest mismatch: expected {algorithm}:{value}, got {algorithm}:{actual}"
        )


class _Unpacker:
    """Writes the entries of one archive below `root`, checking each one first."""

    def __init__(self, root: Path, limits: ArtifactLimits, artifact: str) -> None:
        self.root = root
        self.limits = limits
        self.artifact = artifact
        self.written = 0
        self.entries = 0

    def fail(self, reason: str) -> ArtifactError:
        return ArtifactError(self.artifact, reason)

    def unpack(self, archive: bytes) -> None:
        try:
            with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
                for member in tar:
                    self.entry(tar, member)
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            # zlib and tarfile errors say nothing an attacker controls beyond their type.
            raise self.fail(f"not a valid tar.gz archive ({type(exc).__name__})") from None

    def entry(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        self.entries += 1
        if self.entries > self.limits.files:
            raise self.fail(f"more than {self.limits.files} entries")
        parts = self.segments(member.name)
        if member.issym() or member.islnk():
            self.check_link(member, parts)
            return  # links inside the root are skipped: Flux's archives never hold any
        if member.ischr() or member.isblk() or member.isfifo() or member.issparse():
            raise self.fail(f"entry {_shown(member.name)} is a device, FIFO or sparse file")
        if not parts:
            return  # the root itself ("./")
        destination = self.root.joinpath(*parts)
        if member.isdir():
            self.mkdir(destination)
        elif member.isfile():
            self.write(tar, member, destination)
        else:
            raise self.fail(f"entry {_shown(member.name)} has an unsupported type")

    def segments(self, name: str) -> list[str]:
        """The entry's path segments below the root; refuse absolute, `..` and too deep."""
        if "\x00" in name or "\\" in name:
            raise self.fail(f"entry {_shown(name)} has a forbidden character in its name")
        if name.startswith("/"):
            raise self.fail(f"entry {_shown(name)} has an absolute path")
        parts = [part for part in name.split("/") if part not in ("", ".")]
        if ".." in parts:
            raise self.fail(f"entry {_shown(name)} leaves the artifact root")
        if len(parts) > self.limits.depth:
            raise self.fail(f"entry {_shown(name)} is nested deeper than {self.limits.depth}")
        return parts

    def check_link(self, member: tarfile.TarInfo, parts: list[str]) -> None:
        """Refuse a link whose target resolves outside the root."""
        target = member.linkname
        if target.startswith("/") or "\\" in target or "\x00" in target:
            raise self.fail(f"link {_shown(member.name)} points outside the artifact root")
        # A symlink's target is relative to its directory, a hard link's to the archive root;
        # walking the segments catches a climb past the root that `normpath` would hide.
        base = parts[:-1] if member.issym() else []
        depth = len(base)
        for segment in target.split("/"):
            if segment == "..":
                depth -= 1
                if depth < 0:
                    raise self.fail(f"link {_shown(member.name)} points outside the artifact root")
            elif segment not in ("", "."):
                depth += 1

    def mkdir(self, directory: Path) -> None:
        self.inside(directory)
        if directory.exists() and not directory.is_dir():
            raise self.fail(f"{_shown(self.relative(directory))} is both a file and a directory")
        directory.mkdir(parents=True, exist_ok=True)

    def write(self, tar: tarfile.TarFile, member: tarfile.TarInfo, destination: Path) -> None:
        self.written += member.size
        if self.written > self.limits.unpacked_bytes:
            raise self.fail(f"unpacks to more than {self.limits.unpacked_bytes} bytes")
        self.mkdir(destination.parent)
        if destination.is_dir():
            raise self.fail(f"{_shown(member.name)} is both a file and a directory")
        source = tar.extractfile(member)
        if source is None:
            raise self.fail(f"entry {_shown(member.name)} has no content")
        mode = 0o755 if member.mode & stat.S_IXUSR else 0o644
        # O_NOFOLLOW: the destination is never a link (none are created), and never followed.
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        with source, os.fdopen(os.open(destination, flags, mode), "wb") as out:
            left = member.size
            while left > 0:
                chunk = source.read(min(_CHUNK, left))
                if not chunk:
                    raise self.fail(f"the archive is truncated at {_shown(member.name)}")
                out.write(chunk)
                left -= len(chunk)

    def inside(self, path: Path) -> None:
        resolved = path.resolve()
        root = self.root.resolve()
        if resolved != root and root not in resolved.parents:
            raise self.fail("an entry writes outside the artifact root")

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


def _shown(name: str) -> str:
    """An entry name for a message: quoted and short."""
    return repr(name[:200])
