"""Entry point of the `tidegate` command: parses arguments and dispatches to one subcommand module.

Each subcommand module exposes `register(subparsers)` and sets a `handler` that returns the exit
code. Errors meant for users (`TidegateError`) are printed as one message, never a traceback; any
other exception is a Tidegate defect and also ends as exit 2 with one line, with the traceback
only when the subcommand was given `--debug`. Exit 1 is left to mean what the subcommand says
(for `preview`: changes found).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence

from cli import demo, dev, flux, policy, preview, serve
from core.errors import TidegateError

__all__ = ["main"]

Handler = Callable[[argparse.Namespace], int]

EXIT_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    """Return the parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="tidegate",
        description="Preview, gate and apply Flux GitOps changes to Kubernetes.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    preview.register(subparsers)
    policy.register(subparsers)
    serve.register(subparsers)
    demo.register(subparsers)
    dev.register(subparsers)
    flux.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except TidegateError as exc:
        print(f"tidegate: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("tidegate: interrupted", file=sys.stderr)
        return 130
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
