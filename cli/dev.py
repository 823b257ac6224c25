"""`tidegate dev`: the local development environment (tool builds, control plane, git server)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the `dev` subcommand group."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "dev", help="local development environment: pinned tools and a real control plane"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    raise NotImplementedError
