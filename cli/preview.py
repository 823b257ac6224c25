"""`tidegate preview`: what merging head into base does to each cluster."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the `preview` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "preview", help="render base and head and show what the merge would change"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    raise NotImplementedError
