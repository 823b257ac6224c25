"""`tidegate preview`: what merging head into base does to each cluster, and the policy gate.

Exit codes follow `flux diff` and `kubectl diff`, plus one for the gate: 0 no changes, 1 changes
and the gate passes, 2 error (bad input, a unit that failed to render on either side, or whose
source could not be reached unless `--unavailable-sources skip`, a budget exceeded, or anything
unexpected), 3 the gate fails (an unwaived blocking finding). Policies are evaluated with the
base revision's configuration and rules (`policies.gate`); `--sarif` and `--junit` write their
findings too. Budgets are flags here, with their defaults in `core.budgets`, `core.yamlio` and
the subprocess seam (see docs/security.md). The preview works in one `Workspace`, removed when it
ends, on SIGTERM and SIGINT too; every message and the report are scrubbed of the Secret values
the preview met before they are written.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from core import yamlio
from core.budgets import Budgets, Deadline
from core.config import FetchConfig, UnavailableSources, parse_fetch_config
from core.errors import InputError, TidegateError
from core.fetch import FetchPolicy
from core.host import sandbox
from core.host.command import DEFAULT_LIMITS, terminate_all
from core.host.workspace import Workspace
from core.render.cache import MEMORY_ENTRIES, RenderCache
from core.render.unit import RenderObserver, RenderOptions, RenderSettings
from core.repo.discovery import SpecCache
from core.units import SourceRef
from devenv import toolchain

if TYPE_CHECKING:
    from core import preview
    from core.live_preview import LivePreview
    from core.repo.git import Repository
    from policies.gate import GateOutcome

# The preview engine, the policy gate, the report writers and (for --live) the Kubernetes client
# are imported where they are used: `tidegate --help` and every other subcommand start without
# them (tests/packaging/test_cli_startup.py).

__all__ = ["budget_defaults", "default_cache_dir", "register", "run"]

EXIT_NO_CHANGES = 0
EXIT_CHANGES = 1
EXIT_ERROR = 2
EXIT_GATE_FAILED = 3
EXIT_TERMINATED = 143  # 128 + SIGTERM, as shells report it

_BUDGETS = Budgets()
_YAML = yamlio.DEFAULT_LIMITS
_SIZE = re.compile(r"(\d+)\s*([KMG]i?B?|B)?", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def _size(text: str) -> int:
    """A byte count: `1048576`, `64M`, `64MiB`, `4G`."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (examples: 1048576, 64M, 4G)")
    unit = (match.group(2) or "").upper()[:1]
    value = int(match.group(1)) * _UNITS[unit]
    if value < 1:
        raise argparse.ArgumentTypeError("a size must be positive")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def register(subparsers: Any) -> None:
    """Add the `preview` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "preview",
        help="render base and head and show what the merge would change",
        description="Render a Flux repository at two revisions and say exactly what the merge "
        "will create, update, delete, orphan or move in each cluster. "
        "Exit 0: no changes, 1: changes and the policy gate passes, 2: error, "
        "3: the policy gate fails.",
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
        "--changed-only",
        action="store_true",
        help="render only the units the change can affect; prove the others unchanged from the"
        " files their builds read, and fall back to rendering a cluster in full when that proof"
        " does not hold",
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
    parser.add_argument(
        "--cache-max-bytes",
        type=_size,
        help="keep the render cache (renders and chart and OCI downloads) under this size, least "
        "recently used removed first"
        f" (default: ${CACHE_MAX_BYTES_ENV}, else 2G)",
    )
    parser.add_argument("--kustomize", type=Path, help="kustomize binary (default: pinned build)")
    parser.add_argument("--helm", type=Path, help="helm binary (default: pinned build)")
    parser.add_argument("--sarif", type=Path, metavar="FILE", help="write findings as SARIF 2.1.0")
    parser.add_argument("--junit", type=Path, metavar="FILE", help="write findings as JUnit XML")
    parser.add_argument(
        "--approved-by",
        action="append",
        default=[],
        metavar="USER",
        help="a user or @org/team whose review approved the head commit (repeatable); "
        "satisfies approval-required findings where CODEOWNERS at base names them",
    )
    parser.add_argument(
        "--codeowners-of",
        choices=("github", "gitlab"),
        default="github",
        help="read CODEOWNERS where this host does: github (.github/, root, docs/; default) or "
        "gitlab (root, docs/, .gitlab/), the first that exists",
    )
    parser.add_argument(
        "--no-policies", action="store_true", help="only preview; evaluate no policy"
    )
    parser.add_argument(
        "--sandbox",
        choices=sandbox.MODES,
        help="confinement of kustomize and helm: required (default; refuse to render without"
        " it), files (no network rules, for kernels before 6.7) or off (trusted content only);"
        f" default: ${sandbox.ENV_SETTING} or required",
    )
    parser.add_argument(
        "--live",
        action="store_true",
        help="plan head against the cluster of --kubeconfig: each Kustomization's inventory as "
        "it is (exact prunes) and a server-side dry run of every update; drift is shown apart "
        "(needs read access and dry-run, see docs/preview.md)",
    )
    parser.add_argument(
        "--kubeconfig", type=Path, help="kubeconfig for --live (default: $KUBECONFIG or ~/.kube)"
    )
    parser.add_argument("--context", help="kubeconfig context for --live (default: current)")
    parser.add_argument(
        "--live-managed-only",
        action="store_true",
        help="with --live, show live values only for objects in the inventories of "
        "Kustomizations the base revision has; any other existing object is only said to exist, "
        "unmanaged (for previews of untrusted changes; the PR app always sets it)",
    )
    parser.add_argument(
        "--debug", action="store_true", help="show a traceback when Tidegate itself fails"
    )
    parser.add_argument(
        "--no-server",
        action="store_true",
        help="run in this process even when a warm preview server runs (see `tidegate "
        "preview-server`; $TIDEGATE_PREVIEW_SERVER=off does the same)",
    )
    _budget_flags(parser)
    parser.set_defaults(handler=run)


def budget_defaults() -> dict[str, Any]:
    """The budget flags and `--debug` at their defaults, for commands that call `run` directly."""
    parser = argparse.ArgumentParser(add_help=False)
    _budget_flags(parser)
    parser.add_argument("--debug", action="store_true")
    return vars(parser.parse_args([]))


def _budget_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "budgets", "bounds on a preview of untrusted content (sizes take K, M or G suffixes)"
    )
    group.add_argument(
        "--timeout",
        type=_seconds,
        default=_BUDGETS.timeout,
        metavar="SECONDS",
        help=f"wall-clock time for the whole preview (default: {_BUDGETS.timeout:g})",
    )
    group.add_argument(
        "--max-units",
        type=_positive,
        default=_BUDGETS.max_units,
        metavar="N",
        help=f"Flux units rendered per revision (default: {_BUDGETS.max_units})",
    )
    group.add_argument(
        "--max-depth",
        type=_positive,
        default=_BUDGETS.max_depth,
        metavar="N",
        help=f"levels of Flux units below an entry point (default: {_BUDGETS.max_depth})",
    )
    group.add_argument(
        "--tool-timeout",
        type=_seconds,
        default=DEFAULT_LIMITS.timeout,
        metavar="SECONDS",
        help=f"time for one kustomize or helm run (default: {DEFAULT_LIMITS.timeout:g})",
    )
    group.add_argument(
        "--tool-memory",
        type=_size,
        default=DEFAULT_LIMITS.memory,
        metavar="SIZE",
        help="address space of one kustomize or helm run "
        f"(default: {DEFAULT_LIMITS.memory >> 30}G)",
    )
    group.add_argument(
        "--max-tool-output",
        type=_size,
        default=DEFAULT_LIMITS.max_output,
        metavar="SIZE",
        help=f"stdout of one kustomize or helm run (default: {DEFAULT_LIMITS.max_output >> 20}M)",
    )
    group.add_argument(
        "--max-yaml-bytes",
        type=_size,
        default=_YAML.max_bytes,
        metavar="SIZE",
        help=f"one YAML file or tool output (default: {_YAML.max_bytes >> 20}M)",
    )
    group.add_argument(
        "--max-yaml-document-bytes",
        type=_size,
        default=_YAML.max_document_bytes,
        metavar="SIZE",
        help=f"one YAML document (default: {_YAML.max_document_bytes >> 20}M)",
    )
    group.add_argument(
        "--max-yaml-depth",
        type=_positive,
        default=_YAML.max_depth,
        metavar="N",
        help=f"YAML nesting (default: {_YAML.max_depth}, at most {yamlio.MAX_DEPTH_CEILING})",
    )
    group.add_argument(
        "--max-yaml-alias-nodes",
        type=_positive,
        default=_YAML.max_alias_nodes,
        metavar="N",
        help=f"nodes YAML aliases add to a document (default: {_YAML.max_alias_nodes})",
    )
    group.add_argument(
        "--max-report-bytes",
        type=_size,
        default=_BUDGETS.max_report_bytes,
        metavar="SIZE",
        help=f"the JSON report (default: {_BUDGETS.max_report_bytes >> 20}M)",
    )
    group.add_argument(
        "--max-report-chars",
        type=_positive,
        default=_BUDGETS.max_report_chars,
        metavar="N",
        help=f"the Markdown report (default: {_BUDGETS.max_report_chars})",
    )


def run(args: argparse.Namespace) -> int:
    """Run a preview and write the report; return the exit code.

    Whatever goes wrong ends as exit 2 with a one-line message scrubbed of Secret values (a
    traceback only with `--debug`); SIGTERM ends as exit 143 with the workspace removed.
    """
    from core.report import markdown

    if args.jobs < 1:
        raise InputError("--jobs must be at least 1")
    if args.max_report_chars < markdown.MIN_LIMIT:
        raise InputError(f"--max-report-chars must be at least {markdown.MIN_LIMIT}")
    if args.max_yaml_depth > yamlio.MAX_DEPTH_CEILING:
        raise InputError(f"--max-yaml-depth may be at most {yamlio.MAX_DEPTH_CEILING}")
    previous = yamlio.limits()
    yamlio.configure(
        yamlio.YamlLimits(
            max_bytes=args.max_yaml_bytes,
            max_document_bytes=args.max_yaml_document_bytes,
            max_depth=args.max_yaml_depth,
            max_alias_nodes=args.max_yaml_alias_nodes,
        )
    )
    try:
        return _configured(args)
    finally:
        # The limits are process-wide; a caller running more than one command gets them back.
        yamlio.configure(previous)


def _configured(args: argparse.Namespace) -> int:
    from core import preview

    operator = _operator_config(args)
    jail = sandbox.from_setting(args.sandbox)
    if jail.mode != "required":
        sys.stderr.write(
            f"tidegate: warning: sandbox {jail.mode}: kustomize and helm run"
            f" {'without network rules' if jail.active else 'unconfined'};"
            " render only trusted content\n"
        )
    progress = _Progress() if sys.stderr.isatty() else None
    budgets = Budgets(
        timeout=args.timeout,
        max_units=args.max_units,
        max_depth=args.max_depth,
        max_report_bytes=args.max_report_bytes,
        max_report_chars=args.max_report_chars,
    )
    options = RenderOptions(
        sandbox=jail,
        kustomize=_tool(args.kustomize, "kustomize"),
        helm=_tool(args.helm, "helm"),
        jobs=args.jobs,
        sources=dict(_parse_source(value) for value in args.source),
        allowed_remotes=tuple(args.allow_remote_base),
        limits=dataclasses.replace(
            DEFAULT_LIMITS,
            timeout=args.tool_timeout,
            memory=args.tool_memory,
            max_output=args.max_tool_output,
            flags=True,
        ),
        budgets=budgets,
        fetch_policy=FetchPolicy(
            allowed_hosts=frozenset(operator.allow_hosts),
            allow_loopback=bool(operator.allow_loopback),
            allow_private=bool(operator.allow_private),
        ),
    )
    settings = RenderSettings(
        options,
        _render_cache(args.cache_dir or default_cache_dir()),
        RenderObserver(on_render=progress.rendered if progress else None),
        deadline=Deadline(budgets.timeout),
    )
    request = preview.PreviewRequest(
        base=args.base,
        head=args.head,
        clusters=tuple(args.path),
        unavailable_sources=operator.unavailable_sources,
        changed_only=args.changed_only,
    )
    try:
        with Workspace() as work_root, _terminated_on_signal(settings):
            settings = settings.with_options(work_root=work_root)
            return _preview(args, request, settings, progress)
    except TidegateError as exc:
        raise TidegateError(settings.known_secrets.scrub(str(exc))) from None
    except _Terminated:
        print("tidegate: terminated; work directories removed", file=sys.stderr)
        return EXIT_TERMINATED
    except Exception as exc:
        if args.debug:
            raise
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        message = f"internal error ({type(exc).__name__}: {first}); --debug shows the traceback"
        raise TidegateError(settings.known_secrets.scrub(message)) from None


def _preview(
    args: argparse.Namespace,
    request: preview.PreviewRequest,
    settings: RenderSettings,
    progress: _Progress | None,
) -> int:
    from core import preview
    from core.repo.git import Repository
    from core.report import jsonout, markdown
    from core.report import live as live_report

    outcome = None
    live: LivePreview | None = None
    with Repository(args.repo) as repo:
        phase = progress.phase if progress else None
        # Checked before any work: a bad budget is an input error, not a late surprise.
        max_bytes = cache_max_bytes(args.cache_max_bytes)
        if args.live:
            live = _run_live(repo, request, settings, args, phase)
            offline, result = live.offline, live.live
        else:
            specs = warm_caches.specs if warm_caches is not None else None
            offline = result = preview.run_preview(
                repo, request, settings, progress=phase, specs=specs
            )
        if progress:
            progress.finish()
        if not args.no_policies:
            # Policies judge the pull request's own change; drift is not the author's.
            from cli import policy_gate

            outcome = policy_gate.evaluate_preview(
                repo, offline, approved_by=args.approved_by, codeowners_of=args.codeowners_of
            )
    policy = outcome.result if outcome else None
    if args.format == "json":
        report = jsonout.dumps(result, policy, max_bytes=settings.options.budgets.max_report_bytes)
        if live is not None:
            report = live_report.with_drift_json(report, live.drift)
    else:
        report = markdown.render(
            result, limit=settings.options.budgets.max_report_chars, policy=policy
        )
        if live is not None:
            report += live_report.drift_markdown(live.drift)
    # The last line of defence: a value that reached the report some other way is cut here.
    report = settings.known_secrets.scrub(report)
    _bound_cache(settings.cache, max_bytes)
    if args.output:
        try:
            args.output.write_text(report)
        except OSError as exc:
            raise InputError(f"--output {args.output}: cannot write it ({exc.strerror})") from None
    else:
        sys.stdout.write(report if report.endswith("\n") else report + "\n")
    if outcome is not None:
        _write_findings(args, outcome, settings)
    if result.failed:
        return EXIT_ERROR
    if policy is not None and not policy.passed:
        return EXIT_GATE_FAILED
    return EXIT_CHANGES if result.changed else EXIT_NO_CHANGES


def _run_live(
    repo: Repository,
    request: preview.PreviewRequest,
    settings: RenderSettings,
    args: argparse.Namespace,
    phase: Callable[[str], None] | None,
) -> LivePreview:
    from core.cluster import live as live_cluster
    from core.live_preview import run_live_preview

    port = live_cluster.LiveCluster(live_cluster.connect(args.kubeconfig, args.context))
    try:
        return run_live_preview(
            repo, request, settings, port, progress=phase, trusted_only=args.live_managed_only
        )
    finally:
        port.close()


def _write_findings(
    args: argparse.Namespace, outcome: GateOutcome, settings: RenderSettings
) -> None:
    """Write the SARIF and JUnit files asked for, scrubbed like the report."""
    from core.report import junit, sarif

    writers: list[tuple[Path | None, Callable[[], str]]] = [
        (args.sarif, lambda: sarif.dumps(outcome.result, outcome.rules)),
        (args.junit, lambda: junit.dumps(outcome.result)),
    ]
    for path, text in writers:
        if path is None:
            continue
        try:
            path.write_text(settings.known_secrets.scrub(text()))
        except OSError as exc:
            raise InputError(f"{path}: cannot write it ({exc.strerror})") from None


class _Terminated(BaseException):
    """Raised in the main thread on SIGTERM, so that every `with` unwinds."""


@contextmanager
def _terminated_on_signal(settings: RenderSettings) -> Iterator[None]:
    """Turn SIGTERM into `_Terminated` while a preview runs; stop pending renders at once.

    SIGINT already raises KeyboardInterrupt. Either way the deadline is cancelled first, so the
    renders still queued fail immediately instead of running before the workspace is removed.
    Signal handlers can only be set from the main thread; elsewhere (an embedding server) the
    caller owns signals and this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if settings.deadline is not None:
            settings.deadline.cancel()
        terminate_all()
        if signum == signal.SIGTERM:
            raise _Terminated
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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


class WarmCaches:
    """The render caches a long-lived preview process keeps between previews, by directory.

    Only a server running one preview after another (`cli.preview_server`) sets this up; a
    command run once opens its cache afresh. Bounded: a few directories, each cache bounded in
    memory itself (`RenderCache`).
    """

    LIMIT = 4
    SPECS = 50_000
    """Parsed unit specs kept at most (a 30-cluster fleet has ~9,400 over base and head)."""

    def __init__(self, *, memory_entries: int = MEMORY_ENTRIES) -> None:
        self.caches: dict[Path, RenderCache] = {}
        self._memory_entries = memory_entries
        self.specs = SpecCache(limit=self.SPECS)
        """The specs of the Flux objects the caches hand out, parsed once for every preview."""

    def get(self, directory: Path) -> RenderCache:
        """The warm cache of a directory, opened on first use."""
        key = directory.absolute()
        found = self.caches.get(key)
        if found is None:
            if len(self.caches) >= self.LIMIT:
                self.caches.clear()  # an operator switching directories: start over
            found = self.caches[key] = RenderCache(key, memory_entries=self._memory_entries)
        return found


warm_caches: WarmCaches | None = None
"""Set by a long-lived preview process; None in a command run once."""


def _render_cache(directory: Path) -> RenderCache:
    return RenderCache(directory) if warm_caches is None else warm_caches.get(directory)


CACHE_MAX_BYTES_ENV = "TIDEGATE_CACHE_MAX_BYTES"
DEFAULT_CACHE_MAX_BYTES = 2 << 30


def cache_max_bytes(explicit: int | None) -> int:
    """The render cache's byte budget: the flag, else `$TIDEGATE_CACHE_MAX_BYTES`, else 2 GiB."""
    if explicit is not None:
        return explicit
    text = os.environ.get(CACHE_MAX_BYTES_ENV, "").strip()
    if not text:
        return DEFAULT_CACHE_MAX_BYTES
    try:
        return _size(text)
    except argparse.ArgumentTypeError as exc:
        raise InputError(f"${CACHE_MAX_BYTES_ENV}: {exc}") from None


def _bound_cache(cache: RenderCache, max_bytes: int) -> None:
    """Evict after the preview, so its own renders are the most recently used and stay."""
    try:
        cache.enforce_budget(max_bytes)
    except OSError as exc:
        # The report is still right; a cache that cannot shrink only costs disk.
        print(f"tidegate: render cache not trimmed ({exc.strerror})", file=sys.stderr)


def default_cache_dir() -> Path:
    """Return the render cache's default directory: `render/` in Tidegate's cache directory.

    CI jobs keep that whole directory between runs (docs/ci.md), the pinned tools included.
    """
    return toolchain.cache_root() / "render"


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
