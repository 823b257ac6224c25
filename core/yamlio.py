"""YAML in and out through libyaml's C implementation, with PyYAML's safe semantics.

PyYAML's pure-Python scanner dominated the cost of a render (parsing kustomize's output and
re-parsing each object after substitution); the C loader and dumper that PyYAML ships do the same
safe loading several times faster. Only plain data is loaded: no Python tags, ever.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

__all__ = ["MarkedYAMLError", "YAMLError", "dump", "load", "load_all"]

YAMLError = yaml.YAMLError
MarkedYAMLError = yaml.MarkedYAMLError

# Fall back to the pure-Python classes where PyYAML was built without libyaml.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def load(data: str | bytes) -> Any:
    """Parse one YAML document into plain data."""
    return yaml.load(data, Loader=_Loader)  # noqa: S506 - a safe loader


def load_all(data: str | bytes) -> Iterator[Any]:
    """Parse every document of a YAML stream into plain data."""
    return yaml.load_all(data, Loader=_Loader)


def dump(data: Any, **options: Any) -> str:
    """Write plain data as YAML (block style, keys sorted unless `sort_keys=False`)."""
    options.setdefault("default_flow_style", False)
    text: str = yaml.dump(data, Dumper=_Dumper, **options)
    return text
