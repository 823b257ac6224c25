"""Helpers for render tests: write repository trees and build Flux specs."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from core.units import KustomizationSpec, parse_unit

__all__ = ["ks_spec", "write_tree"]


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Write `files` (path -> dedented text) under `root` and return `root`."""
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


def ks_spec(path: str, **spec: Any) -> KustomizationSpec:
    """A Flux Kustomization `apps/flux-system` for `path` with extra spec fields."""
    obj = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "apps", "namespace": "flux-system"},
        "spec": {
            "interval": "10m",
            "prune": True,
            "path": path,
            "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
            **spec,
        },
    }
    parsed = parse_unit(obj, file="clusters/prod/apps.yaml")
    assert isinstance(parsed, KustomizationSpec)
    return parsed
