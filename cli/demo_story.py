"""The story `tidegate demo` plays: bootstrap, a gated pull request, its merge as previewed.

Over a running `devenv.demo_stack.DemoStack` (git server, GitHub API server, control plane,
`tidegate serve`, `tidegate reconcile`) and the fleet in `cli/story/`:

1. bootstrap: `main` is pushed and Flux's sync objects are applied; the reconciler applies the
   fleet, its Kustomizations become Ready and the commit gets `pending` then `success`;
2. pull request: a branch scales `podinfo`, deletes `redis` and moves a ConfigMap between
   Kustomizations; a signed webhook reaches `tidegate serve`, which posts one sticky comment and
   the `tidegate/preview` check: `failure`, the replica-ceiling policy blocks; a second push adds
   the waiver annotation and the check turns `success`;
3. merge: `main` moves to a merge commit; the reconciler applies it, prunes `redis`, and the
   merge commit's statuses say `applied as previewed`;
4. where to look, and (`--once`) a summary.

Every wait is bounded and names what it waited for; a failure ends the story with that message
and the tail of the child's log. This module narrates and drives; the stack starts and stops.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from core import yamlio
from core.errors import TidegateError
from devenv import toolchain
from devenv.demo_stack import APP_ID, REPOSITORY, DemoStack
from devenv.github_webhook import deliver, pull_request_event
from devenv.worktree import commit_all, git
from reconciler import crds
from reconciler.notification.manifests import crds as notification_crds

__all__ = ["CLUSTER", "STORY", "Story"]

STORY = Path(__file__).resolve().parent / "story"
CLUSTER = "clusters/demo"
NAMESPACE = "flux-system"
KUSTOMIZATIONS = ("flux-system", "apps", "config")
PULL = 1
NOTIFICATION_API = "notification.toolkit.fluxcd.io/v1beta3"
KS_API = "kustomize.toolkit.fluxcd.io/v1"
SOURCE_API = "source.toolkit.fluxcd.io/v1"

# What the pull request's first push removes (the story's directories only add or replace).
_REMOVED = ("apps/redis.yaml", "config/settings.yaml")
_WAIT = 180.0
_EXCERPT_LINES = 14

T = TypeVar("T")


class StoryError(TidegateError):
    """A step did not reach its expected state in time."""


class Story:
    """Plays the four steps over a stack, printing each as it goes."""

    def __init__(
        self,
        stack: DemoStack,
        out: Callable[[str], None],
        checkpoint: Callable[[], None] = lambda: None,
    ) -> None:
        self.stack = stack
        self.out = out
        # Called at every step and every poll: raises when the demo was asked to stop.
        self.checkpoint = checkpoint
        self.work = stack.root / "work"
        self.shas: dict[str, str] = {}

    # -- set-up ------------------------------------------------------------------------------

    def start(self) -> None:
        """Bring up every server and process, with the fleet pushed to `main`."""
        tools = {name: toolchain.binary(name) for name in ("kustomize", "helm")}
        self.out("==> starting the servers (loopback only)")
        self.stack.start_servers()
        self.shas["main"] = self._init_fleet()
        self.stack.start_control_plane()
        self.stack.connect()
        self._install_crds()
        self.stack.start_serve(tools)
        self.stack.start_reconcile(tools, self.work)

    # -- 1. bootstrap ------------------------------------------------------------------------

    def bootstrap(self) -> None:
        """Flux's sync objects, the Provider and Alert; the fleet applied and reported."""
        sha = self.shas["main"]
        self.out(f"==> 1. bootstrap: the reconciler applies main ({sha[:12]})")
        self._notifications()
        sync = self.work / CLUSTER / "flux-system" / "gotk-sync.yaml"
        for document in yamlio.load_all(sync.read_text()):
            self.stack.apply(dict(document))
        for name in KUSTOMIZATIONS:
            self._wait(partial(self._applied, name, sha), f"Kustomization {name} Ready")
            self.out(f"    Kustomization {NAMESPACE}/{name}: Ready, applied main@sha1:{sha[:12]}")
        states = self._wait(lambda: self._final_statuses(sha), "commit statuses on main")
        self.out(f"    commit statuses on {sha[:12]}, one per Kustomization, as Flux posts them:")
        for context, (first, last) in sorted(states.items()):
            self.out(f"      {context}: {first} -> {last}")

    # -- 2. pull request ---------------------------------------------------------------------

    def pull_request(self) -> None:
        """Open the pull request, see it blocked, waive, see it pass."""
        self.out("==> 2. pull request #1: scale podinfo to 4, delete redis, move a ConfigMap")
        head = self._push_branch(STORY / "pull-request", "Scale podinfo, retire redis", _REMOVED)
        self.shas["head"] = head
        self.stack.github.add_pull(REPOSITORY, PULL, head=head)
        self._deliver("opened", head)
        check = self._wait(lambda: self._check(head), "the tidegate/preview check")
        self.out(f"    check tidegate/preview on {head[:12]}: {check['conclusion']}")
        self.out(f"      {check['output']['title']}")
        if check["conclusion"] != "failure":
            raise StoryError(f"the policy gate did not block the pull request: {check}")
        self.out("    sticky comment posted; the replica-ceiling policy blocks the merge")

        self.out("==> 2b. second push: waive replica-ceiling on podinfo (annotation with reason)")
        waived = self._push_branch(STORY / "waiver", "Waive the replica ceiling for launch week")
        self.shas["waived"] = waived
        self.stack.github.add_pull(REPOSITORY, PULL, head=waived)
        self._deliver("synchronize", waived)
        check = self._wait(lambda: self._check(waived), "the check on the second push")
        self.out(f"    check tidegate/preview on {waived[:12]}: {check['conclusion']}")
        self.out(f"      {check['output']['title']}")
        if check["conclusion"] != "success":
            raise StoryError(f"the waiver did not unblock the pull request: {check}")
        comments = self.stack.github.comment_bodies(REPOSITORY)
        self.out(f"    the sticky comment was edited in place ({len(comments)} comment)")

    # -- 3. merge ----------------------------------------------------------------------------

    def merge(self) -> None:
        """Merge, apply, prune, and report applied as previewed."""
        self.out("==> 3. merge pull request #1")
        git(self.work, "checkout", "--quiet", "main")
        git(self.work, "merge", "--quiet", "--no-ff", "feature", "-m", "Merge pull request #1")
        git(self.work, "push", "--quiet", self.stack.push_url, "main")
        merged = git(self.work, "rev-parse", "HEAD").strip()
        self.shas["merge"] = merged
        # What `flux reconcile source git flux-system` does: ask for a fetch now.
        self.stack.apply(
            {
                "apiVersion": SOURCE_API,
                "kind": "GitRepository",
                "metadata": {
                    "name": "flux-system",
                    "namespace": NAMESPACE,
                    "annotations": {"reconcile.fluxcd.io/requestedAt": str(time.time())},
                },
            }
        )
        for name in KUSTOMIZATIONS:
            self._wait(partial(self._applied, name, merged), f"{name} to apply the merge")
            self.out(f"    Kustomization {NAMESPACE}/{name}: applied main@sha1:{merged[:12]}")
        self._wait(
            lambda: self.stack.get("apps/v1", "Deployment", "demo", "redis") is None,
            "redis to be pruned",
        )
        self.out("    Deployment demo/redis pruned, as the preview said")
        states = self._wait(lambda: self._final_statuses(merged), "statuses on the merge commit")
        self.out(f"    commit statuses on {merged[:12]}, the applied state against the preview:")
        for context, (_, last) in sorted(states.items()):
            description = self._description(merged, context)
            self.out(f"      {context}: {last}: {description}")

    # -- 4. where to look --------------------------------------------------------------------

    def where_to_look(self, *, staying_up: bool) -> None:
        """The comment, the check, the cluster and the statuses, and how to see them."""
        github = self.stack.github
        kubectl = toolchain.binary("kubectl")
        when = "while the demo runs" if staying_up else "`--once` stops them right after this"
        self.out(f"==> 4. where to look ({when})")
        self.out("    the sticky comment on pull request #1, as the reviewer sees it:")
        # The hidden markers that make the comment sticky say nothing to a reader.
        lines = [
            line
            for line in github.comment_bodies(REPOSITORY)[-1].splitlines()
            if not line.startswith("<!--")
        ]
        for line in lines[:_EXCERPT_LINES]:
            self.out(f"      | {_clip(line)}")
        if len(lines) > _EXCERPT_LINES:
            more = len(lines) - _EXCERPT_LINES
            self.out(f"      | ... ({more} more lines: see `comment:` below)")
        api = f"curl -sH @{self.stack.api_header_file} {github.base_url}/repos/{REPOSITORY}"
        self.out("    what GitHub got (the header file holds the API server's token):")
        self.out(f"      comment:  {api}/issues/{PULL}/comments")
        self.out(f"      check:    {api}/commits/{self.shas['waived']}/check-runs")
        self.out(f"      statuses: {api}/commits/{self.shas['merge']}/statuses")
        self.out("    the cluster (Kustomizations, then what they applied):")
        self.out(f"      {kubectl} --kubeconfig {self.stack.kubeconfig} get ks -A")
        self.out(f"      {kubectl} --kubeconfig {self.stack.kubeconfig} get deploy,cm -n demo")
        self.out(f"    the fleet repository: git clone {self.stack.clone_url}")
        logs = self.stack.log_file("serve").parent
        self.out(f"    logs: {logs}/serve.log, {logs}/reconcile.log")

    def summary(self) -> dict[str, Any]:
        """What the servers received and what the cluster holds, for `--once` and its tests."""
        repo = self.stack.github.repos[REPOSITORY]
        live = {
            name: self.stack.get(KS_API, "Kustomization", NAMESPACE, name)
            for name in KUSTOMIZATIONS
        }
        return {
            "shas": self.shas,
            "app_id": APP_ID,
            "comments": [c["body"] for c in repo.comments.values()],
            "check_runs": list(repo.check_runs.values()),
            "statuses": repo.statuses,
            "kustomizations": {
                name: (obj or {}).get("status", {}).get("lastAppliedRevision")
                for name, obj in live.items()
            },
            "redis": self.stack.get("apps/v1", "Deployment", "demo", "redis") is not None,
            "podinfo_replicas": (self.stack.get("apps/v1", "Deployment", "demo", "podinfo") or {})
            .get("spec", {})
            .get("replicas"),
            "settings_owner": (
                (self.stack.get("v1", "ConfigMap", "demo", "podinfo-settings") or {})
                .get("metadata", {})
                .get("labels", {})
                .get("kustomize.toolkit.fluxcd.io/name")
            ),
            "violations": self.stack.github.violations,
        }

    # -- helpers -----------------------------------------------------------------------------

    def _init_fleet(self) -> str:
        """The fleet at base, its sync pointing at the local git server, pushed to `main`."""
        shutil.copytree(STORY / "base", self.work, copy_function=shutil.copyfile)
        sync = self.work / CLUSTER / "flux-system" / "gotk-sync.yaml"
        sync.write_text(sync.read_text().replace("${FLEET_URL}", self.stack.clone_url))
        git(self.work, "init", "--quiet", "--initial-branch=main")
        commit_all(self.work, "Fleet as deployed today")
        git(self.work, "push", "--quiet", self.stack.push_url, "main")
        return git(self.work, "rev-parse", "HEAD").strip()

    def _install_crds(self) -> None:
        for crd in [*crds.documents(), *notification_crds()]:
            self.stack.apply(crd)
        for crd in [*crds.documents(), *notification_crds()]:
            name = crd["metadata"]["name"]
            self._wait(partial(self._established, name), f"CRD {name}")
        self.stack.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})

    def _established(self, name: str) -> bool:
        crd = self.stack.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", name)
        conditions = ((crd or {}).get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    def _notifications(self) -> None:
        """A `github` Provider at the API server (token in a Secret) and an Alert for every ks."""
        self.stack.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "github-token", "namespace": NAMESPACE},
                "stringData": {"token": self.stack.github.token},
            }
        )
        self.stack.apply(
            {
                "apiVersion": NOTIFICATION_API,
                "kind": "Provider",
                "metadata": {"name": "github", "namespace": NAMESPACE},
                "spec": {
                    "type": "github",
                    "address": f"{self.stack.origin}/{REPOSITORY}",
                    "secretRef": {"name": "github-token"},
                },
            }
        )
        self.stack.apply(
            {
                "apiVersion": NOTIFICATION_API,
                "kind": "Alert",
                "metadata": {"name": "github", "namespace": NAMESPACE},
                "spec": {
                    "providerRef": {"name": "github"},
                    "eventSources": [{"kind": "Kustomization", "name": "*"}],
                },
            }
        )

    def _applied(self, name: str, sha: str) -> bool:
        obj = self.stack.get(KS_API, "Kustomization", NAMESPACE, name)
        status = (obj or {}).get("status") or {}
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        return ready and status.get("lastAppliedRevision") == f"main@sha1:{sha}"

    def _final_statuses(self, sha: str) -> dict[str, tuple[str, str]] | None:
        """Each Kustomization's first and last state on `sha`, once every one has an outcome."""
        posted = self.stack.github.repos[REPOSITORY].statuses.get(sha, [])
        by_context: dict[str, list[str]] = {}
        for status in posted:
            by_context.setdefault(status["context"], []).append(status["state"])
        done = {c: (s[0], s[-1]) for c, s in by_context.items() if s[-1] != "pending"}
        return done if len(done) >= len(KUSTOMIZATIONS) else None

    def _description(self, sha: str, context: str) -> str:
        posted = self.stack.github.repos[REPOSITORY].statuses.get(sha, [])
        return str([s for s in posted if s["context"] == context][-1]["description"])

    def _check(self, sha: str) -> dict[str, Any] | None:
        runs = self.stack.github.repos[REPOSITORY].check_runs.values()
        done = [r for r in runs if r["head_sha"] == sha and r.get("status") == "completed"]
        return done[-1] if done else None

    def _push_branch(self, overlay: Path, message: str, removed: tuple[str, ...] = ()) -> str:
        git(self.work, "checkout", "--quiet", "-B", "feature")
        shutil.copytree(overlay, self.work, dirs_exist_ok=True, copy_function=shutil.copyfile)
        for path in removed:
            (self.work / path).unlink()
        commit_all(self.work, message)
        git(self.work, "push", "--quiet", "--force", self.stack.push_url, "feature")
        return git(self.work, "rev-parse", "HEAD").strip()

    def _deliver(self, action: str, head: str) -> None:
        """A signed `pull_request` delivery, as GitHub sends it, to `tidegate serve`."""
        payload = pull_request_event(
            action,
            number=PULL,
            head=head,
            head_ref="feature",
            base=self.shas["main"],
            repository=REPOSITORY,
            clone_url=self.stack.clone_url,
            installation_id=self.stack.github.installation_id,
        )
        status = deliver(self.stack.webhook_url, self.stack.webhook_secret, payload)
        self.out(f"    webhook pull_request/{action} delivered, signed: {status}")

    def _wait(self, check: Callable[[], T | None], what: str) -> T:
        deadline = time.monotonic() + _WAIT
        while time.monotonic() < deadline:
            self.checkpoint()
            self.stack.check_children()
            found = check()
            if found:
                return found
            time.sleep(0.5)
        raise StoryError(f"timed out after {_WAIT:.0f}s waiting for {what}")


def _clip(line: str, width: int = 100) -> str:
    return line if len(line) <= width else line[: width - 3] + "..."


def say(line: str) -> None:
    """Progress output: one line, flushed (the demo may be piped)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
