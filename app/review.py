"""Reviewing one pull request: fetch, preview in the sandbox, publish one comment and one report.

The preview runs as `tidegate preview` in a long-lived child process (`app.engine`: started
once, its render cache warm between jobs) through the command runner, so it gets the engine's
full hardening (sandboxed kustomize/helm, the fetch allow-list from the operator's file and the
base revision, budgets, Secret masking) and a minimal environment: the service's tokens, keys
and webhook secrets are never in it. Git fetches authenticate with an HTTP header
passed through git's environment configuration, never on a command line, and only the fetch
sees it. A job whose pull request moved on to a newer head publishes nothing. The gate counts
the approving writers and the CODEOWNERS teams they belong to (`app.approvals`); clusters the
operator configured are also planned against their real state (`app.live`).

State machine of the report: `pending` while rendering, then `success` (the gate passes),
`failure` (blocking findings, or a render that failed: the change cannot be proven safe) or
`error` (Tidegate could not finish).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from app import approvals, live
from app.engine import PreviewEngine
from app.metrics import AppMetrics
from app.mirror import ensure_mirror
from app.settings import LiveCluster, Settings
from app.store import Job, JobStore
from core.errors import TidegateError
from core.host.command import Limits, run
from core.vcs import comments
from core.vcs.port import Annotation, CodeHost, CommitReport, ReportState, VcsError
from core.vcs.webhooks import Provider, WorkKind

__all__ = ["CHECK_NAME", "HELP", "REVIEW_NICE", "Credentials", "Reviewer", "Worker", "yield_cpu"]

CHECK_NAME = "tidegate/preview"
COMMENT_KEY = "preview"
HELP = (
    "Tidegate commands (users with write access only):\n\n"
    "- `/tidegate preview`: preview this pull request's head again\n"
    "- `/tidegate help`: show this help\n"
)
_EXIT_CHANGES, _EXIT_ERROR, _EXIT_GATE_FAILS = 1, 2, 3
_CANNOT_PROVE = "Preview failed: the change cannot be proven safe"
_log = logging.getLogger("tidegate.review")


@dataclass(frozen=True)
class Credentials:
    """HTTPS credentials for fetching one repository."""

    user: str
    password: str

    def __repr__(self) -> str:
        return "Credentials(***)"


HostFactory = Callable[[Job], tuple[CodeHost, Credentials]]


class Reviewer:
    """Runs jobs: previews and publishes, or answers comment commands."""

    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        hosts: HostFactory,
        metrics: AppMetrics | None = None,
        engine: PreviewEngine | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._hosts = hosts
        self._metrics = metrics
        self._engine = engine or PreviewEngine()
        self._mirrors = settings.data_dir / "mirrors"
        self._reports = settings.data_dir / "reports"

    def run(self, job: Job) -> None:
        """Run one claimed job to its end (the caller marks it done)."""
        host, credentials = self._hosts(job)
        work = job.work
        try:
            if work.kind is WorkKind.COMMAND:
                self._command(job, host, credentials)
            else:
                self._review(job, host, credentials, work.head_sha, work.base_ref, work.fork)
        finally:
            remaining = getattr(host, "rate_limit_remaining", None)
            if self._metrics is not None and isinstance(remaining, int) and remaining >= 0:
                self._metrics.rate_limit.labels(job.provider.value).set(remaining)

    def _command(self, job: Job, host: CodeHost, credentials: Credentials) -> None:
        work = job.work
        if work.command == "help":
            host.create_comment(work.number, HELP)
            return
        if work.command != "preview":
            host.create_comment(work.number, f"Unknown command `{work.command[:40]}`.\n\n{HELP}")
            return
        if not host.can_write(work.actor):
            host.create_comment(
                work.number, f"@{work.actor} only users with write access may run Tidegate."
            )
            return
        pull = host.pull(work.number)
        if pull.open:
            self._review(job, host, credentials, pull.sha, pull.base_ref, pull.fork)

    def _review(
        self,
        job: Job,
        host: CodeHost,
        credentials: Credentials,
        sha: str,
        base_ref: str,
        fork: bool,
    ) -> None:
        if fork and not self._settings.allow_forks:
            self._publish(
                job,
                host,
                sha,
                ReportState.FAILURE,
                "Not previewed: the pull request comes from a fork",
                "Pull requests from forks are not previewed on "
                "this installation; a maintainer can push the branch here.",
                (),
            )
            return
        host.report(sha, CommitReport(CHECK_NAME, ReportState.PENDING, "Rendering the change"))
        try:
            mirror = self._fetch(job, credentials, sha, base_ref)
            base = run(["git", "-C", str(mirror), "merge-base", sha, _ref(job, "base")])
            merge_base = base.decode().strip()
            teams = approvals.codeowner_teams(mirror, merge_base, sha, job.provider.value)
            approvers = approvals.approvals(host, job.work.number, sha, teams)
            state, title, body, annotations = self._preview(job, mirror, merge_base, sha, approvers)
        except TidegateError as exc:
            state, title = ReportState.FAILURE, _CANNOT_PROVE
            body, annotations = f"## Tidegate preview failed\n\n{_quote(str(exc))}\n", ()
        if self._store.newer_head(job):
            _log.info("stale head, not publishing", extra={"job": job.id})
            return
        self._publish(job, host, sha, state, title, body, annotations)

    def _publish(
        self,
        job: Job,
        host: CodeHost,
        sha: str,
        state: ReportState,
        title: str,
        body: str,
        annotations: tuple[Annotation, ...],
    ) -> None:
        limit = comments.GITLAB_LIMIT if job.provider is Provider.GITLAB else comments.GITHUB_LIMIT
        parts = comments.split(body, f"## {title}\n", key=COMMENT_KEY, limit=limit)
        comments.sync(host, job.work.number, parts, key=COMMENT_KEY)
        summary = body[:60_000]
        host.report(sha, CommitReport(CHECK_NAME, state, title, summary, "", annotations))

    def _fetch(self, job: Job, credentials: Credentials, sha: str, base_ref: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9._/-]{1,200}", base_ref) or ".." in base_ref:
            raise TidegateError(f"base branch {base_ref[:80]!r} is not a plain branch name")
        name = re.sub(r"[^A-Za-z0-9._-]", "_", f"{job.provider.value}_{job.work.repository}")
        mirror = ensure_mirror(self._mirrors / name)
        token = base64.b64encode(f"{credentials.user}:{credentials.password}".encode()).decode()
        env = {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_COUNT": "3",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {token}",
            # No automatic gc while other jobs update their refs in the same mirror.
            "GIT_CONFIG_KEY_1": "gc.auto",
            "GIT_CONFIG_VALUE_1": "0",
            "GIT_CONFIG_KEY_2": "maintenance.auto",
            "GIT_CONFIG_VALUE_2": "false",
        }
        run(
            [
                "git",
                "-C",
                str(mirror),
                "fetch",
                "--quiet",
                "--no-tags",
                # Jobs fetch into one mirror concurrently: only their own refs, no shared file.
                "--no-write-fetch-head",
                "--end-of-options",
                job.work.clone_url,
                f"+refs/heads/{base_ref}:{_ref(job, 'base')}",
                f"+{sha}:{_ref(job, 'head')}",
            ],
            limits=Limits(timeout=300.0, env=env),
        )
        return mirror

    def _preview(
        self, job: Job, mirror: Path, merge_base: str, sha: str, approvers: Sequence[str]
    ) -> tuple[ReportState, str, str, tuple[Annotation, ...]]:
        out = self._reports / str(job.id)
        out.mkdir(parents=True, exist_ok=True)
        common = [
            "--repo",
            str(mirror),
            "--base",
            merge_base,
            "--head",
            sha,
            "--format",
            "markdown",
            "--cache-dir",
            str(self._settings.data_dir / "render"),
            "--kustomize",
            self._settings.kustomize,
            "--helm",
            self._settings.helm,
            "--sandbox",
            self._settings.sandbox,
            # The report is split into comment parts here, so the engine need not cut it short.
            "--max-report-chars",
            str(comments.MAX_PARTS * 60_000),
        ]
        if self._settings.operator_config is not None:
            common += ["--config", str(self._settings.operator_config)]
        report = out / "report.md"
        argv = [*common, "--output", str(report), "--sarif", str(out / "findings.sarif")]
        # `=` joins name and value: a value can never be read as another option. Users and
        # `@teams` (see `app.approvals`).
        argv += [f"--approved-by={name}" for name in approvers]
        argv.append(f"--codeowners-of={job.provider.value}")
        started = time.monotonic()
        code, stderr = self._engine.preview(argv)
        # The render part of a job, apart from fetching and publishing (docs/benchmarks.md).
        seconds = round(time.monotonic() - started, 3)
        _log.info("preview finished", extra={"job": job.id, "result": code, "seconds": seconds})
        if code in (0, _EXIT_CHANGES):
            state, title = ReportState.SUCCESS, "Preview passes the policy gate"
        elif code == _EXIT_GATE_FAILS:
            state, title = ReportState.FAILURE, "Policy gate fails: blocking findings"
        elif code == _EXIT_ERROR and report.exists():
            # Units failed to render: the report says which and why; nothing is proven.
            state, title = ReportState.FAILURE, _CANNOT_PROVE
        else:
            raise TidegateError(stderr.strip() or f"tidegate preview exited with code {code}")
        body = report.read_text()
        failed = []
        for cluster in live.clusters_at(mirror, sha, self._settings.live_clusters):
            plan = self._live(job, common, cluster, out)
            body += live.section(plan)
            if not plan.ok:
                failed.append(cluster.path)
        if failed:
            state = ReportState.FAILURE
            title = f"Live preview failed for {', '.join(failed)}: the change cannot be proven safe"
        return state, title, body, _annotations(out / "findings.sarif")

    def _live(
        self, job: Job, common: Sequence[str], cluster: LiveCluster, out: Path
    ) -> live.LivePlan:
        """Plan head against one configured cluster; a cluster not read fails closed."""
        report = out / f"live-{re.sub(r'[^A-Za-z0-9._-]', '_', cluster.path)}.md"
        report.unlink(missing_ok=True)  # an earlier attempt's report must not stand for this one
        code, stderr = self._engine.preview([*common, *live.argv(cluster, report)])
        _log.info(
            "live preview of %s finished", cluster.path, extra={"job": job.id, "result": code}
        )
        if code in (0, _EXIT_CHANGES):
            return live.LivePlan(cluster.path, report.read_text(), ok=True)
        if code == _EXIT_ERROR and report.exists():
            return live.LivePlan(cluster.path, report.read_text(), ok=False)
        return live.failure(cluster, stderr, code)


def _ref(job: Job, side: str) -> str:
    """The mirror ref holding one side of one job (per job: jobs run concurrently)."""
    return f"refs/tidegate/jobs/{job.id}/{side}"


def _quote(text: str) -> str:
    return "```text\n" + text.replace("```", "'''")[:4000] + "\n```"


def _annotations(sarif: Path) -> tuple[Annotation, ...]:
    if not sarif.exists():
        return ()
    found: list[Annotation] = []
    for run_ in json.loads(sarif.read_text()).get("runs", []):
        for result in run_.get("results", []):
            locations = result.get("locations") or [{}]
            physical = locations[0].get("physicalLocation", {})
            path = physical.get("artifactLocation", {}).get("uri", "")
            if not path:
                continue
            level = {"error": "failure", "warning": "warning"}.get(result.get("level"), "notice")
            found.append(
                Annotation(
                    path=path,
                    line=int(physical.get("region", {}).get("startLine", 1)),
                    message=str(result.get("message", {}).get("text", ""))[:2000],
                    title=str(result.get("ruleId", "")),
                    level=level,
                )
            )
    return tuple(found)


REVIEW_NICE = 10
"""The nice value reviews run at: below the webhook threads, so rendering never starves them."""


def yield_cpu() -> None:
    """Run the calling thread, and every process it starts, at nice `REVIEW_NICE` (at least).

    On Linux the nice value belongs to a thread and a child process inherits its parent thread's,
    so the review thread and the renders it starts (the preview, kustomize, helm, git) give way to
    the acknowledgement threads of the same process; a CPU-bound render then delays other
    reviews, never an acknowledgement. A thread may always lower its own priority, never raise it
    back without privilege, so this only ever lowers it.
    """
    thread = threading.get_native_id()
    current = os.getpriority(os.PRIO_PROCESS, thread)
    if current < REVIEW_NICE:
        os.setpriority(os.PRIO_PROCESS, thread, REVIEW_NICE)


class Worker:
    """Claims jobs and runs them; a failed attempt goes back to the queue (see JobStore.retry)."""

    def __init__(
        self, store: JobStore, reviewer: Reviewer, metrics: AppMetrics | None = None
    ) -> None:
        self._store = store
        self._reviewer = reviewer
        self._metrics = metrics

    def run_once(self) -> bool:
        """Run one job if there is one; return whether there was."""
        job = self._store.claim()
        if job is None:
            return False
        _log.info("job claimed", extra={"job": job.id, "attempt": job.attempts})
        started = time.monotonic()
        try:
            self._reviewer.run(job)
        except VcsError as exc:
            outcome = self._store.retry(job, str(exc))
            _log.warning("job failed: %s", exc, extra={"job": job.id, "state": outcome})
        except Exception as exc:
            # A bug must not stop the worker; the job is retried, then ends in `error`.
            outcome = self._store.retry(job, f"internal error: {type(exc).__name__}")
            _log.exception("job failed", extra={"job": job.id, "state": outcome})
        else:
            outcome = "done" if self._store.finish(job) else "taken over"
            _log.info("job finished", extra={"job": job.id, "state": outcome})
        if self._metrics is not None:
            self._metrics.job_duration.labels(job.work.kind.value, outcome).observe(
                time.monotonic() - started
            )
        return True

    def run_forever(self, stop: threading.Event, *, idle: float = 1.0) -> None:
        """Run jobs until `stop` is set, polling every `idle` seconds while the queue is empty.

        The calling thread first lowers its CPU priority to `REVIEW_NICE` (see `yield_cpu`).
        """
        yield_cpu()
        while not stop.is_set():
            try:
                busy = self.run_once()
            except Exception:
                # The database is unreachable (restart, failover): wait and claim again.
                _log.exception("cannot claim a job")
                busy = False
            if not busy:
                stop.wait(idle)
