"""Only the renderers, the masking boundary and the apply path name the cleartext types.

The import-linter contract in pyproject.toml enforces it in the static checks; this test reads the
same rule from the source tree itself, so it fails when a new module imports cleartext objects or
when the contract is weakened.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLEARTEXT = {"core.cleartext", "core.render.clear"}
ALLOWED = {
    "core.cleartext",
    "core.render.clear",
    "core.render.kustomize",
    "core.render.helm",
    "core.render.substitute",
    "core.render.unit",
    "reconciler.apply",
    # The Kustomization pipeline's build step: it hands the objects to the apply step opaquely.
    "reconciler.kustomization.build",
}


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_only_the_allowed_modules_import_cleartext_objects() -> None:
    importers = {
        _module(path)
        for package in ("core", "policies", "app", "reconciler", "cli")
        for path in (ROOT / package).rglob("*.py")
        if _imports(path) & CLEARTEXT
    }

    assert importers <= ALLOWED
    assert {"core.render.unit", "core.render.kustomize", "core.render.helm"} <= importers


def test_the_import_contract_forbids_cleartext_to_what_caches_reports_and_logs() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [contract] = [
        c
        for c in config["tool"]["importlinter"]["contracts"]
        if set(c.get("forbidden_modules", ())) == CLEARTEXT
    ]

    assert contract["type"] == "forbidden"
    assert {
        "core.plan",
        "core.report",
        "core.preview",
        "core.render.cache",
        "policies",
        "app",
        "cli",
        "reconciler",
    } <= set(contract["source_modules"])
    assert set(contract["ignore_imports"]) == {
        "reconciler.apply -> core.cleartext",
        "reconciler.apply -> core.render.clear",
        "reconciler.kustomization.build -> core.cleartext",
        "reconciler.kustomization.build -> core.render.clear",
    }
