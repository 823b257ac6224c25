"""`tidegate get|suspend|resume|reconcile` against Flux objects on the real control plane.

A thread plays the controller by patching status the way kustomize-controller and
source-controller do (lastHandledReconcileAt, observedGeneration, Ready), so the verbs are proven
against the same wire contract Flux's own CLI relies on.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from kubernetes import client as k8s

from cli.main import main
from tests.cluster.fluxcrds import install_flux_crds

pytestmark = pytest.mark.cluster

KS = ("kustomize.toolkit.fluxcd.io", "v1", "kustomizations")
GIT = ("source.toolkit.fluxcd.io", "v1", "gitrepositories")
REVISION = "main@sha1:0123456789abcdef0123456789abcdef01234567"
REQUESTED = "reconcile.fluxcd.io/requestedAt"


@pytest.fixture(scope="module")
def flux_crds(dynamic_client: Any) -> None:
    install_flux_crds(dynamic_client)


@pytest.fixture
def objects(kube_client: Any, flux_crds: None) -> k8s.CustomObjectsApi:
    return k8s.CustomObjectsApi(kube_client)


def _create(
    api: Any, kind: tuple[str, str, str], namespace: str, name: str, spec: dict[str, Any]
) -> None:
    group, version, plural = kind
    body = {
        "apiVersion": f"{group}/{version}",
        "kind": "Kustomization" if plural == "kustomizations" else "GitRepository",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    api.create_namespaced_custom_object(group, version, namespace, plural, body)


def _status(
    api: Any, kind: tuple[str, str, str], namespace: str, name: str, status: dict[str, Any]
) -> None:
    group, version, plural = kind
    api.patch_namespaced_custom_object_status(
        group, version, namespace, plural, name, {"status": status}
    )


def _ready(
    status: str, message: str, generation: int, reason: str = "ReconciliationSucceeded"
) -> dict[str, Any]:
    return {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }


class Controller:
    """Handles requestedAt and new generations of the named objects like Flux's controllers."""

    def __init__(self, api: Any, namespace: str, *, fail: bool = False) -> None:
        self.api, self.namespace, self.fail = api, namespace, fail
        self.watched: list[tuple[tuple[str, str, str], str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def watch(self, kind: tuple[str, str, str], name: str) -> Controller:
        self.watched.append((kind, name))
        return self

    def __enter__(self) -> Controller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            for kind, name in self.watched:
                self._handle(kind, name)
            time.sleep(0.2)

    def _handle(self, kind: tuple[str, str, str], name: str) -> None:
        group, version, plural = kind
        obj = self.api.get_namespaced_custom_object(group, version, self.namespace, plural, name)
        status = obj.get("status") or {}
        generation = obj["metadata"]["generation"]
        requested = (obj["metadata"].get("annotations") or {}).get(REQUESTED)
        if obj["spec"].get("suspend"):
            return
        if (
            status.get("observedGeneration") == generation
            and status.get("lastHandledReconcileAt") == requested
        ):
            return
        new: dict[str, Any] = {
            "observedGeneration": generation,
            "lastHandledReconcileAt": requested,
        }
        if self.fail:
            new["conditions"] = [
                _ready("False", "kustomize build failed: boom", generation, "BuildFailed")
            ]
        elif plural == "kustomizations":
            new["lastAppliedRevision"] = REVISION
            new["conditions"] = [_ready("True", f"Applied revision: {REVISION}", generation)]
        else:
            new["artifact"] = {"revision": REVISION}
            new["conditions"] = [
                _ready(
                    "True", f"stored artifact for revision '{REVISION}'", generation, "Succeeded"
                )
            ]
        _status(self.api, kind, self.namespace, name, new)


@pytest.fixture
def ks_and_source(objects: Any, namespace: str) -> Any:
    _create(
        objects, GIT, namespace, "fleet", {"url": "https://git.example/fleet", "interval": "1m"}
    )
    _create(
        objects,
        KS,
        namespace,
        "apps",
        {
            "interval": "10m",
            "path": "./apps",
            "prune": True,
            "sourceRef": {"kind": "GitRepository", "name": "fleet"},
        },
    )
    return objects


def _run(capsys: Any, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_get_prints_flux_columns_and_waiting_for_unreconciled(
    objects: Any, namespace: str, capsys: Any
) -> None:
    _create(
        objects,
        KS,
        namespace,
        "apps",
        {"path": "./apps", "sourceRef": {"kind": "GitRepository", "name": "f"}},
    )
    _create(
        objects,
        KS,
        namespace,
        "infra",
        {"path": "./infra", "suspend": True, "sourceRef": {"kind": "GitRepository", "name": "f"}},
    )
    _status(
        objects,
        KS,
        namespace,
        "infra",
        {"lastAppliedRevision": REVISION, "conditions": [_ready("True", "Applied revision: x", 1)]},
    )

    code, out, _ = _run(capsys, "get", "ks", "-n", namespace, "--kubeconfig", _kubeconfig(objects))

    assert code == 0
    rows = [line.split("\t") for line in out.splitlines()]
    assert [cell.strip() for cell in rows[0]] == [
        "NAME",
        "REVISION",
        "SUSPENDED",
        "READY",
        "MESSAGE",
    ]
    assert [cell.strip() for cell in rows[1]] == [
        "apps",
        "",
        "False",
        "False",
        "waiting to be reconciled",
    ]
    assert [cell.strip() for cell in rows[2]] == [
        "infra",
        "main@sha1:01234567",
        "True",
        "True",
        "Applied revision: x",
    ]


def test_get_all_namespaces_adds_the_namespace_column_and_sources_show_the_artifact(
    objects: Any, namespace: str, capsys: Any
) -> None:
    _create(objects, GIT, namespace, "fleet", {"url": "https://git.example/fleet"})
    _status(
        objects,
        GIT,
        namespace,
        "fleet",
        {"artifact": {"revision": REVISION}, "conditions": [_ready("True", "stored", 1)]},
    )

    code, out, _ = _run(capsys, "get", "sources", "git", "-A", "--kubeconfig", _kubeconfig(objects))

    assert code == 0
    header = [cell.strip() for cell in out.splitlines()[0].split("\t")]
    assert header[:2] == ["NAMESPACE", "NAME"]
    mine = [line for line in out.splitlines() if line.startswith(namespace)]
    assert [cell.strip() for cell in mine[0].split("\t")] == [
        namespace,
        "fleet",
        "main@sha1:01234567",
        "False",
        "True",
        "stored",
    ]


def test_get_in_an_empty_namespace_says_so(objects: Any, namespace: str, capsys: Any) -> None:
    code, out, err = _run(
        capsys, "get", "ks", "-n", namespace, "--kubeconfig", _kubeconfig(objects)
    )
    assert (code, out) == (0, "")
    assert f"no Kustomization objects found in {namespace} namespace" in err


def test_suspend_sets_spec_suspend_and_reconcile_then_refuses(
    ks_and_source: Any, namespace: str, capsys: Any
) -> None:
    code, out, _ = _run(
        capsys, "suspend", "ks", "apps", "-n", namespace, "--kubeconfig", _kubeconfig(ks_and_source)
    )
    assert code == 0
    assert "kustomization suspended" in out
    live = ks_and_source.get_namespaced_custom_object(*KS[:2], namespace, KS[2], "apps")
    assert live["spec"]["suspend"] is True
    assert REQUESTED not in (live["metadata"].get("annotations") or {})

    code, _, err = _run(
        capsys,
        "reconcile",
        "ks",
        "apps",
        "-n",
        namespace,
        "--kubeconfig",
        _kubeconfig(ks_and_source),
    )
    assert code == 1
    assert "resource is suspended" in err


def test_resume_waits_for_the_new_generation_to_be_ready(
    ks_and_source: Any, namespace: str, capsys: Any
) -> None:
    kubeconfig = _kubeconfig(ks_and_source)
    assert (
        _run(capsys, "suspend", "ks", "apps", "-n", namespace, "--kubeconfig", kubeconfig)[0] == 0
    )
    with Controller(ks_and_source, namespace).watch(KS, "apps"):
        code, out, err = _run(
            capsys, "resume", "ks", "apps", "-n", namespace, "--kubeconfig", kubeconfig
        )
    assert (code, err) == (0, "")
    assert f"applied revision {REVISION}" in out
    live = ks_and_source.get_namespaced_custom_object(*KS[:2], namespace, KS[2], "apps")
    assert live["spec"]["suspend"] is False
    assert live["status"]["observedGeneration"] == live["metadata"]["generation"]


def test_reconcile_with_source_annotates_both_and_waits_for_each(
    ks_and_source: Any, namespace: str, capsys: Any
) -> None:
    with Controller(ks_and_source, namespace).watch(GIT, "fleet").watch(KS, "apps"):
        code, out, err = _run(
            capsys,
            "reconcile",
            "ks",
            "apps",
            "--with-source",
            "-n",
            namespace,
            "--kubeconfig",
            _kubeconfig(ks_and_source),
        )
    assert (code, err) == (0, "")
    assert out.index(f"fetched revision {REVISION}") < out.index(f"applied revision {REVISION}")
    for kind, name in ((GIT, "fleet"), (KS, "apps")):
        live = ks_and_source.get_namespaced_custom_object(*kind[:2], namespace, kind[2], name)
        requested = live["metadata"]["annotations"][REQUESTED]
        assert live["status"]["lastHandledReconcileAt"] == requested
        assert requested.endswith("Z")


def test_reconcile_source_git_alone(ks_and_source: Any, namespace: str, capsys: Any) -> None:
    with Controller(ks_and_source, namespace).watch(GIT, "fleet"):
        code, out, _ = _run(
            capsys,
            "reconcile",
            "source",
            "git",
            "fleet",
            "-n",
            namespace,
            "--kubeconfig",
            _kubeconfig(ks_and_source),
        )
    assert code == 0
    assert f"fetched revision {REVISION}" in out


def test_reconcile_reports_the_ready_message_when_the_run_fails(
    ks_and_source: Any, namespace: str, capsys: Any
) -> None:
    with Controller(ks_and_source, namespace, fail=True).watch(KS, "apps"):
        code, _, err = _run(
            capsys,
            "reconcile",
            "ks",
            "apps",
            "-n",
            namespace,
            "--kubeconfig",
            _kubeconfig(ks_and_source),
        )
    assert code == 1
    assert "Kustomization reconciliation failed: kustomize build failed: boom" in err


def test_reconcile_times_out_when_nothing_handles_the_request(
    ks_and_source: Any, namespace: str, capsys: Any
) -> None:
    code, _, err = _run(
        capsys,
        "reconcile",
        "ks",
        "apps",
        "-n",
        namespace,
        "--timeout",
        "1s",
        "--kubeconfig",
        _kubeconfig(ks_and_source),
    )
    assert code == 1
    assert f"timed out waiting for Kustomization {namespace}/apps to be reconciled" in err


def test_a_missing_object_is_a_one_line_error(objects: Any, namespace: str, capsys: Any) -> None:
    code, out, err = _run(
        capsys, "suspend", "ks", "nope", "-n", namespace, "--kubeconfig", _kubeconfig(objects)
    )
    assert code == 1
    assert err.strip() == f"✗ Kustomization {namespace}/nope not found"
    assert "Traceback" not in out + err


_KUBECONFIG: list[str] = []


def _kubeconfig(_: Any) -> str:
    return _KUBECONFIG[0]


@pytest.fixture(autouse=True)
def _remember_kubeconfig(admin_kubeconfig: Any) -> None:
    _KUBECONFIG[:] = [str(admin_kubeconfig)]
