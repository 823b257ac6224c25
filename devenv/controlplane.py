"""A real, local Kubernetes control plane for development and tests.

`ControlPlane` runs the pinned etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
kwok (which plays the kubelets of fake Nodes) on free loopback ports, with every file in one state
directory. Each component has its own client certificate and RBAC identity, as in a real cluster;
the apiserver authorises with RBAC, so identities minted here are denied what RBAC does not grant.
The same code backs the detached developer cluster of `tidegate dev cluster up/down/env/status`.

It must not listen on anything but 127.0.0.1, touch a kubeconfig outside its state directory, or
be used for anything but throwaway clusters: etcd speaks plain HTTP on loopback and skips fsync.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode

import yaml

from core.errors import TidegateError
from devenv import pki, toolchain
from devenv.filelock import exclusive
from devenv.ports import START_ATTEMPTS, port_taken

__all__ = [
    "CONTROLLERS",
    "FAKE_NODE_ANNOTATION",
    "ClusterStatus",
    "ControlPlane",
    "ControlPlaneError",
    "Ports",
    "cluster_dir",
    "clusters_root",
    "down",
    "env_script",
    "status",
    "up",
]

# kwok manages only Nodes carrying this annotation, so it never touches a real kubelet's Node.
FAKE_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")

# What workloads, namespaces, owner references and ServiceAccounts need to behave as in a real
# cluster. clusterrole-aggregation fills the built-in admin/edit/view roles (empty otherwise);
# root-ca-certificate-publisher provides kube-root-ca.crt for projected token volumes.
CONTROLLERS = (
    "namespace-controller",
    "garbage-collector-controller",
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
    "daemonset-controller",
    "job-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",
    "endpointslice-controller",
)

SERVICE_CIDR = "10.0.0.0/24"
POD_CIDR = "10.0.1.0/24"
_ISSUER = "https://kubernetes.default.svc.cluster.local"
_LOOPBACK = "127.0.0.1"
_STATE_FILE = "state.json"
_LOG_TAIL_LINES = 40
_POLL_SECONDS = 0.25
_PROBE_TIMEOUT = 5.0


class ControlPlaneError(TidegateError):
    """A control plane component failed to start, died, or could not be reached."""


@dataclass(frozen=True)
class Ports:
    """The loopback ports the components listen on."""

    etcd: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int

    @classmethod
    def allocate(cls) -> Ports:
        """Pick six distinct free loopback ports."""
        # Hold every socket open until all are chosen, so the kernel cannot hand one out twice.
        with contextlib.ExitStack() as stack:
            sockets = [stack.enter_context(socket.socket()) for _ in range(6)]
            for sock in sockets:
                sock.bind((_LOOPBACK, 0))
            return cls(*(sock.getsockname()[1] for sock in sockets))


@dataclass
class _Component:
    """One running process: its own process group, so stopping it stops its children too."""

    name: str
    pid: int
    start_time: str
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        # A recorded pid may have been reused by an unrelated process: compare start times.
        return _process_start_time(self.pid) == self.start_time

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def describe_failure(self, problem: str) -> str:
        return f"{self.name} {problem}; last lines of {self.log}:\n{_tail(self.log)}"


@dataclass(frozen=True)
class ClusterStatus:
    """What `status` found for a detached cluster."""

    name: str
    state_dir: Path
    running: dict[str, bool]
    ready: bool
    server: str
    admin_kubeconfig: Path

    @property
    def up(self) -> bool:
        """True when every component runs and the apiserver is ready."""
        return self.ready and all(self.running.values())


class ControlPlane:
    """etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok on loopback.

    Use it as a context manager, or call `start` and `stop`. Everything lives in `state_dir`:
    `pki/`, `etcd/`, `logs/<component>.log`, `kubeconfigs/` and `admin.kubeconfig`.
    """

    def __init__(self, state_dir: Path, *, fake_nodes: int = 2, timeout: float = 300.0) -> None:
        """Prepare a control plane; nothing runs until `start`.

        Args:
            state_dir: Directory for certificates, data, logs and kubeconfigs (created if missing).
            fake_nodes: How many kwok-managed Nodes to create so Pods get scheduled.
            timeout: Seconds each component may take to become ready.
        """
        self.state_dir = state_dir.resolve()
        self.fake_nodes = fake_nodes
        self.timeout = timeout
        self._ports: Ports | None = None
        self._components: dict[str, _Component] = {}
        self._ca: pki.CertificateAuthority | None = None
        self._tls_context: ssl.SSLContext | None = None

    # -- public surface --------------------------------------------------------------------

    @property
    def ports(self) -> Ports:
        """The ports in use (only after `start`)."""
        if self._ports is None:
            raise ControlPlaneError("the control plane has not been started")
        return self._ports

    @property
    def server(self) -> str:
        """The apiserver URL."""
        return f"https://{_LOOPBACK}:{self.ports.apiserver}"

    @property
    def admin_kubeconfig(self) -> Path:
        """A kubeconfig for a `system:masters` user."""
        return self.state_dir / "admin.kubeconfig"

    @property
    def ca_cert(self) -> Path:
        """The CA certificate that signed the apiserver's serving certificate."""
        return self._pki_dir / "ca.crt"

    @property
    def pids(self) -> dict[str, int]:
        """Process ids of the running components, by component name."""
        return {name: component.pid for name, component in self._components.items()}

    def start(self) -> None:
        """Start every component and wait until the cluster can run Pods.

        A component that cannot listen because another process took its port after the ports
        were chosen costs one more try on new ports (at most `START_ATTEMPTS` in all).

        Raises:
            ControlPlaneError: naming the component that died or never became ready, with the
                tail of its log. Whatever was started is stopped again.
        """
        if self._components:
            raise ControlPlaneError(f"the control plane in {self.state_dir} is already running")
        # A port another process took between choosing and binding it costs one more try.
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self._prepare()
                self._start_etcd()
                self._start_apiserver()
                self._start_controllers()
                return
            except ControlPlaneError as exc:
                self.stop()
                if attempt == START_ATTEMPTS or not port_taken(str(exc)):
                    raise
            except BaseException:
                self.stop()
                raise

    def stop(self) -> None:
        """Stop every component (whole process groups); safe to call more than once."""
        components = list(reversed(self._components.values()))
        for component in components:
            _signal_group(component, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for component in components:
            if not _wait_exit(component, deadline):
                _signal_group(component, signal.SIGKILL)
                _wait_exit(component, time.monotonic() + 5)
        self._components.clear()
        # The state file describes running processes; keeping it would mislead `status`.
        (self.state_dir / _STATE_FILE).unlink(missing_ok=True)

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def client_kubeconfig(self, user: str, groups: Sequence[str] = ()) -> Path:
        """Write a kubeconfig that authenticates as `user` in `groups` with a client cert."""
        pair = self._authority().client(user, groups)
        return self._write_cert_kubeconfig(_file_stem(user, *groups), user, pair)

    def service_account_kubeconfig(
        self, namespace: str, name: str, *, create: bool = True, expiration_seconds: int = 3600
    ) -> Path:
        """Write a kubeconfig holding a TokenRequest token of a ServiceAccount.

        Args:
            namespace: The ServiceAccount's namespace (must exist).
            name: The ServiceAccount's name.
            create: Create the ServiceAccount first if it does not exist.
            expiration_seconds: Requested token lifetime (the apiserver's minimum is 600).
        """
        accounts = f"/api/v1/namespaces/{quote(namespace, safe='')}/serviceaccounts"
        if create:
            self._create(accounts, {"metadata": {"name": name}})
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": expiration_seconds},
        }
        token = self._call("POST", f"{accounts}/{quote(name, safe='')}/token", request, (201,))
        user = f"system:serviceaccount:{namespace}:{name}"
        return self._write_kubeconfig(_file_stem(user), user, {"token": token["status"]["token"]})

    def restart_apiserver(self) -> None:
        """Stop kube-apiserver and start it again on the same port and etcd, as a restart does.

        Every open connection and watch is cut; clients must reconnect. Returns once the new
        apiserver answers /readyz.
        """
        component = self._components.pop("kube-apiserver", None)
        if component is None:
            raise ControlPlaneError("the control plane has no running kube-apiserver")
        _signal_group(component, signal.SIGTERM)
        if not _wait_exit(component, time.monotonic() + 20):
            _signal_group(component, signal.SIGKILL)
            _wait_exit(component, time.monotonic() + 5)
        self._start_apiserver()

    def memory(self) -> dict[str, int]:
        """Resident memory (bytes) of each running component, from /proc."""
        return {name: _rss_bytes(component.pid) for name, component in self._components.items()}

    @classmethod
    def attach(cls, state_dir: Path) -> ControlPlane:
        """Return a handle on a control plane started by another process (detached mode).

        Raises:
            ControlPlaneError: when `state_dir` holds no state file.
        """
        state_file = state_dir / _STATE_FILE
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError) as exc:
            raise ControlPlaneError(f"no control plane state in {state_dir}: {exc}") from exc
        plane = cls(state_dir, fake_nodes=state["fake_nodes"])
        plane._ports = Ports(**state["ports"])
        for name, entry in state["components"].items():
            plane._components[name] = _Component(
                name, entry["pid"], entry["start_time"], Path(entry["log"])
            )
        return plane

    def running(self) -> dict[str, bool]:
        """Whether each recorded component process is still running."""
        return {name: component.alive() for name, component in self._components.items()}

    def ready(self) -> bool:
        """Whether the apiserver answers /readyz with 200 right now."""
        return self._get_status(self.ports.apiserver, "/readyz") == 200

    # -- start-up steps --------------------------------------------------------------------

    @property
    def _pki_dir(self) -> Path:
        return self.state_dir / "pki"

    @property
    def _logs_dir(self) -> Path:
        return self.state_dir / "logs"

    def _prepare(self) -> None:
        # Stale data from an earlier run would give etcd another cluster's objects.
        for stale in ("etcd", "logs", "kubeconfigs", _STATE_FILE):
            path = self.state_dir / stale
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        for directory in (self.state_dir, self._pki_dir, self._logs_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self._ports = Ports.allocate()
        self._ca = pki.CertificateAuthority.create()
        self._tls_context = None
        self._ca.write(self._pki_dir)
        self._ca.apiserver().write(self._pki_dir, "apiserver")
        pki.write_service_account_keys(self._pki_dir)
        for stem in ("controller-manager", "scheduler"):
            self._ca.serving(stem, dns_names=["localhost"], ips=[_LOOPBACK]).write(
                self._pki_dir, f"{stem}-serving"
            )
        self._write_component_kubeconfigs()

    def _write_component_kubeconfigs(self) -> None:
        # Real clusters' identities: the built-in RBAC bindings grant each exactly its duties.
        identities = {
            "controller-manager": ("system:kube-controller-manager", ()),
            "scheduler": ("system:kube-scheduler", ()),
            # kwok stands in for kubelets and their node authorizer, which RBAC cannot express.
            "kwok": ("tidegate:kwok", ("system:masters",)),
        }
        authority = self._authority()
        for component, (user, groups) in identities.items():
            self._write_cert_kubeconfig(component, user, authority.client(user, groups))
        admin = authority.client("tidegate-admin", ["system:masters"])
        # The readiness probes authenticate with the admin pair from these files.
        admin.write(self._pki_dir, "admin")
        self._write_cert_kubeconfig("admin", "tidegate-admin", admin).replace(self.admin_kubeconfig)

    def _start_etcd(self) -> None:
        ports = self.ports
        client_url = f"http://{_LOOPBACK}:{ports.etcd}"
        peer_url = f"http://{_LOOPBACK}:{ports.etcd_peer}"
        component = self._spawn(
            "etcd",
            [
                "--name=default",
                f"--data-dir={self.state_dir / 'etcd'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                # Throwaway data: durability costs seconds per start on slow disks.
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        self._wait(component, "did not report healthy on /health", self._etcd_healthy)

    def _start_apiserver(self) -> None:
        pki_dir, ports = self._pki_dir, self.ports
        component = self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers=http://{_LOOPBACK}:{ports.etcd}",
                f"--bind-address={_LOOPBACK}",
                f"--secure-port={ports.apiserver}",
                # Without a default route the apiserver cannot pick an address and exits.
                f"--advertise-address={_LOOPBACK}",
                # A loopback address is invalid in the `kubernetes` Endpoints; keep it out.
                "--endpoint-reconciler-type=none",
                f"--tls-cert-file={pki_dir / 'apiserver.crt'}",
                f"--tls-private-key-file={pki_dir / 'apiserver.key'}",
                f"--client-ca-file={pki_dir / 'ca.crt'}",
                "--authorization-mode=RBAC",
                f"--service-account-issuer={_ISSUER}",
                f"--service-account-key-file={pki_dir / 'sa.pub'}",
                f"--service-account-signing-key-file={pki_dir / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                # ServiceAccount admission stays on: the controller-manager creates the `default`
                # ServiceAccounts it needs. TaintNodesByCondition would taint every new Node
                # not-ready, and only the node lifecycle controller (not run here) lifts it.
                "--disable-admission-plugins=TaintNodesByCondition",
                "--profiling=false",
            ],
        )
        self._wait(component, "did not become ready on /readyz", self.ready)

    def _start_controllers(self) -> None:
        manager = self._spawn("kube-controller-manager", self._controller_manager_args())
        scheduler = self._spawn("kube-scheduler", self._scheduler_args())
        kwok = self._spawn("kwok", self._kwok_args())
        self._create_fake_nodes()
        ports = self.ports
        self._wait(
            manager,
            "did not become healthy on /healthz",
            lambda: self._get_status(ports.controller_manager, "/healthz") == 200,
        )
        self._wait(
            scheduler,
            "did not become healthy on /healthz",
            lambda: self._get_status(ports.scheduler, "/healthz") == 200,
        )
        self._wait(kwok, "did not make the fake Nodes Ready", self._nodes_ready)
        self._wait(
            manager,
            "did not create the `default` ServiceAccount",
            self._default_service_account_exists,
        )

    def _controller_manager_args(self) -> list[str]:
        kubeconfig = self.state_dir / "kubeconfigs" / "controller-manager.kubeconfig"
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--controllers={','.join(CONTROLLERS)}",
            # Each controller acts as its own ServiceAccount with its built-in role, as in
            # real clusters, so RBAC gaps show up here and not first in production.
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={self._pki_dir / 'sa.key'}",
            f"--root-ca-file={self._pki_dir / 'ca.crt'}",
            "--leader-elect=false",
            *self._serving_args("controller-manager", self.ports.controller_manager),
        ]

    def _scheduler_args(self) -> list[str]:
        kubeconfig = self.state_dir / "kubeconfigs" / "scheduler.kubeconfig"
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--leader-elect=false",
            *self._serving_args("scheduler", self.ports.scheduler),
        ]

    def _serving_args(self, stem: str, port: int) -> list[str]:
        return [
            f"--bind-address={_LOOPBACK}",
            f"--secure-port={port}",
            f"--tls-cert-file={self._pki_dir / f'{stem}-serving.crt'}",
            f"--tls-private-key-file={self._pki_dir / f'{stem}-serving.key'}",
        ]

    def _kwok_args(self) -> list[str]:
        key, value = FAKE_NODE_ANNOTATION
        config = self.state_dir / "kwok.yaml"
        # An explicit (empty) config keeps a developer's ~/.kwok/kwok.yaml out of the cluster.
        config.write_text("")
        return [
            f"--kubeconfig={self.state_dir / 'kubeconfigs' / 'kwok.kubeconfig'}",
            f"--config={config}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={key}={value}",
            f"--cidr={POD_CIDR}",
            "--node-ip=10.0.2.1",
            "--node-lease-duration-seconds=40",
            f"--server-address={_LOOPBACK}:{self.ports.kwok}",
        ]

    def _create_fake_nodes(self) -> None:
        for index in range(self.fake_nodes):
            self._create("/api/v1/nodes", _fake_node(f"kwok-node-{index}"))

    # -- readiness probes ------------------------------------------------------------------

    def _etcd_healthy(self) -> bool:
        connection = http.client.HTTPConnection(_LOOPBACK, self.ports.etcd, timeout=5)
        try:
            connection.request("GET", "/health")
            response = connection.getresponse()
            body = response.read()
        except OSError:
            return False
        finally:
            connection.close()
        return response.status == 200 and json.loads(body).get("health") == "true"

    def _nodes_ready(self) -> bool:
        query = urlencode({"labelSelector": "type=kwok"})
        nodes = self._call("GET", f"/api/v1/nodes?{query}")["items"]
        return len(nodes) >= self.fake_nodes and all(_node_ready(node) for node in nodes)

    def _default_service_account_exists(self) -> bool:
        path = "/api/v1/namespaces/default/serviceaccounts/default"
        return self._get_status(self.ports.apiserver, path) == 200

    # -- talking to the apiserver ----------------------------------------------------------
    # Plain HTTPS with the admin certificate: the few calls made here do not justify the
    # Python client, which would also pull the client library into the command line.

    def _tls(self) -> ssl.SSLContext:
        if self._tls_context is None:
            context = ssl.create_default_context(cafile=str(self.ca_cert))
            context.load_cert_chain(self._pki_dir / "admin.crt", self._pki_dir / "admin.key")
            self._tls_context = context
        return self._tls_context

    def _request(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        port: int | None = None,
        timeout: float = 30.0,
    ) -> tuple[int, bytes]:
        headers = {"Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        connection = http.client.HTTPSConnection(
            _LOOPBACK, port or self.ports.apiserver, timeout=timeout, context=self._tls()
        )
        try:
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def _get_status(self, port: int, path: str) -> int:
        # Short: a probe that hangs must not delay noticing that a component has died.
        return self._request("GET", path, port=port, timeout=_PROBE_TIMEOUT)[0]

    def _call(
        self, method: str, path: str, body: object = None, expect: Collection[int] = (200,)
    ) -> Any:
        status_code, data = self._request(method, path, body)
        if status_code not in expect:
            raise ControlPlaneError(
                f"{method} {path} answered {status_code}: {data.decode(errors='replace')[:2000]}"
            )
        return json.loads(data)

    def _create(self, collection: str, body: dict[str, Any]) -> None:
        """Create an object; one that already exists is left as it is."""
        self._call("POST", collection, body, (201, 409))

    # -- process handling ------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str]) -> _Component:
        executable = toolchain.binary(name)
        log = self._logs_dir / f"{name}.log"
        with log.open("ab") as output:
            # A new session per component: stop() signals its whole group, and a terminal's
            # Ctrl-C does not reach a detached cluster.
            process = subprocess.Popen(
                [str(executable), *args],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=self.state_dir,
                env=_component_env(),
                start_new_session=True,
            )
        component = _Component(name, process.pid, _process_start_time(process.pid), log, process)
        self._components[name] = component
        # Recorded at once, so a start killed half-way leaves what `down` needs to clean up.
        self._write_state()
        return component

    def _wait(self, component: _Component, problem: str, ready: Callable[[], bool]) -> None:
        """Poll `ready` until true; fail naming whichever component died, or `component`."""
        deadline = time.monotonic() + self.timeout
        while True:
            for other in self._components.values():
                code = other.exit_code()
                if code is not None:
                    raise ControlPlaneError(other.describe_failure(f"exited with code {code}"))
            if _probe(ready):
                return
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    component.describe_failure(f"{problem} within {self.timeout:.0f}s")
                )
            time.sleep(_POLL_SECONDS)

    def _write_state(self) -> None:
        state = {
            "server": self.server,
            "fake_nodes": self.fake_nodes,
            "ports": asdict(self.ports),
            "admin_kubeconfig": str(self.admin_kubeconfig),
            "components": {
                name: {"pid": c.pid, "start_time": c.start_time, "log": str(c.log)}
                for name, c in self._components.items()
            },
        }
        (self.state_dir / _STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")

    # -- identities ------------------------------------------------------------------------

    def _authority(self) -> pki.CertificateAuthority:
        if self._ca is None:
            self._ca = pki.CertificateAuthority.load(self.ca_cert, self._pki_dir / "ca.key")
        return self._ca

    def _write_cert_kubeconfig(self, stem: str, user: str, pair: pki.KeyPair) -> Path:
        user_entry = {
            "client-certificate-data": _b64(pair.cert_pem),
            "client-key-data": _b64(pair.key_pem),
        }
        return self._write_kubeconfig(stem, user, user_entry)

    def _write_kubeconfig(self, stem: str, user: str, user_entry: dict[str, str]) -> Path:
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "tidegate",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": _b64(self.ca_cert.read_bytes()),
                    },
                }
            ],
            "users": [{"name": user, "user": user_entry}],
            "contexts": [{"name": "tidegate", "context": {"cluster": "tidegate", "user": user}}],
            "current-context": "tidegate",
        }
        directory = self.state_dir / "kubeconfigs"
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{stem}.kubeconfig"
        path.touch(mode=0o600)
        path.write_text(yaml.safe_dump(kubeconfig, sort_keys=False))
        return path


# -- helpers ---------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _file_stem(user: str, *groups: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", user)[:60]
    digest = hashlib.sha256("\n".join((user, *groups)).encode()).hexdigest()[:8]
    return f"{readable}-{digest}"


def _component_env() -> dict[str, str]:
    env = dict(os.environ)
    # Components get explicit kubeconfigs; an inherited one must not leak into them.
    env.pop("KUBECONFIG", None)
    return env


def _fake_node(name: str) -> dict[str, Any]:
    key, value = FAKE_NODE_ANNOTATION
    resources = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {key: value},
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
            },
        },
        "status": {"capacity": resources, "allocatable": resources},
    }


def _node_ready(node: dict[str, Any]) -> bool:
    conditions = node.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _probe(ready: Callable[[], bool]) -> bool:
    # While a component starts, its clients see refused connections, 403s during RBAC
    # bootstrap and 5xx: all mean "not yet".
    try:
        return ready()
    except (OSError, ValueError, ControlPlaneError):
        return False


def _tail(log: Path) -> str:
    try:
        with log.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 16384))
            text = handle.read().decode(errors="replace")
    except OSError as exc:
        return f"(log unreadable: {exc})"
    return "\n".join(text.splitlines()[-_LOG_TAIL_LINES:]) or "(log is empty)"


def _process_start_time(pid: int) -> str:
    """The process start time in clock ticks since boot ("" when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # Field 22; split after the command name, which may itself contain spaces or parentheses.
    fields = stat.rsplit(")", 1)[1].split()
    state, start_time = fields[0], fields[19]
    return "" if state == "Z" else start_time


def _rss_bytes(pid: int) -> int:
    try:
        status_text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmRSS:\s+(\d+) kB", status_text, flags=re.MULTILINE)
    return int(match.group(1)) * 1024 if match else 0


def _signal_group(component: _Component, sig: signal.Signals) -> None:
    if not component.alive():
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(component.pid, sig)


def _wait_exit(component: _Component, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if component.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                component.process.wait(timeout=max(0.0, deadline - time.monotonic()))
                return True
        elif not component.alive():
            return True
        else:
            time.sleep(0.1)
    return not component.alive()


# -- detached clusters (`tidegate dev cluster ...`) ------------------------------------------


def clusters_root() -> Path:
    """Where detached clusters live: `$TIDEGATE_CLUSTERS_DIR`, else `<cache>/cluster`."""
    explicit = os.environ.get("TIDEGATE_CLUSTERS_DIR")
    return Path(explicit) if explicit else toolchain.cache_root() / "cluster"


def cluster_dir(name: str, root: Path | None = None) -> Path:
    """The state directory of the detached cluster `name`."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", name):
        raise ControlPlaneError(
            f"invalid cluster name {name!r}: use letters, digits, '.', '_' and '-'"
        )
    return (root or clusters_root()) / name


@contextlib.contextmanager
def _locked(name: str, root: Path | None) -> Iterator[Path]:
    directory = cluster_dir(name, root)
    # Two `up`s of one name at once would start two clusters over one etcd directory.
    with exclusive(directory.parent / f".{name}.lock"):
        yield directory


def status(name: str, root: Path | None = None) -> ClusterStatus | None:
    """Describe the detached cluster `name`, or return None when it has no state."""
    directory = cluster_dir(name, root)
    if not (directory / _STATE_FILE).is_file():
        return None
    plane = ControlPlane.attach(directory)
    return ClusterStatus(
        name=name,
        state_dir=directory,
        running=plane.running(),
        ready=_probe(plane.ready),
        server=plane.server,
        admin_kubeconfig=plane.admin_kubeconfig,
    )


def up(
    name: str, root: Path | None = None, *, timeout: float = 300.0
) -> tuple[ClusterStatus, bool]:
    """Start the detached cluster `name` unless it is already up.

    Returns:
        Its status, and whether this call started it.
    """
    with _locked(name, root) as directory:
        found = status(name, root)
        if found is not None and found.up:
            return found, False
        if found is not None:
            # Leftovers of a crashed or half-stopped cluster: clear them before starting anew.
            ControlPlane.attach(directory).stop()
        plane = ControlPlane(directory, timeout=timeout)
        plane.start()
    started = status(name, root)
    if started is None:
        raise ControlPlaneError(f"{directory} lost its state file while starting")
    return started, True


def down(name: str, root: Path | None = None) -> bool:
    """Stop the detached cluster `name` and remove its state; False when there was none."""
    with _locked(name, root) as directory:
        if not directory.exists():
            return False
        if (directory / _STATE_FILE).is_file():
            ControlPlane.attach(directory).stop()
        shutil.rmtree(directory)
        return True


def env_script(found: ClusterStatus) -> str:
    """Shell lines that point kubectl at a detached cluster."""
    return f"export KUBECONFIG={shlex.quote(str(found.admin_kubeconfig))}\n"
