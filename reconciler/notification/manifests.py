"""The Provider and Alert CRDs shipped with the package, as objects ready to apply."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

__all__ = ["crds"]

_FILES = ("providers.yaml", "alerts.yaml")


def crds() -> list[dict[str, Any]]:
    """The CustomResourceDefinitions of Provider and Alert (v1beta3)."""
    folder = resources.files("reconciler.notification") / "crds"
    return [yaml.safe_load((folder / name).read_text(encoding="utf-8")) for name in _FILES]
