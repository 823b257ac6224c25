"""Starting `tidegate` loads only what the chosen command needs.

Every subcommand module is imported to register its flags, so an eager import of the Kubernetes
client, Flask, SQLAlchemy or the demo stack in any of them costs every command its start-up time
(about two seconds of CPU before they were made lazy). Each case runs in a fresh interpreter,
parses one command line the way `tidegate` does, and lists the heavy modules that got loaded;
a real offline preview is checked the same way, since it needs neither a cluster client nor the
app. The probe itself is checked to see a heavy import, so these tests cannot pass vacuously.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cli import demo

ROOT = Path(__file__).resolve().parents[2]

# Libraries only `serve`, the reconciler, `--live`, the flux verbs or the full demo use, and the
# modules of ours that pull them in.
HEAVY = (
    "kubernetes",
    "kubernetes_validate",
    "flask",
    "werkzeug",
    "sqlalchemy",
    "alembic",
    "gunicorn",
    "github",
    "gitlab",
    "jwt",
    "cryptography",
    "prometheus_client",
    "requests",
    "jsonschema",
    "reconciler",
    "app.web",
    "app.database",
    "app.review",
    "devenv.demo_stack",
    "devenv.controlplane",
    "cli.demo_story",
)

# What `tidegate preview` does not use: the other commands' modules and the app.
OTHER_COMMANDS = ("cli.demo", "cli.dev", "cli.flux", "cli.policy", "cli.serve", "app")

# Parses argv as `tidegate` does (help output swallowed), optionally runs the command, then prints
# the heavy modules loaded as JSON on the last line.
PROBE = """
import contextlib, io, json, sys
heavy, argv, run = json.loads(sys.argv[1])
for module in sys.argv[2:]:
    __import__(module)
from cli import main
try:
    with contextlib.redirect_stdout(io.StringIO()):
        if run:
            main.main(argv)
        else:
            main.build_parser(argv[0] if argv else None).parse_args(argv)
except SystemExit:
    pass
loaded = sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy))
print(json.dumps(loaded))
"""


def _loaded(
    argv: list[str],
    *,
    run: bool = False,
    also_import: tuple[str, ...] = (),
    heavy: tuple[str, ...] = HEAVY,
) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps([heavy, argv, run]), *also_import],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout.splitlines()[-1])
    return loaded


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["preview", "--help"],
        ["preview", "--repo", "fleet", "--changed-only"],
        ["serve", "--help"],
        ["demo", "--help"],
        ["reconcile", "--help"],
        ["get", "ks", "--help"],
        ["policy", "test", "--help"],
        ["dev", "--help"],
    ],
    ids=lambda argv: " ".join(argv),
)
def test_parsing_a_command_line_loads_no_heavy_module(argv: list[str]) -> None:
    assert _loaded(argv) == []


def test_the_probe_sees_a_heavy_import() -> None:
    # What these tests guard against: a subcommand module importing, say, the reconciler.
    loaded = _loaded(["--help"], also_import=("cli.demo_story",))
    assert "kubernetes" in loaded
    assert "cli.demo_story" in loaded


def test_an_offline_preview_loads_no_heavy_module(
    tmp_path: Path, kustomize_bin: Path, helm_bin: Path
) -> None:
    repo = tmp_path / "fleet"
    demo.build_example_repo(repo)
    report = tmp_path / "report.json"
    argv = [
        "preview",
        *("--repo", str(repo), "--base", "main", "--head", "pull-request"),
        *("--format", "json", "--output", str(report)),
        *("--cache-dir", str(tmp_path / "cache")),
        *("--kustomize", str(kustomize_bin), "--helm", str(helm_bin)),
    ]

    loaded = _loaded(argv, run=True, heavy=(*HEAVY, *OTHER_COMMANDS))

    # The preview ran in full, policy gate included (the example trips it).
    assert json.loads(report.read_text())["clusters"]
    assert loaded == []


def test_a_full_command_line_still_knows_every_command() -> None:
    # `--help` and anything not one command's own builds the whole parser.
    loaded = _loaded(["--help"], heavy=OTHER_COMMANDS)
    assert {"cli.demo", "cli.dev", "cli.flux", "cli.policy", "cli.serve"} <= set(loaded)
