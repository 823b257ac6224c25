"""Secret masking in the model, applied once where rendered objects enter Tidegate.

Every Secret value is replaced by an opaque token as soon as a renderer parses it, before anything
is cached, compared, logged or formatted. A token is a keyed digest of the value, so two renders can
still tell whether a value changed without holding it; formatters turn tokens into `***`,
`*** (before)` or `*** (after)` and nothing else. SOPS-encrypted Secrets are compared by key set
only, because their ciphertext changes on every re-encryption.

This module must never log, return or raise with a cleartext value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from typing import Any

__all__ = [
    "MASK",
    "MASK_AFTER",
    "MASK_BEFORE",
    "Masker",
    "display_pair",
    "is_secret",
    "is_token",
    "strip_tokens",
]

MASK = "***"
MASK_BEFORE = "*** (before)"
MASK_AFTER = "*** (after)"

_TOKEN_PREFIX = "tidegate:masked:"  # noqa: S105 - a marker, not a credential
_SOPS_TOKEN = _TOKEN_PREFIX + "sops"
_VALUE_FIELDS = ("data", "stringData")
# Annotations that may embed a whole Secret body (and so its values).
_LEAKY_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def is_secret(obj: Mapping[str, Any]) -> bool:
    """Tell whether an object is a core/v1 Secret."""
    return obj.get("kind") == "Secret" and obj.get("apiVersion") == "v1"


def is_token(value: object) -> bool:
    """Tell whether a value is a mask token produced by `Masker`."""
    return isinstance(value, str) and value.startswith(_TOKEN_PREFIX)


_TOKEN_TEXT = re.compile(re.escape(_TOKEN_PREFIX) + r"(?:[0-9a-f]{32}|sops)")


def strip_tokens(text: str) -> str:
    """Return `text` without its mask tokens, so what remains can be searched for a value.

    A token begins with the same characters for every value, so a short piece of a substituted
    token (`${TOKEN:0:6}`) is found inside every token; only the text around tokens can leak.
    """
    return _TOKEN_TEXT.sub("", text)


def display_pair(before: object, after: object) -> tuple[str, str]:
    """Return what a diff shows for a masked value on each side."""
    if before == after:
        return MASK, MASK
    return MASK_BEFORE, MASK_AFTER


class Masker:
    """Replaces Secret values with keyed digests.

    The key must stay the same wherever tokens are compared (for example across a render cache),
    and must never be written anywhere readable by others.
    """

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)

    def token(self, value: bytes) -> str:
        """Return the mask token of one cleartext value."""
        digest = hmac.new(self._key, value, hashlib.sha256).hexdigest()[:32]
        return _TOKEN_PREFIX + digest

    def mask_object(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Return a copy of `obj` whose Secret values are tokens; other kinds are returned as is."""
        if not is_secret(obj):
            return obj
        masked = dict(obj)
        sops = "sops" in obj
        data: dict[str, str] = {}
        for field in _VALUE_FIELDS:
            values = obj.get(field)
            if not isinstance(values, Mapping):
                continue
            for key, value in values.items():
                # stringData folds into data (as the API server does), so both spellings of one
                # value produce the same token.
                data[str(key)] = _SOPS_TOKEN if sops else self.token(_raw_bytes(field, value))
        masked.pop("stringData", None)
        if data or "data" in obj:
            masked["data"] = data
        metadata = obj.get("metadata")
        if isinstance(metadata, Mapping) and isinstance(metadata.get("annotations"), Mapping):
            annotations = {
                k: (self.token(str(v).encode()) if k in _LEAKY_ANNOTATIONS else v)
                for k, v in metadata["annotations"].items()
            }
            masked["metadata"] = {**metadata, "annotations": annotations}
        return masked


def _raw_bytes(field: str, value: object) -> bytes:
    """Return the bytes a Secret value stands for (data is base64, stringData is text)."""
    text = "" if value is None else str(value)
    if field == "data":
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            # Invalid base64 would be rejected by the API server; mask the text itself.
            return text.encode()
    return text.encode()
