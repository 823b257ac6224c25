"""`tidegate dev`: the local development environment (pinned tools, control plane, git server).

Subcommands each live in a small function registered here; the work itself is in `devenv`.
"""

from __future__ import annotations

import argparse
from typing import Any

from devenv import toolchain

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the `dev` subcommand group."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "dev", help="local development environment: pinned tools and a real control plane"
    )
    groups = parser.add_subparsers(dest="dev_command", required=True, metavar="COMMAND")
    tools = groups.add_parser("tools", help="build or locate the pinned Go tools")
    actions = tools.add_subparsers(dest="tools_command", required=True, metavar="ACTION")
    build = actions.add_parser(
        "build", help="build missing tools (all, or the named sets/binaries)"
    )
    build.add_argument("names", nargs="*", metavar="NAME", help="k8s, etcd, kwok, kustomize, helm")
    build.set_defaults(handler=_tools_build)
    path = actions.add_parser(
        "path", help="print the path of a pinned binary, building it if needed"
    )
    path.add_argument("binary", metavar="BINARY", help="for example kube-apiserver or kustomize")
    path.set_defaults(handler=_tools_path)


def _tools_build(args: argparse.Namespace) -> int:
    for name, directory in toolchain.ensure_all(args.names).items():
        print(f"{name}\t{directory}")
    return 0


def _tools_path(args: argparse.Namespace) -> int:
    print(toolchain.binary(args.binary))
    return 0
