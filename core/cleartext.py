"""Rendered objects before masking: the one type that holds Secret values in cleartext.

Renderers return `Clear` objects: the body exactly as kustomize, helm and post-build substitution
produced it, plus the paths of the strings (and mapping keys) that were made from Secret values
(`postBuild.substituteFrom` Secrets). The `data`/`stringData` of a Secret need no path: the kind
says it. `Clear.masked` is the single boundary where cleartext becomes mask tokens; everything that
is cached, compared, logged or reported is on the masked side of it. Only what must see cleartext
imports this module: the renderers that produce it, the unit renderer that masks it, the
cleartext build for applying (`core.render.clear`) and the reconciler's apply path. An
import-linter contract in pyproject.toml keeps it that way.

This module must never log, print, format or raise with a body: `Clear` does not even show one in
its `repr`, so a traceback or a debug print cannot carry a value out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.model import Manifest, RawObject
from core.secrets import MASK, Masker

__all__ = ["Clear", "Path", "SecretPaths", "replace_paths"]

Path = tuple[str | int, ...]
"""A location in an object: mapping keys and list indexes from the top."""


@dataclass(frozen=True)
class SecretPaths:
    """Where Secret-derived text sits in one object (never the text itself)."""

    values: frozenset[Path] = frozenset()
    """Strings (or other scalars) made from a Secret value."""
    keys: frozenset[Path] = frozenset()
    """Mapping keys made from a Secret value; the path ends with the key itself."""

    def __bool__(self) -> bool:
        return bool(self.values or self.keys)


@dataclass(frozen=True, eq=False)
class Clear:
    """One rendered object in cleartext, and where its Secret-derived values are."""

    body: RawObject
    source: str | None
    """Repository file the object came from, when known."""
    secret: SecretPaths = field(default_factory=SecretPaths)

    def __repr__(self) -> str:
        # Never the body: a repr ends up in tracebacks, logs and test failure output.
        return f"Clear(<{self.body.get('kind', '?')} from {self.source or 'unknown'}>)"

    def masked(self, masker: Masker) -> Manifest:
        """The object as everything but the apply path may see it: every Secret value a token."""
        body = replace_paths(self.body, self.secret, masker.token) if self.secret else self.body
        body = masker.mask_object(dict(body))
        return Manifest(str(body["apiVersion"]), body, self.source)

    def redacted(self) -> RawObject:
        """The object with Secret-derived text shown as `***`, for error messages only.

        Secret `data` is not redacted here: messages never quote it.
        """
        return replace_paths(self.body, self.secret, lambda _: MASK) if self.secret else self.body


def replace_paths(
    obj: Mapping[str, Any], paths: SecretPaths, replace: Callable[[bytes], str]
) -> RawObject:
    """Return a copy of `obj` with the values and keys at `paths` replaced by `replace(text)`."""
    result = _replace(obj, (), paths, replace)
    return dict(result)


def _replace(node: Any, here: Path, paths: SecretPaths, replace: Callable[[bytes], str]) -> Any:
    if here in paths.values and node is not None:
        return replace(str(node).encode())
    if isinstance(node, Mapping):
        out: dict[Any, Any] = {}
        for key, value in node.items():
            below = (*here, key)
            new_key = replace(str(key).encode()) if below in paths.keys else key
            out[new_key] = _replace(value, below, paths, replace)
        return out
    if isinstance(node, list):
        return [_replace(item, (*here, index), paths, replace) for index, item in enumerate(node)]
    return node
