"""The servers `tidegate demo` runs on loopback, started in order and stopped in reverse.

`DemoStack` owns one scratch directory and, inside it: the local git server (the fleet
repository), the GitHub API server (`devenv.github_api`, an App installation with a fresh key),
the local control plane with the Flux CRDs, and two real child processes: `tidegate serve`
(SQLite job store, App mode) and `tidegate reconcile` (out of cluster, loopback notifications
and predictions allowed). `stop` ends every child and server and removes the directory; it is
idempotent and runs even when start-up failed half way. The directory comes from a reaper process
(`devenv.reaper`) that ends whatever is left and removes the directory when the stack's process
ends, even by SIGKILL; every process started after that carries the reaper's marker.

It starts and stops things; it holds no step of the story and asserts nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from kubernetes import config as k8s_config
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

from core.errors import TidegateError
from devenv import reaper
from devenv.controlplane import ControlPlane
from devenv.github_api import FakeGitHub, FakeRepo, serve_github
from devenv.gitserver import GitServer
from devenv.ports import free_port

__all__ = ["APP_ID", "REPOSITORY", "DemoStack", "StackError"]

APP_ID = "4242"
REPOSITORY = "acme/fleet"
GIT_USER = "fleet-admin"
FLUX_NAMESPACE = "flux-system"
_STOP_GRACE = 10.0


class StackError(TidegateError):
    """A server of the demo did not start; the message names it and ends with its log."""


class DemoStack:
    """Everything the demo runs; `start` brings it up, `stop` tears all of it down."""

    def __init__(
        self,
        *,
        cluster: str,
        log: Callable[[str], None],
        checkpoint: Callable[[], None] = lambda: None,
    ) -> None:
        """`checkpoint` is called at every poll while a server starts (the demo's stop check)."""
        self._checkpoint = checkpoint
        self._reaper, self.root = _start_reaper()
        # Inherited by every process started from here on, children of children included: how
        # the reaper (and `stop`) find them all, recorded or not.
        os.environ[reaper.MARKER] = str(self.root)
        self.cluster = cluster
        self._log = log
        self._git_password = secrets.token_urlsafe(16)
        self.webhook_secret = secrets.token_urlsafe(24).encode()
        # The App's installation token also reads the repository over HTTPS, as on GitHub.
        installation_token = "ghs_" + secrets.token_hex(16)
        self.git = GitServer(
            self.root / "git",
            {GIT_USER: self._git_password, "x-access-token": installation_token},
        )
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._private_key = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.github = FakeGitHub(
            token=secrets.token_urlsafe(16),
            app_id=APP_ID,
            public_key=public.decode(),
        )
        self.github.fixed_token = installation_token
        self._github_server: serve_github | None = None
        self.plane = ControlPlane(self.root / "controlplane")
        self.serve_port = 0
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self._stopped = False
        self._api: Any = None
        self._dynamic: Any = None

    # -- addresses ---------------------------------------------------------------------------

    @property
    def origin(self) -> str:
        """The GitHub server's origin (`http://127.0.0.1:PORT`); the API is under /api/v3."""
        return self.github.base_url.removesuffix("/api/v3")

    @property
    def clone_url(self) -> str:
        """The fleet repository's clone URL (anyone may fetch)."""
        return self.git.repo_url(REPOSITORY)

    @property
    def push_url(self) -> str:
        """The clone URL with the pushing user's credentials."""
        return self.git.repo_url(REPOSITORY, GIT_USER)

    @property
    def webhook_url(self) -> str:
        """Where `tidegate serve` receives GitHub's deliveries."""
        return f"http://127.0.0.1:{self.serve_port}/webhooks/github"

    @property
    def kubeconfig(self) -> Path:
        """The control plane's admin kubeconfig."""
        return self.plane.admin_kubeconfig

    @property
    def api_header_file(self) -> Path:
        """A curl header file (`curl -H @FILE`) with the API server's token, owner-only."""
        return self.root / "github-api.header"

    def log_file(self, name: str) -> Path:
        """Where a child process writes its output."""
        return self.root / "logs" / f"{name}.log"

    # -- lifecycle ---------------------------------------------------------------------------

    def start_servers(self) -> None:
        """The git server with an empty fleet repository and the GitHub API server."""
        # The API server's per-request log would drown the story's narration.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self.git.start()
        self.git.create_repo(REPOSITORY)
        self._log(f"git server      {self.clone_url}")
        self._github_server = serve_github(self.github)
        self._github_server.__enter__()
        self.github.repos.setdefault(REPOSITORY, FakeRepo(REPOSITORY))
        # The token goes in a file, never in the output: `curl -H @FILE` reads it from there.
        descriptor = os.open(self.api_header_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as header:
            header.write(f"Authorization: token {self.github.token}\n")
        self._log(f"GitHub API      {self.github.base_url}")

    def start_control_plane(self) -> None:
        """etcd, kube-apiserver, controller-manager, scheduler and kwok."""
        try:
            self.plane.start()
        except TidegateError as exc:
            raise StackError(f"the local control plane did not start: {exc}") from None
        self._log(f"control plane   {self.plane.server} (kubeconfig {self.kubeconfig})")

    def start_serve(self, tools: Mapping[str, Path]) -> None:
        """`tidegate serve` as a GitHub App installation, SQLite under the scratch directory."""
        self.serve_port = free_port()
        env = {
            "TIDEGATE_DATA_DIR": str(self.root / "app"),
            "TIDEGATE_GITHUB_URL": self.github.base_url,
            "TIDEGATE_GITHUB_APP_ID": APP_ID,
            "TIDEGATE_GITHUB_PRIVATE_KEY": self._private_key,
            "TIDEGATE_GITHUB_WEBHOOK_SECRET": self.webhook_secret.decode(),
            "TIDEGATE_KUSTOMIZE": str(tools["kustomize"]),
            "TIDEGATE_HELM": str(tools["helm"]),
        }
        # One gunicorn worker (with its review thread) is plenty for one pull request.
        args = ["serve", "--host", "127.0.0.1", "--port", str(self.serve_port), "--workers", "1"]
        self._spawn("serve", args, env)
        self._wait_http("serve", f"http://127.0.0.1:{self.serve_port}/healthz")
        self._log(f"tidegate serve  http://127.0.0.1:{self.serve_port} (pid {self.pid('serve')})")

    def start_reconcile(self, tools: Mapping[str, Path], predict_repository: Path) -> None:
        """`tidegate reconcile` against the control plane, watching flux-system."""
        health = free_port()
        args = [
            "reconcile",
            "--kubeconfig",
            str(self.kubeconfig),
            "--watch-all-namespaces=false",
            "--artifact-allow-loopback",
            "--notification-allow-loopback",
            "--predict-repository",
            str(predict_repository),
            "--predict-cluster",
            self.cluster,
            "--metrics-addr=127.0.0.1:0",
            f"--health-addr=127.0.0.1:{health}",
            f"--storage-addr=127.0.0.1:{free_port()}",
            "--kustomize",
            str(tools["kustomize"]),
            "--helm",
            str(tools["helm"]),
            "--work-dir",
            str(self.root / "reconciler"),
            "--log-encoding",
            "json",
        ]
        self._spawn("reconcile", args, {"RUNTIME_NAMESPACE": FLUX_NAMESPACE})
        self._wait_http("reconcile", f"http://127.0.0.1:{health}/readyz")
        self._log(f"tidegate reconcile  (pid {self.pid('reconcile')})")

    def connect(self) -> None:
        """A client for the control plane (after `start_control_plane`)."""
        self._api = k8s_config.new_client_from_config(config_file=str(self.kubeconfig))
        self._dynamic = DynamicClient(self._api)

    def apply(self, body: dict[str, Any]) -> None:
        """Server-side apply one object as the `tidegate-demo` field manager."""
        resource = self._dynamic.resources.get(api_version=body["apiVersion"], kind=body["kind"])
        self._dynamic.server_side_apply(
            resource,
            body=body,
            namespace=body["metadata"].get("namespace"),
            field_manager="tidegate-demo",
            force_conflicts=True,
        )

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One live object as a dict, None when it does not exist."""
        resource = self._dynamic.resources.get(api_version=api_version, kind=kind)
        try:
            found = resource.get(name=name, namespace=namespace or None)
        except NotFoundError:
            return None
        return dict(found.to_dict())

    def pid(self, name: str) -> int:
        """A child's process id."""
        return self.children[name].pid

    def check_children(self) -> None:
        """Raise if a child process has died (naming it, with its log)."""
        for name, child in self.children.items():
            code = child.poll()
            if code is not None:
                raise StackError(f"tidegate {name} exited with {code}:\n{self._tail(name)}")

    def stop(self) -> None:
        """Stop children, servers and the control plane; remove the scratch directory."""
        if self._stopped:
            return
        self._stopped = True
        for child in reversed(list(self.children.values())):
            _end(child)
        if self._api is not None:
            self._api.close()
        self.plane.stop()
        if self._github_server is not None:
            self._github_server.__exit__(None, None, None)
        self.git.stop()
        # The reaper ends what the orderly stop missed (a child whose start was interrupted
        # before it was recorded, a grandchild that left its group) and removes the directory.
        os.environ.pop(reaper.MARKER, None)
        _stop_reaper(self._reaper)

    # -- helpers -----------------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str], env: Mapping[str, str]) -> None:
        path = self.log_file(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            # A session of its own: a Ctrl-C in the terminal reaches the demo only, which then
            # stops its children in order.
            self.children[name] = subprocess.Popen(
                [sys.executable, "-m", "cli", *args],
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_http(self, name: str, url: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._checkpoint()
            self.check_children()
            try:
                with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback, http
                    return
            except urllib.error.HTTPError:
                return  # it answers: up
            except OSError:
                time.sleep(0.2)
        raise StackError(f"tidegate {name} did not answer on {url}:\n{self._tail(name)}")

    def _tail(self, name: str) -> str:
        try:
            lines = self.log_file(name).read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-20:])


def _start_reaper() -> tuple[subprocess.Popen[bytes], Path]:
    """Start `devenv.reaper` in its own session; return it and the directory it created."""
    env = {k: v for k, v in os.environ.items() if k != reaper.MARKER}
    process = subprocess.Popen(
        [sys.executable, "-m", "devenv.reaper", str(os.getpid())],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    line = process.stdout.readline().decode().strip() if process.stdout is not None else ""
    if not line:
        _stop_reaper(process)
        raise StackError("the demo's reaper did not start (`python -m devenv.reaper`)")
    return process, Path(line)


def _stop_reaper(process: subprocess.Popen[bytes]) -> None:
    """Close the reaper's pipe: it sweeps and removes the directory; wait until it has."""
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            stream.close()
    process.wait()


def _end(child: subprocess.Popen[bytes]) -> None:
    """SIGTERM the child's whole session, then SIGKILL what is left of it, and reap it."""
    _signal(child, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(_STOP_GRACE)
    # Whatever the child started in its session (renders, git) goes too.
    _signal(child, signal.SIGKILL)
    child.wait()


def _signal(child: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signum)
