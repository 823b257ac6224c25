"""Fixtures for end-to-end previews: run the real `tidegate preview` on real git repositories."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cli import main as cli_main


@dataclass
class Outcome:
    """What one `tidegate preview` run produced."""

    code: int
    report: str
    stderr: str

    @property
    def data(self) -> dict[str, Any]:
        """The JSON report, parsed."""
        return dict(json.loads(self.report))

    def changes(self) -> list[tuple[str, str, str, str, str]]:
        """Every change as (cluster, unit name, action, kind, namespace/name), sorted."""
        found = []
        for cluster in self.data["clusters"]:
            for unit in cluster["units"]:
                for change in unit["changes"]:
                    found.append(
                        (
                            cluster["path"],
                            unit["name"],
                            change["action"],
                            change["kind"],
                            f"{change['namespace']}/{change['name']}",
                        )
                    )
        return sorted(found)

    def unit(self, cluster: str, name: str) -> dict[str, Any]:
        """One unit's JSON entry."""
        for entry in self.data["clusters"]:
            if entry["path"] == cluster:
                for unit in entry["units"]:
                    if unit["name"] == name:
                        return dict(unit)
        raise AssertionError(f"no unit {name} in {cluster}: {self.report}")


Preview = Callable[..., Outcome]


@pytest.fixture
def preview(
    tmp_path: Path, kustomize_bin: Path, helm_bin: Path, capsys: pytest.CaptureFixture[str]
) -> Preview:
    """Run `tidegate preview` in-process with the pinned tools and a per-test cache."""

    def run(repo: Path, base: str, head: str, *extra: str, fmt: str = "json") -> Outcome:
        output = tmp_path / f"report.{fmt}"
        code = cli_main.main(
            [
                "preview",
                "--repo",
                str(repo),
                "--base",
                base,
                "--head",
                head,
                "--format",
                fmt,
                "--output",
                str(output),
                "--cache-dir",
                str(tmp_path / "cache"),
                "--kustomize",
                str(kustomize_bin),
                "--helm",
                str(helm_bin),
                *extra,
            ]
        )
        captured = capsys.readouterr()
        report = output.read_text() if output.exists() else ""
        return Outcome(code, report, captured.err)

    return run
