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
import threading
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "MASK",
    "MASK_AFTER",
    "MASK_BEFORE",
    "KnownValues",
    "Masker",
    "contains_token",
    "display_pair",
    "is_secret",
    "is_token",
    "strip_tokens",
    "values_in",
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


def contains_token(value: str) -> bool:
    """Tell whether a string holds a mask token anywhere (a Secret-derived value)."""
    return _TOKEN_PREFIX in value


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

    def __init__(self, key: bytes | None = None, *, known: KnownValues | None = None) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)
        self._known = known

    def token(self, value: bytes) -> str:
        """Return the mask token of one cleartext value."""
        digest = hmac.new(self._key, value, hashlib.sha256).hexdigest()[:32]
        return _TOKEN_PREFIX + digest

    def learn(self, values: Iterable[bytes]) -> None:
        """Remember cleartext values met outside a Secret, so error text is scrubbed of them."""
        if self._known is not None:
            for value in values:
                self._known.add(value)

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
                raw = _raw_bytes(field, value)
                if self._known is not None and not sops:
                    self._known.add(raw)
                data[str(key)] = _SOPS_TOKEN if sops else self.token(raw)
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


# Values shorter than this are not scrubbed from free text: masking every "a" or "1" in an error
# message would make it unreadable while protecting nothing a guess would not find.
_SCRUB_MIN = 4


class KnownValues:
    """Cleartext Secret values met during one preview, to scrub them from free text.

    Tool error text can quote a Secret value (kustomize quotes the node a replacement failed on),
    and such text never passes through `Masker.mask_object`. Every value the masker sees, and every
    value found in the inputs of a unit that failed, is kept here (in memory only) so that error
    messages and reports can be scrubbed of it, as text and in base64, line by line for multi-line
    values. Thread-safe: renders add values from worker threads.
    """

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: bytes) -> None:
        """Remember one cleartext value."""
        text = value.decode(errors="replace")
        forms = {text, text.strip(), base64.b64encode(value).decode()}
        forms.update(line.strip() for line in text.splitlines())
        kept = {form for form in forms if len(form) >= _SCRUB_MIN}
        with self._lock:
            if not kept <= self._values:
                self._values |= kept
                self._pattern = None

    def __len__(self) -> int:
        return len(self._values)

    def scrub(self, text: str) -> str:
        """Return `text` with every known value replaced by `***`."""
        with self._lock:
            if not self._values:
                return text
            if self._pattern is None:
                # Longest first, so a value is never left half-replaced by one of its lines.
                ordered = sorted(self._values, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(v) for v in ordered))
            pattern = self._pattern
        return pattern.sub(MASK, text)


def values_in(documents: Iterable[Any]) -> list[bytes]:
    """Return the cleartext values of the Secrets and secret generators among parsed documents.

    Covers Secret `data` (base64) and `stringData`, and kustomize `secretGenerator` `literals`
    (`key=value`); generator `files` and `envs` are files, which the caller reads and passes in as
    documents of their own when it wants them.
    """
    found: list[bytes] = []
    for doc in documents:
        if not isinstance(doc, Mapping):
            continue
        if doc.get("kind") == "Secret":
            for field in _VALUE_FIELDS:
                values = doc.get(field)
                if isinstance(values, Mapping):
                    found.extend(_raw_bytes(field, value) for value in values.values())
        for generator in doc.get("secretGenerator") or []:
            if not isinstance(generator, Mapping):
                continue
            for literal in generator.get("literals") or []:
                _, sep, value = str(literal).partition("=")
                if sep:
                    found.append(value.encode())
    return found
