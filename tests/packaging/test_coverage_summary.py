"""The test command's coverage: child processes are measured, and the summary adds up.

One test runs the project's coverage configuration on a program that starts `python -m cli` as a
child, and finds the child's lines in the combined data, which is what makes tests that run the
command line in a subprocess count. The others check the per-package summary on fixed input.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.fixtures.coverage_summary import PackageCoverage, format_table, per_package

ROOT = Path(__file__).resolve().parents[2]


def _coverage(*args: str, env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "coverage", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )


def test_a_child_python_process_is_measured(tmp_path: Path) -> None:
    # A measurement of its own: the run measuring this test must not see these processes.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    env["COVERAGE_FILE"] = str(tmp_path / "data")
    parent = (
        "import subprocess, sys\n"
        "subprocess.run([sys.executable, '-m', 'cli', '--help'], check=True,"
        " capture_output=True)\n"
    )

    (tmp_path / "parent.py").write_text(parent)
    _coverage("run", "--rcfile=pyproject.toml", str(tmp_path / "parent.py"), env=env)
    _coverage("combine", "--rcfile=pyproject.toml", "-q", env=env)
    _coverage("json", "--rcfile=pyproject.toml", "-q", "-o", str(tmp_path / "c.json"), env=env)

    files = json.loads((tmp_path / "c.json").read_text())["files"]
    # cli/__main__.py runs only in the child; all of it ran there.
    assert files["cli/__main__.py"]["summary"]["missing_lines"] == 0
    assert files["cli/__main__.py"]["summary"]["covered_lines"] > 0


def test_per_package_sums_modules_by_directory() -> None:
    def entry(statements: int, missing: int) -> dict[str, dict[str, int]]:
        return {"summary": {"num_statements": statements, "missing_lines": missing}}

    rows = per_package(
        {
            "core/render/unit.py": entry(100, 10),
            "core/render/walk.py": entry(50, 0),
            "core/preview.py": entry(40, 4),
            "cli/main.py": entry(10, 5),
        }
    )

    assert rows == [
        PackageCoverage("cli", 10, 5),
        PackageCoverage("core", 40, 4),
        PackageCoverage("core/render", 150, 10),
    ]
    assert [round(r.percent, 1) for r in rows] == [50.0, 90.0, 93.3]


def test_the_table_leaves_out_empty_packages_and_ends_with_the_total() -> None:
    lines = format_table(
        [
            PackageCoverage("core", 40, 4),
            PackageCoverage("app", 0, 0),
            PackageCoverage("cli", 10, 5),
        ]
    )

    assert lines == [
        "package   stmts    miss   cover",
        "core         40       4   90.0%",
        "cli          10       5   50.0%",
        "TOTAL        50       9   82.0%",
    ]
    assert PackageCoverage("empty", 0, 0).percent == 100.0
