"""Tidegate's reconciler beside Flux's kustomize-controller, on one local control plane.

Both controllers run out of cluster against the same control plane, each watching its own
namespace, and are fed the same revision: a GitRepository (suspended, so nothing fetches it)
whose `status.artifact` points at one tarball served on loopback. Three scenarios, each timed
from the change to the moment every Kustomization involved reports Ready for the revision:

1. first apply of one Kustomization of 1,000 ConfigMaps;
2. a no-op reconcile of it (`reconcile.fluxcd.io/requestedAt`, until `lastHandledReconcileAt`);
3. 100 Kustomizations of 10 ConfigMaps each, created at once.

API requests are the apiserver's own `apiserver_request_total` summed before and after (the
control plane's other components add a little to both controllers alike); CPU is the controller
process's user and system time over the scenario, its kustomize children included (for the
first apply, its start-up too), with the load average at the start and the end; peak memory is
the controller process's VmHWM (its kustomize children are not included). Run from the repository
root: `.venv/bin/python -m bench.reconcile_bench [--only tidegate|flux]`. It prints JSON;
nothing asserts a target. kustomize-controller is the pinned tools/kustomize-controller build
(`tidegate dev tools build kustomize-controller`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from devenv import toolchain
from devenv.controlplane import ControlPlane
from reconciler import crds

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
REVISION = "main@sha1:" + "b" * 40
SMALL_SETS = 100


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


def _tree() -> bytes:
    """The artifact: big/ with 1,000 ConfigMaps, small-<i>/ with 10 each."""
    files: dict[str, str] = {}

    def configmaps(prefix: str, count: int) -> str:
        return "---\n".join(
            f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {prefix}-{i}\n"
            f"data:\n  index: '{i}'\n  payload: {'x' * 200}\n"
            for i in range(count)
        )

    files["big/kustomization.yaml"] = "resources: [objects.yaml]\n"
    files["big/objects.yaml"] = configmaps("big", 1000)
    for i in range(SMALL_SETS):
        files[f"small-{i}/kustomization.yaml"] = "resources: [objects.yaml]\n"
        files[f"small-{i}/objects.yaml"] = configmaps(f"small{i}", 10)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in sorted(files.items()):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class Cluster:
    """kubectl against the bench's control plane."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.kubectl = toolchain.binary("kubectl")

    def run(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [str(self.kubectl), f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"kubectl {' '.join(args[:3])} failed: {done.stderr.strip()}")
        return done.stdout

    def apply(self, *docs: dict[str, Any], subresource: str = "") -> None:
        extra = [f"--subresource={subresource}"] if subresource else []
        text = "\n---\n".join(yaml.safe_dump(d) for d in docs)
        self.run("apply", "--server-side", "--field-manager=bench", *extra, "-f", "-", stdin=text)

    def requests(self) -> float:
        text = self.run("get", "--raw", "/metrics")
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("apiserver_request_total{")
        )

    def kustomizations(self, namespace: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = json.loads(
            self.run(
                "get", "kustomizations.kustomize.toolkit.fluxcd.io", "-n", namespace, "-o", "json"
            )
        )["items"]
        return found


def _peer_crds() -> list[dict[str, Any]]:
    """Open-schema CRDs of the source kinds kustomize-controller also watches (not Tidegate)."""
    docs = []
    for kind, plural in (
        ("Bucket", "buckets"),
        ("OCIRepository", "ocirepositories"),
        ("ExternalArtifact", "externalartifacts"),
    ):
        open_object = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        docs.append(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": f"{plural}.source.toolkit.fluxcd.io"},
                "spec": {
                    "group": "source.toolkit.fluxcd.io",
                    "scope": "Namespaced",
                    "names": {
                        "kind": kind,
                        "listKind": f"{kind}List",
                        "plural": plural,
                        "singular": kind.lower(),
                    },
                    "versions": [
                        {
                            "name": version,
                            "served": True,
                            "storage": version == "v1",
                            "subresources": {"status": {}},
                            "schema": {
                                "openAPIV3Schema": {
                                    "type": "object",
                                    "properties": {"spec": open_object, "status": open_object},
                                }
                            },
                        }
                        for version in ("v1", "v1beta2")
                    ],
                },
            }
        )
    return docs


def _kustomization(namespace: str, name: str, path: str, target: str) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "interval": "60m",
            "path": path,
            "prune": True,
            "targetNamespace": target,
            "sourceRef": {"kind": "GitRepository", "name": "bench"},
        },
    }


def _ready_for(obj: dict[str, Any], handled: str | None = None) -> bool:
    status = obj.get("status") or {}
    if status.get("lastAppliedRevision") != REVISION:
        return False
    if handled is not None and status.get("lastHandledReconcileAt") != handled:
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def _wait(check: Callable[[], bool], what: str, timeout: float = 1800.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _controller(
    which: str, cluster: Cluster, namespace: str, work: Path
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RUNTIME_NAMESPACE": namespace, "KUBECONFIG": str(cluster.kubeconfig)}
    common = [
        "--watch-all-namespaces=false",
        "--metrics-addr=127.0.0.1:0",
        "--health-addr=127.0.0.1:0",
    ]
    if which == "tidegate":
        args = [
            sys.executable,
            "-m",
            "cli.main",
            "reconcile",
            f"--kubeconfig={cluster.kubeconfig}",
            *common,
            "--artifact-allow-loopback",
            "--storage-addr=127.0.0.1:0",
            f"--kustomize={toolchain.binary('kustomize')}",
            f"--work-dir={work}",
            "--log-level=error",
        ]
    else:
        args = [
            # It takes its cluster from $KUBECONFIG only.
            str(toolchain.binary("kustomize-controller")),
            *common,
            "--log-level=error",
        ]
    log = (work / "controller.log").open("wb")
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=log)


def _cpu_seconds(pid: int) -> float:
    """The process's CPU time, user and system, its waited-for children (kustomize) included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime, stime, cutime, cstime are fields 14-17 of proc(5); here 11-14 after the name.
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _scenario(
    cluster: Cluster,
    pid: int,
    change: Callable[[], object],
    done: Callable[[], bool],
    what: str,
) -> dict[str, Any]:
    before = cluster.requests()
    load_before = os.getloadavg()[0]
    cpu_before = _cpu_seconds(pid)
    start = time.perf_counter()
    change()
    _wait(done, what)
    wall = time.perf_counter() - start
    cpu = _cpu_seconds(pid) - cpu_before
    after = cluster.requests()
    # The two /metrics reads and the polling reads count too; they are the same for both peers.
    return {
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "api_requests": int(after - before),
        "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
    }


def _run(
    which: str, cluster: Cluster, url: str, digest: str, size: int, work: Path
) -> dict[str, Any]:
    namespace, target = f"flux-{which}", f"apps-{which}"
    cluster.run("create", "namespace", namespace)
    cluster.run("create", "namespace", target)
    source = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": "bench", "namespace": namespace},
        "spec": {"url": "https://git.invalid/bench.git", "interval": "60m", "suspend": True},
    }
    cluster.apply(source)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    source["status"] = {
        "observedGeneration": 1,
        "artifact": {
            "path": "gitrepository/bench/bench.tar.gz",
            "url": url,
            "revision": REVISION,
            "digest": digest,
            "lastUpdateTime": now,
            "size": size,
        },
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Succeeded",
                "message": f"stored artifact for revision '{REVISION}'",
                "lastTransitionTime": now,
                "observedGeneration": 1,
            }
        ],
    }
    cluster.apply(source, subresource="status")
    work.mkdir(parents=True, exist_ok=True)
    process = _controller(which, cluster, namespace, work)
    try:

        def big_ready(handled: str | None = None) -> bool:
            return any(
                k["metadata"]["name"] == "big" and _ready_for(k, handled)
                for k in cluster.kustomizations(namespace)
            )

        report: dict[str, Any] = {}
        report["first_apply_1000"] = _scenario(
            cluster,
            process.pid,
            lambda: cluster.apply(_kustomization(namespace, "big", "./big", target)),
            big_ready,
            f"{which}: the first apply of 1,000 objects",
        )
        stamp = "noop-1"
        report["noop_1000"] = _scenario(
            cluster,
            process.pid,
            lambda: cluster.run(
                "annotate",
                "--overwrite",
                "-n",
                namespace,
                "kustomizations.kustomize.toolkit.fluxcd.io/big",
                f"reconcile.fluxcd.io/requestedAt={stamp}",
            ),
            lambda: big_ready(stamp),
            f"{which}: the no-op reconcile",
        )

        def all_small_ready() -> bool:
            ready = [k for k in cluster.kustomizations(namespace) if k["metadata"]["name"] != "big"]
            return len(ready) == SMALL_SETS and all(_ready_for(k) for k in ready)

        report["first_apply_100x10"] = _scenario(
            cluster,
            process.pid,
            lambda: cluster.apply(
                *(
                    _kustomization(namespace, f"small-{i}", f"./small-{i}", target)
                    for i in range(SMALL_SETS)
                )
            ),
            all_small_ready,
            f"{which}: 100 Kustomizations of 10 objects",
        )
        report["peak_rss_mib"] = round(_peak_rss(process.pid) / 2**20, 1)
        return report
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("tidegate", "flux"), default=None)
    args = parser.parse_args()
    # A timeout's SIGTERM must unwind the `with` below so the control plane is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    peers = [args.only] if args.only else ["flux", "tidegate"]
    tarball = _tree()
    digest = "sha256:" + hashlib.sha256(tarball).hexdigest()
    with tempfile.TemporaryDirectory(prefix="tidegate-bench-") as scratch:
        work = Path(scratch)
        served = work / "served"
        served.mkdir()
        (served / "bench.tar.gz").write_bytes(tarball)
        server = ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(served))
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/bench.tar.gz"
        try:
            with ControlPlane(work / "plane") as plane:
                cluster = Cluster(plane.admin_kubeconfig)
                cluster.apply(*crds.documents(), *_peer_crds())
                cluster.run("wait", "--for=condition=Established", "--timeout=120s", "crd", "--all")
                report = {
                    which: _run(which, cluster, url, digest, len(tarball), work / which)
                    for which in peers
                }
        finally:
            server.shutdown()
    if len(report) == 2:
        report["ratios_tidegate_over_flux"] = {
            scenario: round(
                report["tidegate"][scenario]["wall_seconds"]
                / max(report["flux"][scenario]["wall_seconds"], 1e-9),
                2,
            )
            for scenario in ("first_apply_1000", "noop_1000", "first_apply_100x10")
        } | {
            "peak_rss": round(
                report["tidegate"]["peak_rss_mib"] / max(report["flux"]["peak_rss_mib"], 1e-9), 2
            )
        }
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
