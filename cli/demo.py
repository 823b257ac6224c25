"""`tidegate demo`: preview a pull request against the embedded example Flux repository.

The example (`cli/example/`) is two clusters with overlays, substitution, a Secret, a HelmRelease
and a `prune: false` Kustomization; `head/` holds the pull request's changes, which between them
update, delete, orphan, move and add. The demo commits both states to a scratch git repository and
runs exactly what `tidegate preview` runs.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

from cli import preview
from core.host.command import run

__all__ = ["build_example_repo", "register"]

EXAMPLE = Path(__file__).resolve().parent / "example"


def register(subparsers: Any) -> None:
    """Add the `demo` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo", help="preview a pull request against the embedded example repository"
    )
    parser.add_argument("--format", choices=("markdown", "json"), default="markdown")
    parser.add_argument("--jobs", type=int, default=2)
    parser.set_defaults(handler=_run)


def build_example_repo(dest: Path) -> None:
    """Create a git repository at `dest`: `main` holds the base, `pull-request` the head."""
    # Fresh modification times: with the source files' times, git's stat check would take an
    # equal-sized edit (6.7.0 -> 6.7.1) for an unchanged file.
    shutil.copytree(EXAMPLE / "base", dest, copy_function=shutil.copyfile)
    _git(dest, "init", "--quiet", "--initial-branch=main")
    _commit(dest, "Fleet as deployed today")
    _git(dest, "checkout", "--quiet", "-b", "pull-request")
    shutil.copytree(EXAMPLE / "head", dest, dirs_exist_ok=True, copy_function=shutil.copyfile)
    _commit(dest, "Roll out podinfo 6.7.1, rotate the token, retire redis in production")


def _run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="tidegate-demo-") as scratch:
        repo = Path(scratch) / "fleet"
        build_example_repo(repo)
        code = preview.run(
            argparse.Namespace(
                repo=repo,
                base="main",
                head="pull-request",
                path=[],
                format=args.format,
                output=None,
                jobs=args.jobs,
                changed_only=False,
                source=[],
                allow_remote_base=[],
                allow_host=[],
                config=None,
                unavailable_sources=None,
                cache_dir=Path(scratch) / "cache",
                kustomize=None,
                helm=None,
                sarif=None,
                junit=None,
                approved_by=[],
                no_policies=False,
                sandbox=None,
                live=False,
                kubeconfig=None,
                context=None,
                **preview.budget_defaults(),
            )
        )
    # The example is meant to change things and to trip the policy gate: exit 1 (changes) and
    # 3 (the gate fails) are the demo working.
    working = (preview.EXIT_NO_CHANGES, preview.EXIT_CHANGES, preview.EXIT_GATE_FAILED)
    return 0 if code in working else code


def _commit(repo: Path, message: str) -> None:
    _git(repo, "add", "--all")
    _git(
        repo,
        "-c",
        "user.name=Tidegate Demo",
        "-c",
        "user.email=demo@tidegate.dev",
        "commit",
        "--quiet",
        "-m",
        message,
    )


def _git(repo: Path, *args: str) -> None:
    run(["git", *args], cwd=repo)
