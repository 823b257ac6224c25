"""`python -m cli.preview_server`: `tidegate preview`, run again and again in one warm process.

The pull-request app starts this once (through `core.host.command.Coprocess`, so with the same
minimal environment and memory bound a one-off `tidegate preview` gets) and sends it one request
per pull request: a JSON line `{"argv": [...]}` holding `tidegate preview`'s own flags. It runs
the preview exactly as the command would and answers with a JSON line `{"code": N, "stderr":
"..."}`: the command's exit code and what it would have written to stderr.

What stays warm between requests is what makes a one-file change cost about one kustomize build:
the interpreter and its imports, and the render cache with its parsed renders and receipts
(`cli.preview.WarmCaches`, bounded). Everything else is made afresh for each request, so nothing
grows with the number of pull requests. It reads only its stdin; the reports go where the flags
say. It never sees the service's tokens: its environment is the runner's minimal one.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
from collections.abc import Sequence
from typing import IO, Any

from cli import policy_gate, preview
from core.errors import TidegateError

__all__ = ["handle", "serve"]

EXIT_ERROR = 2
_MAX_STDERR = 8000
"""The tail of a request's stderr that is sent back (the head is the preview's progress)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tidegate", exit_on_error=False)
    preview.register(parser.add_subparsers(dest="command", required=True))
    return parser


def handle(parser: argparse.ArgumentParser, argv: Sequence[str]) -> tuple[int, str]:
    """Run one `tidegate preview` with `argv`; return its exit code and its stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(err):
        code = _run(parser, argv)
    return code, err.getvalue()[-_MAX_STDERR:]


def _run(parser: argparse.ArgumentParser, argv: Sequence[str]) -> int:
    try:
        args = parser.parse_args(["preview", *argv])
    except (argparse.ArgumentError, SystemExit) as exc:
        print(f"tidegate: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    try:
        code: int = args.handler(args)
    except TidegateError as exc:
        print(f"tidegate: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:
        # As `tidegate` itself: a type, never a message that could quote the repository.
        print(f"tidegate: error: internal error ({type(exc).__name__})", file=sys.stderr)
        return EXIT_ERROR
    return code


def serve(requests: IO[str], answers: IO[str], caches: preview.WarmCaches | None = None) -> int:
    """Answer requests until end of input, keeping render caches warm in `caches`."""
    previous, preview.warm_caches = preview.warm_caches, caches or preview.WarmCaches()
    try:
        parser = _parser()
        policy_gate.warm_up()
        for line in requests:
            answers.write(json.dumps(_answer(parser, line)) + "\n")
            answers.flush()
    finally:
        preview.warm_caches = previous
    return 0


def _answer(parser: argparse.ArgumentParser, line: str) -> dict[str, Any]:
    try:
        request: Any = json.loads(line)
        argv = request["argv"]
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise TypeError("argv must be a list of strings")
    except (ValueError, TypeError, KeyError) as exc:
        return {
            "code": EXIT_ERROR,
            "stderr": f"tidegate: error: bad request ({type(exc).__name__})",
        }
    code, stderr = handle(parser, argv)
    return {"code": code, "stderr": stderr}


def main() -> int:
    """Serve on stdin and stdout; anything else written to stdout goes to stderr instead."""
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return serve(sys.stdin, answers)


if __name__ == "__main__":
    raise SystemExit(main())
