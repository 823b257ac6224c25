"""The masking boundary for object bodies read from a cluster, before a live plan holds them.

A rendered object is masked where it is rendered (`core.cleartext.Clear.masked`): its Secret
values and the strings post-build substitution made from Secret values become mask tokens. A body
read from a cluster has no such record: kustomize-controller substituted the Secret values of
`spec.postBuild.substituteFrom` into it in cleartext, and nothing in the object says where. So
every live body a plan keeps passes through `LiveMask.body`:

- a Secret is masked by kind, as a rendered one (`Masker.mask_object`);
- where the head render holds a token, the live value at the same place becomes a token;
- every string (mapping keys included) that contains a value of a Secret the Kustomization
  substitutes from becomes the token of the whole string, wherever it is: an object deleted at
  head has no rendered counterpart to say where its Secret-made values are. The values are taken
  as Flux substitutes them (newlines removed), and in upper and lower case (the `^^` and `,,`
  operators). This over-masks (a short value masks every string containing it) rather than
  under-masks; a piece an operator cut out of a value (`${v:0:4}`) is masked only where the head
  render shows a token.

The values are kept in memory only, and also handed to the masker's known values, so that error
text is scrubbed of them too. This module must never log, return or raise with a value, and
`LiveMask` has no repr that could show one.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from typing import Any

from core.model import Manifest
from core.secrets import Masker, is_secret, is_token

__all__ = ["LiveMask", "substituted_values"]


class LiveMask:
    """Masks live bodies: Secrets by kind, and every string holding a substituted Secret value."""

    def __init__(self, masker: Masker, values: Iterable[bytes] = ()) -> None:
        self._masker = masker
        forms: set[str] = set()
        for value in values:
            text = value.decode(errors="replace").replace("\n", "")
            forms.update(form for form in (text, text.upper(), text.lower()) if form)
        # Longest first, so the test for a long value is never cut short by a shorter one.
        self._forms = tuple(sorted(forms, key=len, reverse=True))

    def __repr__(self) -> str:
        return f"LiveMask(<{len(self._forms)} values>)"

    def body(self, live: dict[str, Any], rendered: Manifest | None = None) -> dict[str, Any]:
        """`live` as a plan may hold it: no Secret value, and no Secret-made value, in clear."""
        if is_secret(live):
            return self._masker.mask_object(live)
        if rendered is not None:
            shaped = _mask_like(live, rendered.body, self._masker)
            live = shaped if isinstance(shaped, dict) else live
        if not self._forms:
            return live
        scrubbed = self._scrub(live)
        return scrubbed if isinstance(scrubbed, dict) else live

    def _scrub(self, node: Any) -> Any:
        if isinstance(node, dict):
            return {self._scrub(key): self._scrub(value) for key, value in node.items()}
        if isinstance(node, list):
            return [self._scrub(item) for item in node]
        if isinstance(node, str) and not is_token(node) and self._holds_value(node):
            return self._masker.token(node.encode())
        return node

    def _holds_value(self, text: str) -> bool:
        return any(form in text for form in self._forms)


def substituted_values(secret: Mapping[str, Any]) -> list[bytes]:
    """The variable values a `substituteFrom` Secret gives post-build substitution (its data)."""
    found: list[bytes] = []
    for field in ("data", "stringData"):
        values = secret.get(field)
        if not isinstance(values, Mapping):
            continue
        for value in values.values():
            text = "" if value is None else str(value)
            if field == "stringData":
                found.append(text.encode())
                continue
            try:
                found.append(base64.b64decode(text, validate=True))
            except (binascii.Error, ValueError):
                found.append(text.encode())
    return found


def _mask_like(live: Any, rendered: Any, masker: Masker) -> Any:
    """`live` with a token wherever `rendered` holds one (a value made from a Secret)."""
    if is_token(rendered):
        return masker.token(str(live).encode()) if live is not None else live
    if isinstance(live, dict) and isinstance(rendered, Mapping):
        return {
            k: _mask_like(v, rendered[k], masker) if k in rendered else v for k, v in live.items()
        }
    if isinstance(live, list) and isinstance(rendered, list) and len(live) == len(rendered):
        return [_mask_like(a, b, masker) for a, b in zip(live, rendered, strict=True)]
    return live
