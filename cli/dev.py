"""`tidegate dev`: the local development environment (pinned tools, control plane, git server).

Subcommands each live in a small function registered here; the work itself is in `devenv`.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
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
    _register_cluster(groups)


def _tools_build(args: argparse.Namespace) -> int:
    for name, directory in toolchain.ensure_all(args.names).items():
        print(f"{name}\t{directory}")
    return 0


def _tools_path(args: argparse.Namespace) -> int:
    print(toolchain.binary(args.binary))
    return 0


def _register_cluster(groups: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--name", default="dev", help="which local cluster (default: dev)")
    common.add_argument(
        "--root",
        type=Path,
        default=None,
        help="directory holding the clusters' state "
        "(default: $TIDEGATE_CLUSTERS_DIR, else the tidegate cache's cluster/ directory)",
    )
    cluster = groups.add_parser("cluster", help="a local control plane running in the background")
    actions = cluster.add_subparsers(dest="cluster_command", required=True, metavar="ACTION")
    up = actions.add_parser("up", parents=[common], help="start the cluster unless it is up")
    up.add_argument(
        "--timeout", type=float, default=300.0, help="seconds each component may take to start"
    )
    up.set_defaults(handler=_cluster_up)
    for action, summary, handler in (
        ("down", "stop the cluster and remove its state", _cluster_down),
        ("env", "print `export KUBECONFIG=...` for the cluster", _cluster_env),
        ("status", "show whether each component runs", _cluster_status),
    ):
        sub = actions.add_parser(action, parents=[common], help=summary)
        sub.set_defaults(handler=handler)


def _cluster_up(args: argparse.Namespace) -> int:
    from devenv import controlplane  # on use: its crypto imports would slow every command

    found, started = controlplane.up(args.name, args.root, timeout=args.timeout)
    verb = "is up" if started else "was already up"
    print(f"cluster {found.name} {verb} at {found.server}")
    print(f'use it with: eval "$(tidegate dev cluster env --name {found.name})"')
    return 0


def _cluster_down(args: argparse.Namespace) -> int:
    from devenv import controlplane  # on use: its crypto imports would slow every command

    stopped = controlplane.down(args.name, args.root)
    print(f"cluster {args.name} {'stopped' if stopped else 'was not up'}")
    return 0


def _cluster_env(args: argparse.Namespace) -> int:
    from devenv import controlplane  # on use: its crypto imports would slow every command

    found = controlplane.status(args.name, args.root)
    if found is None or not found.up:
        start = f"tidegate dev cluster up {_cluster_flags(args)}"
        raise controlplane.ControlPlaneError(f"cluster {args.name} is not up; start it: `{start}`")
    print(controlplane.env_script(found), end="")
    return 0


def _cluster_status(args: argparse.Namespace) -> int:
    from devenv import controlplane  # on use: its crypto imports would slow every command

    found = controlplane.status(args.name, args.root)
    if found is None:
        print(f"cluster {args.name} is not up")
        return 1
    print(f"cluster {found.name}: {'up' if found.up else 'degraded'} at {found.server}")
    print(f"apiserver ready: {'yes' if found.ready else 'no'}")
    for component, running in found.running.items():
        print(f"{component}\t{'running' if running else 'stopped'}")
    print(f"state: {found.state_dir}")
    return 0 if found.up else 1


def _cluster_flags(args: argparse.Namespace) -> str:
    """The --name/--root flags that address the same cluster again, quoted for a shell."""
    flags = ["--name", args.name] + (["--root", str(args.root)] if args.root else [])
    return shlex.join(flags)
