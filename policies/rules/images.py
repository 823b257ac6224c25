"""Container image references split the way the container runtime reads them.

`registry[:port]/path[:tag][@algorithm:hex]`: the tag is what follows the last colon of the last
path component (a colon before a slash belongs to a registry port), the digest what follows `@`.
Pure parsing; what counts as acceptable is the image-pinning rule's business.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ImageRef", "parse_image"]

# The digest grammar of the OCI image spec; sha256 and sha512 are the registered algorithms.
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$|^sha512:[a-f0-9]{128}$")


@dataclass(frozen=True)
class ImageRef:
    """An image reference's parts; tag and digest are empty when absent."""

    name: str
    tag: str
    digest: str

    @property
    def pinned(self) -> bool:
        """Tell whether a well-formed digest fixes the image content."""
        return bool(_DIGEST.match(self.digest))


def parse_image(reference: str) -> ImageRef:
    """Split an image reference into name, tag and digest."""
    name, _, digest = reference.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = ""
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    return ImageRef(name=name, tag=tag, digest=digest)
