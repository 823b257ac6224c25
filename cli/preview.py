"""`tidegate preview`: what merging head into base does to each cluster.

Exit codes follow `flux diff` and `kubectl diff`: 0 no changes, 1 changes, 2 error (bad input, or
a unit that failed to render on either side, or whose source could not be reached unless
`--unavailable-sources skip`).
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
from core.config import FetchConfig, UnavailableSources, parse_fetch_config
from core.errors import InputError, TidegateError
from core.fetch import FetchPolicy
from core.host import sandbox
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
        "--allow-host",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="allow downloading sources from this host (repeatable; without a port: 80 and 443). "
        "Hosts the base revision uses are allowed already",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="operator configuration (YAML with a `fetch:` section, see docs/security.md)",
    )
    parser.add_argument(
        "--unavailable-sources",
        choices=[mode.value for mode in UnavailableSources],
        help="a unit whose source cannot be reached fails the preview (fail, the default) or "
        "is reported as not previewed (skip); default: .tidegate.yaml at base, else fail",
    )
    parser.add_argument("--cache-dir", type=Path, help="render cache (default: the user cache)")
    parser.add_argument("--kustomize", type=Path, help="kustomize binary (default: pinned build)")
    parser.add_argument("--helm", type=Path, help="helm binary (default: pinned build)")
    parser.add_argument(
        "--sandbox",
        choices=sandbox.MODES,
        help="confinement of kustomize and helm: required (default; refuse to render without"
        " it), files (no network rules, for kernels before 6.7) or off (trusted content only);"
        f" default: ${sandbox.ENV_SETTING} or required",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run a preview and write the report; return the exit code."""
    if args.jobs < 1:
        raise InputError("--jobs must be at least 1")
    operator = _operator_config(args)
    jail = sandbox.from_setting(args.sandbox)
    if jail.mode != "required":
        sys.stderr.write(
            f"tidegate: warning: sandbox {jail.mode}: kustomize and helm run"
            f" {'without network rules' if jail.active else 'unconfined'};"
            " render only trusted content\n"
        )
    progress = _Progress() if sys.stderr.isatty() else None
    settings = RenderSettings(
        sandbox=jail,
        on_render=progress.rendered if progress else None,
        kustomize=_tool(args.kustomize, "kustomize"),
        helm=_tool(args.helm, "helm"),
        cache=RenderCache(args.cache_dir or toolchain.cache_root() / "render"),
        jobs=args.jobs,
        sources=dict(_parse_source(value) for value in args.source),
        allowed_remotes=tuple(args.allow_remote_base),
        fetch_policy=FetchPolicy(
            allowed_hosts=frozenset(operator.allow_hosts),
            allow_loopback=bool(operator.allow_loopback),
            allow_private=bool(operator.allow_private),
        ),
    )
    request = preview.PreviewRequest(
        base=args.base,
        head=args.head,
        clusters=tuple(args.path),
        unavailable_sources=operator.unavailable_sources,
    )
    with Repository(args.repo) as repo:
        result = preview.run_preview(
            repo, request, settings, progress=progress.phase if progress else None
        )
    if progress:
        progress.finish()
    report = jsonout.dumps(result) if args.format == "json" else markdown.render(result)
    if args.output:
        try:
            args.output.write_text(report)
        except OSError as exc:
            raise InputError(f"--output {args.output}: cannot write it ({exc.strerror})") from None
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


def _operator_config(args: argparse.Namespace) -> FetchConfig:
    """The operator's fetch settings: the configuration file, then the flags over it."""
    from_file = FetchConfig()
    if args.config is not None:
        try:
            text = args.config.read_bytes()
        except OSError as exc:
            raise InputError(f"--config {args.config}: cannot read it ({exc.strerror})") from None
        from_file = parse_fetch_config(text, file=str(args.config), operator=True)
    for host in args.allow_host:
        if not host.strip() or any(c in host for c in "/@ \t"):
            raise InputError(f"--allow-host {host!r} must be a host or host:port")
    flags = FetchConfig(
        allow_hosts=tuple(h.strip().lower() for h in args.allow_host),
        unavailable_sources=(
            UnavailableSources(args.unavailable_sources) if args.unavailable_sources else None
        ),
    )
    return flags.over(from_file)


def _parse_source(value: str) -> tuple[SourceRef, Path]:
    ref, sep, directory = value.partition("=")
    parts = ref.split("/")
    if not sep or len(parts) != 3 or not all(parts) or not directory:
        raise InputError(f"--source {value!r} must look like Kind/namespace/name=DIR")
    path = Path(directory)
    if not path.is_dir():
        raise InputError(f"--source {value!r}: {directory} is not a directory")
    return SourceRef(*parts), path
