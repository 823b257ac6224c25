"""`scripts/dev` stops at the first failing static check, and so does the test command.

Each case runs the real script on a small copy of the project: the real `scripts/dev` and
`pyproject.toml` (so the same ruff, mypy and import-linter configuration), the test virtualenv,
and one tiny module per top-level package. A clean copy passes every step; one planted error makes
the run fail at its step, and no later step runs.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STEPS = ("ruff check", "ruff format", "mypy", "import contracts")


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for every copy, so only the first run analyses the standard library."""
    return tmp_path_factory.mktemp("mypy-cache")


def _contract_modules() -> list[str]:
    """Our top-level packages and every module an import contract names."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    names = set(config["root_packages"])
    for contract in config["contracts"]:
        for key in ("source_modules", "forbidden_modules"):
            names.update(contract.get(key, []))
        # A layer is a module of each container ("a | b" and "a : b" are siblings).
        containers = contract.get("containers", [""])
        for layer in contract.get("layers", []):
            for sibling in re.split(r"[|:]", layer):
                name = sibling.strip().strip("()")
                names.update(f"{c}.{name}" if c else name for c in containers)
    return sorted(name for name in names if name.split(".")[0] in config["root_packages"])


def _project(root: Path) -> Path:
    """A lint-clean copy of the project's shape under `root`."""
    (root / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "dev", root / "scripts" / "dev")
    shutil.copy2(ROOT / "pyproject.toml", root / "pyproject.toml")
    # The script installs into .venv unless its stamp for this pyproject.toml is there. The copy
    # gets a .venv of its own that lends the running test environment's files and carries the
    # stamp, so the script uses the installed tools and never touches the real environment.
    venv = root / ".venv"
    venv.mkdir()
    for name in ("bin", "lib", "pyvenv.cfg"):
        (venv / name).symlink_to(Path(sys.prefix) / name)
    digest = hashlib.sha256((root / "pyproject.toml").read_bytes()).hexdigest()[:16]
    (venv / f".installed-{digest}").touch()
    for package in _contract_modules():
        (root / package.replace(".", "/")).mkdir(parents=True, exist_ok=True)
        (root / package.replace(".", "/") / "__init__.py").write_text('"""A package."""\n')
    (root / "policies" / "names.py").write_text('"""Names."""\n\nNAME: int = 1\n')
    return root


def _run(root: Path, mypy_cache: Path, command: str) -> subprocess.CompletedProcess[str]:
    # The copy's tools must not be measured by the run that measures this test.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    env["MYPY_CACHE_DIR"] = str(mypy_cache)
    return subprocess.run(
        [str(root / "scripts" / "dev"), command],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _ran(stderr: str) -> list[str]:
    return [step for step in STEPS if f"==> {step}\n" in stderr]


def test_a_clean_copy_passes_every_step(tmp_path: Path, mypy_cache: Path) -> None:
    done = _run(_project(tmp_path / "clean"), mypy_cache, "lint")

    assert done.returncode == 0, done.stderr + done.stdout
    assert _ran(done.stderr) == list(STEPS)


@pytest.mark.parametrize(
    ("step", "module", "source", "named"),
    [
        ("ruff check", "core/planted.py", '"""Planted."""\n\nimport os\n', "F401"),
        ("ruff format", "core/planted.py", '"""Planted."""\n\nX = {\'a\': 1}\n', "planted.py"),
        ("mypy", "core/planted.py", '"""Planted."""\n\nX: int = "one"\n', "core/planted.py"),
        (
            "import contracts",
            "core/planted.py",
            '"""Planted."""\n\nfrom policies.names import NAME\n\n__all__ = ["NAME"]\n',
            "core.planted -> policies.names",
        ),
    ],
)
def test_a_planted_error_fails_the_run_at_its_step(
    tmp_path: Path, mypy_cache: Path, step: str, module: str, source: str, named: str
) -> None:
    root = _project(tmp_path / "copy")
    (root / module).write_text(source)

    done = _run(root, mypy_cache, "lint")

    assert done.returncode == 1
    assert f"scripts/dev: {step} failed" in done.stderr
    assert named in done.stdout + done.stderr
    assert _ran(done.stderr) == list(STEPS[: STEPS.index(step) + 1])


def test_the_test_command_stops_before_pytest_on_a_lint_error(
    tmp_path: Path, mypy_cache: Path
) -> None:
    root = _project(tmp_path / "copy")
    (root / "core" / "planted.py").write_text('"""Planted."""\n\nimport os\n')

    done = _run(root, mypy_cache, "test")

    assert done.returncode == 1
    assert "scripts/dev: ruff check failed" in done.stderr
    assert _ran(done.stderr) == ["ruff check"]
    assert "==> pytest" not in done.stderr
