"""`tidegate demo`: the whole product on one machine, or (`--preview-only`) one preview.

Without `--preview-only` it starts, on loopback, the local git server, the GitHub API server,
the local control plane, `tidegate serve` and `tidegate reconcile`, and plays the story of
`cli.demo_story` (bootstrap, a gated pull request, its merge applied as previewed), then keeps
everything running until Ctrl-C or SIGTERM, or (`--once`) stops after a summary. Everything it
started is stopped and its scratch directory removed on every way out.

With `--preview-only`: the example (`cli/example/`) is two clusters with overlays, substitution,
a Secret, a HelmRelease and a `prune: false` Kustomization; `head/` holds the pull request's
changes, which between them update, delete, orphan, move and add. The demo commits both states to
a scratch git repository and runs exactly what `tidegate preview` runs.
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from cli import preview
from devenv.worktree import commit_all, git

# The story and its stack (the control plane, the app, the reconciler) are imported by `_story`:
# `--preview-only` and every other command start without them.

__all__ = ["build_example_repo", "register"]

EXAMPLE = Path(__file__).resolve().parent / "example"


def register(subparsers: Any) -> None:
    """Add the `demo` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo", help="run the whole product on loopback and play a pull request's story"
    )
    parser.add_argument("--once", action="store_true", help="stop after the story and its summary")
    parser.add_argument(
        "--record",
        type=Path,
        default=None,
        help="write what the servers received and the cluster holds as JSON once the story ends",
    )
    parser.add_argument(
        "--preview-only",
        action="store_true",
        help="only print one preview of the embedded example (no servers)",
    )
    parser.add_argument("--format", choices=("markdown", "json"), default="markdown")
    parser.add_argument("--jobs", type=int, default=2)
    parser.set_defaults(handler=_dispatch)


def _dispatch(args: argparse.Namespace) -> int:
    if args.preview_only:
        return _run(args)
    return _story(args)


def _story(args: argparse.Namespace) -> int:
    """Play the story; stop everything on every way out (SIGINT and SIGTERM included).

    Exit codes: 0 when the story completed (`--once`), 130 after SIGINT and 143 after SIGTERM
    (128 + the signal's number, as a shell reports a command ended by that signal), 2 when a
    step failed. A SIGKILL leaves the clean-up to the stack's reaper.
    """
    from cli import demo_story
    from cli.demo_story import say
    from devenv.demo_stack import DemoStack

    signals = _Signals()
    previous = {signum: signal.signal(signum, signals.received) for signum in _STOP_SIGNALS}
    stack: DemoStack | None = None  # started inside `try`: a signal may come at any point
    try:
        stack = DemoStack(
            cluster=demo_story.CLUSTER,
            log=lambda line: say(f"    {line}"),
            checkpoint=signals.check,
        )
        say(f"==> scratch directory {stack.root} (removed when the demo stops)")
        story = demo_story.Story(stack, say, checkpoint=signals.check)
        look = functools.partial(story.where_to_look, staying_up=not args.once)
        for step in (story.start, story.bootstrap, story.pull_request, story.merge, look):
            signals.check()
            step()
        summary = story.summary()
        if args.record is not None:
            args.record.write_text(json.dumps(summary, indent=2, sort_keys=True))
        if args.once:
            say(f"==> done: {_one_line(summary)}")
        else:
            say("==> everything keeps running; Ctrl-C stops it and removes what it made")
            while True:
                signals.check()
                time.sleep(1)  # not `signal.pause()`: a signal taken by a thread never ends it
    except Interrupted as exc:
        say(f"==> interrupted ({exc.signame}): stopping everything")
        return 128 + exc.signum
    finally:
        # A second Ctrl-C must not cut the clean-up short.
        for signum in _STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        if stack is not None:
            stack.stop()
            say("==> stopped; scratch directory removed")
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM reached the demo; it stops everything and exits 128 + the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.signame = signal.Signals(signum).name


class _Signals:
    """Turns SIGINT and SIGTERM into `Interrupted` at the demo's next step or poll.

    The handler only records the signal; it never raises. A handler runs in the main thread at
    whatever Python code runs there next, so what it raised would land anywhere:
    - in a finalizer (an unclosed HTTP response's `close()` when it is collected; the story
      polls its servers over HTTP all the time), CPython discards it, and the signal is lost;
    - between a lock's acquire and its release in Python code (logging's, a coverage tracer's),
      it leaves the lock held, and the next thread that needs it, the main one included,
      waits forever.
    Every step, every poll of the story and every wait for a server to answer calls `check`, so
    a stop takes effect within a poll's interval. (The handlers are set before anything starts;
    the children run in sessions of their own, so a Ctrl-C reaches the demo alone.)
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    def received(self, signum: int, frame: object) -> None:
        self.signum = signum

    def check(self) -> None:
        if self.signum is not None:
            raise Interrupted(self.signum)


def _one_line(summary: dict[str, Any]) -> str:
    """The story's outcome in one line, from what the servers received."""
    checks = ", then ".join(
        f"{run['conclusion']} on {run['head_sha'][:12]}" for run in summary["check_runs"]
    )
    merge = summary["shas"]["merge"]
    final = {}
    for status in summary["statuses"].get(merge, []):
        final[status["context"]] = status["description"]
    as_previewed = sum(1 for text in final.values() if text.endswith("applied as previewed"))
    return (
        f"check tidegate/preview {checks}; {len(summary['comments'])} sticky comment; "
        f"merge {merge[:12]} applied as previewed by {as_previewed} of {len(final)} "
        f"Kustomizations; redis {'still there' if summary['redis'] else 'pruned'}"
    )


def build_example_repo(dest: Path) -> None:
    """Create a git repository at `dest`: `main` holds the base, `pull-request` the head."""
    # Fresh modification times: with the source files' times, git's stat check would take an
    # equal-sized edit (6.7.0 -> 6.7.1) for an unchanged file.
    shutil.copytree(EXAMPLE / "base", dest, copy_function=shutil.copyfile)
    git(dest, "init", "--quiet", "--initial-branch=main")
    commit_all(dest, "Fleet as deployed today")
    git(dest, "checkout", "--quiet", "-b", "pull-request")
    shutil.copytree(EXAMPLE / "head", dest, dirs_exist_ok=True, copy_function=shutil.copyfile)
    commit_all(dest, "Roll out podinfo 6.7.1, rotate the token, retire redis in production")


def _run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="tidegate-demo-") as scratch:
        repo = Path(scratch) / "fleet"
        build_example_repo(repo)
        code = preview.run(
            argparse.Namespace(
                repo=repo,
                base="main",
                head="pull-request",
                path=[],
                format=args.format,
                output=None,
                jobs=args.jobs,
                changed_only=False,
                source=[],
                allow_remote_base=[],
                allow_host=[],
                config=None,
                unavailable_sources=None,
                cache_dir=Path(scratch) / "cache",
                cache_max_bytes=None,
                kustomize=None,
                helm=None,
                sarif=None,
                junit=None,
                approved_by=[],
                codeowners_of="github",
                no_policies=False,
                sandbox=None,
                live=False,
                kubeconfig=None,
                context=None,
                **preview.budget_defaults(),
            )
        )
    # The example is meant to change things and to trip the policy gate: exit 1 (changes) and
    # 3 (the gate fails) are the demo working.
    working = (preview.EXIT_NO_CHANGES, preview.EXIT_CHANGES, preview.EXIT_GATE_FAILED)
    return 0 if code in working else code
