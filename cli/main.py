"""Entry point of the `tidegate` command: parses arguments and dispatches to one subcommand module.

Each subcommand module exposes `register(subparsers)` and sets a `handler` that returns the exit
code. Errors meant for users (`TidegateError`) are printed as one message, never a traceback; any
other exception is a Tidegate defect and also ends as exit 2 with one line, with the traceback
only when the subcommand was given `--debug`. Exit 1 is left to mean what the subcommand says
(for `preview`: changes found).

A command line that names one of the single-command modules (`preview`, `policy`, ...) registers
and imports that module alone: `tidegate preview` runs on every CI pull request, and importing
the demo, the policy test runner or the cluster verbs cost it a fifth of a warm preview. Any
other command line (no command, `--help`, a flux verb, a typo) builds the whole parser, so help
and usage errors read as always.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

# typing is not imported at run time (it costs a client handing its preview to a warm server
# 7 ms of its ~40); type checkers read this name as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

# argparse, traceback and our errors are imported where used: a preview handed to a warm server
# (`cli.preview_client`) needs none of them, and the interpreter's start is its whole cost.

__all__ = ["main"]

Handler = Callable[["argparse.Namespace"], int]

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130

# Subcommand modules in help order; each registers the command of its name, except `flux`,
# which registers the flux verbs (`get`, `reconcile`, ...).
_MODULES = ("preview", "preview_daemon", "policy", "serve", "demo", "dev", "flux")
# The command a single-command module registers, when its name is not the module's.
_COMMANDS = {"preview-server": "preview_daemon"}
_SINGLE = (frozenset(_MODULES) - {"flux", "preview_daemon"}) | frozenset(_COMMANDS)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Return the parser: with `command` alone when a module registers just that, else all."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="tidegate",
        description="Preview, gate and apply Flux GitOps changes to Kubernetes.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in (_COMMANDS.get(command, command),) if command in _SINGLE else _MODULES:
        importlib.import_module(f"cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code.

    `tidegate preview` goes to a warm preview server first (`cli.preview_client`), decided
    before anything of the preview is imported; without a usable server it runs here.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "preview":
        from cli import preview_client

        code = preview_client.forward(argv[1:])
        if code is not None:
            return code
    return run_command(argv)


def run_command(argv: Sequence[str], parser: argparse.ArgumentParser | None = None) -> int:
    """Run the command line in this process and return its exit code.

    `parser`, when given, is one `build_parser` made for this command line's command: a process
    running many commands builds it once (argparse does not change a parser when parsing).
    """
    import traceback

    from core.errors import TidegateError

    parser = parser or build_parser(argv[0] if argv else None)
    args = parser.parse_args(list(argv))
    handler: Handler = args.handler
    try:
        return handler(args)
    except TidegateError as exc:
        print(f"tidegate: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("tidegate: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if getattr(args, "debug", False):
            traceback.print_exc()
        print(
            f"tidegate: error: internal error ({type(exc).__name__}); --debug shows the traceback",
            file=sys.stderr,
        )
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
