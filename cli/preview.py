"""`tidegate preview`: what merging head into base does to each cluster.

Exit codes follow `flux diff` and `kubectl diff`: 0 no changes, 1 changes, 2 error (bad input, or
a unit that failed to render on either side).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

from core import preview
from core.errors import InputError, TidegateError
from core.fetch import FetchPolicy
from core.render.cache import RenderCache
from core.render.unit import RenderSettings
from core.repo.git import Repository
from core.report import jsonout, markdown
from core.units import SourceRef
from devenv import toolchain

__all__ = ["register", "run"]

EXIT_NO_CHANGES = 0
EXIT_CHANGES = 1
EXIT_ERROR = 2


def register(subparsers: Any) -> None:
    """Add the `preview` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "preview",
        help="render base and head and show what the merge would change",
        description="Render a Flux repository at two revisions and say exactly what the merge "
        "will create, update, delete, orphan or move in each cluster. "
        "Exit 0: no changes, 1: changes, 2: error.",
    )
    parser.add_argument("--repo", type=Path, default=Path("."), help="git repository (default: .)")
    parser.add_argument(
        "--base",
        default="",
        help="base revision (default: merge base of head and the default branch)",
    )
    parser.add_argument("--head", default="HEAD", help="head revision (default: HEAD)")
    parser.add_argument(
        "--path",
        action="append",
        default=[],
        metavar="clusters/NAME",
        help="cluster entry point (repeatable; default: every directory under clusters/)",
    )
    parser.add_argument("--format", choices=("markdown", "json"), default="markdown")
    parser.add_argument("--output", type=Path, help="write the report to a file instead of stdout")
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 2, help="parallel renders (default: cores)"
    )
    parser.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="Kind/ns/name=DIR",
        help="a local directory standing in for another Flux source (repeatable)",
    )
    parser.add_argument(
        "--allow-remote-base",
        action="append",
        default=[],
        metavar="URL_PREFIX",
        help="allow remote kustomize bases under this prefix (repeatable; default: none)",
    )
    parser.add_argument(
        "--allow-source-host",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="a chart or OCI registry host a pull request may introduce (repeatable; hosts the "
        "base revision already uses are always allowed)",
    )
    parser.add_argument(
        "--allow-loopback-sources",
        action="store_true",
        help="let sources live on loopback addresses (for tests against local servers only)",
    )
    parser.add_argument("--cache-dir", type=Path, help="render cache (default: the user cache)")
    parser.add_argument("--kustomize", type=Path, help="kustomize binary (default: pinned build)")
    parser.add_argument("--helm", type=Path, help="helm binary (default: pinned build)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run a preview and write the report; return the exit code."""
    if args.jobs < 1:
        raise InputError("--jobs must be at least 1")
    progress = _Progress() if sys.stderr.isatty() else None
    settings = RenderSettings(
        on_render=progress.rendered if progress else None,
        kustomize=_tool(args.kustomize, "kustomize"),
        helm=_tool(args.helm, "helm"),
        cache=RenderCache(args.cache_dir or toolchain.cache_root() / "render"),
        jobs=args.jobs,
        sources=dict(_parse_source(value) for value in args.source),
        allowed_remotes=tuple(args.allow_remote_base),
        fetch_policy=FetchPolicy(
            allowed_hosts=frozenset(args.allow_source_host),
            allow_loopback=args.allow_loopback_sources,
        ),
    )
    request = preview.PreviewRequest(base=args.base, head=args.head, clusters=tuple(args.path))
    with Repository(args.repo) as repo:
        result = preview.run_preview(
            repo, request, settings, progress=progress.phase if progress else None
        )
    if progress:
        progress.finish()
    report = jsonout.dumps(result) if args.format == "json" else markdown.render(result)
    if args.output:
        args.output.write_text(report)
    else:
        sys.stdout.write(report if report.endswith("\n") else report + "\n")
    if result.failed:
        return EXIT_ERROR
    return EXIT_CHANGES if result.changed else EXIT_NO_CHANGES


class _Progress:
    """One status line on a terminal: the revision being rendered and the renders done so far.

    Cache hits cost nothing, so only actual renders are counted; on a warm cache the line stays
    short-lived. Renders report from worker threads, hence the lock.
    """

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.label = ""
        self.count = 0
        self.lock = threading.Lock()

    def phase(self, message: str) -> None:
        with self.lock:
            self.label = f"rendering {message}"
            self._show("")

    def rendered(self, unit: str) -> None:
        with self.lock:
            self.count += 1
            self._show(f": {self.count} units rendered, latest {unit}")

    def finish(self) -> None:
        elapsed = time.monotonic() - self.started
        with self.lock:
            self.label = f"rendered {self.count} units in {elapsed:.1f}s"
            self._show("")
            sys.stderr.write("\n")

    def _show(self, detail: str) -> None:
        # Carriage return and erase-to-end-of-line: one line, rewritten in place.
        sys.stderr.write(f"\r\x1b[K{self.label}{detail}")
        sys.stderr.flush()


def _tool(explicit: Path | None, name: str) -> Path:
    """Return a tool binary: the one given, else the pinned build, else one on PATH."""
    if explicit is not None:
        return explicit
    try:
        return toolchain.binary(name)
    except TidegateError:
        found = shutil.which(name)
        if found is None:
            raise
        return Path(found)


def _parse_source(value: str) -> tuple[SourceRef, Path]:
    ref, sep, directory = value.partition("=")
    parts = ref.split("/")
    if not sep or len(parts) != 3 or not all(parts) or not directory:
        raise InputError(f"--source {value!r} must look like Kind/namespace/name=DIR")
    path = Path(directory)
    if not path.is_dir():
        raise InputError(f"--source {value!r}: {directory} is not a directory")
    return SourceRef(*parts), path
