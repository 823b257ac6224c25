"""One reconcile pass of a GitRepository against real git servers and a real artifact server;
the cluster is a recording stand-in for our own `SourceCluster` seam (the live cluster is in
tests/cluster/test_gitrepository_controller.py)."""

from __future__ import annotations

import base64
import datetime
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.cluster.fluxobjects import FluxKind
from core.cluster.port import NotFound
from core.sources.artifact import artifact_policy, download_artifact
from devenv.gitserver import GitServer
from devenv.pki import CertificateAuthority
from reconciler.source.checkout import GitFetcher
from reconciler.source.gitrepository import (
    GitRepositoryReconciler,
    ReconcileResult,
    reconcile_git_repository,
)
from reconciler.source.server import ArtifactServer
from reconciler.source.storage import Storage
from tests.fixtures.gitserver import GIT_PASSWORD, GIT_TOKEN, GIT_USER, SecureGit, commit, git
from tests.gitsource.conftest import Fleet

NOW = datetime.datetime(2026, 3, 1, 12, 0, 0, tzinfo=datetime.UTC)


class RecordingCluster:
    """Secrets by (namespace, name); status patches merged into the objects, as the API does."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], dict[str, bytes]] = {}
        self.patches: list[dict[str, Any]] = []

    def secret_data(self, namespace: str, name: str) -> dict[str, bytes]:
        try:
            return dict(self.secrets[(namespace, name)])
        except KeyError:
            raise NotFound(f"Secret {namespace}/{name} not found") from None

    def merge_patch_status(
        self, kind: FluxKind, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        self.patches.append(patch)
        return patch


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ArtifactServer]:
    with ArtifactServer(tmp_path / "storage") as server:
        yield server


@pytest.fixture
def cluster() -> RecordingCluster:
    return RecordingCluster()


@pytest.fixture
def reconciler(
    tmp_path: Path, served: ArtifactServer, cluster: RecordingCluster
) -> GitRepositoryReconciler:
    storage = Storage(tmp_path / "storage", served.url)
    return GitRepositoryReconciler(
        cluster, storage, GitFetcher(tmp_path / "cache"), clock=lambda: NOW
    )


def _object(url: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": "fleet", "namespace": "ns", "generation": 1},
        "spec": {"url": url, "interval": "5m", "ref": {"branch": "main"}, **spec},
    }


def _with_status(obj: dict[str, Any], result: ReconcileResult) -> dict[str, Any]:
    assert result.status is not None
    return {**obj, "status": dict(result.status)}


def _conditions(result: ReconcileResult) -> dict[str, tuple[str, str, str]]:
    assert result.status is not None
    return {
        c["type"]: (c["status"], c["reason"], c["message"]) for c in result.status["conditions"]
    }


def _secret(cluster: RecordingCluster, secure_git: SecureGit, **data: str) -> None:
    values = {key: value.encode() for key, value in data.items()}
    cluster.secrets[("ns", "git-auth")] = {"ca.crt": secure_git.ca_pem, **values}


def _download(result: ReconcileResult, target: Path) -> Path:
    assert result.status is not None
    artifact = result.status["artifact"]
    return download_artifact(
        artifact["url"], artifact["digest"], target, policy=artifact_policy(allow_loopback=True)
    )


def test_a_pass_stores_the_artifact_and_writes_fluxs_status(
    fleet: Fleet,
    secure_git: SecureGit,
    reconciler: GitRepositoryReconciler,
    cluster: RecordingCluster,
    served: ArtifactServer,
    tmp_path: Path,
) -> None:
    _secret(cluster, secure_git, username=GIT_USER, password=GIT_PASSWORD)
    obj = _object(secure_git.https.repo_url(fleet.name), secretRef={"name": "git-auth"})
    obj["metadata"]["annotations"] = {"reconcile.fluxcd.io/requestedAt": "2026-03-01T11:59:00Z"}
    result = reconcile_git_repository(obj, reconciler)

    revision = f"main@sha1:{fleet.main}"
    assert (result.ready, result.requeue_after, result.revision) == (True, 300.0, revision)
    assert _conditions(result) == {
        "Ready": ("True", "Succeeded", f"stored artifact for revision '{revision}'"),
        "ArtifactInStorage": ("True", "Succeeded", f"stored artifact for revision '{revision}'"),
    }
    assert result.status is not None
    artifact = result.status["artifact"]
    assert artifact["revision"] == revision
    assert artifact["path"].startswith("gitrepository/ns/fleet/")
    assert artifact["url"] == f"{served.url}/{artifact['path']}"
    assert artifact["digest"].startswith("sha256:")
    assert artifact["lastUpdateTime"] == "2026-03-01T12:00:00Z"
    assert isinstance(artifact["size"], int)
    assert result.status["observedGeneration"] == 1
    assert result.status["lastHandledReconcileAt"] == "2026-03-01T11:59:00Z"
    assert "observedIgnore" not in result.status
    assert cluster.patches[-1] == {"status": dict(result.status)}
    # Before fetching a new generation, the object was marked in progress.
    message = "processing object: new generation -1 -> 1"
    assert [
        (c["type"], c["status"], c["reason"], c["message"])
        for c in cluster.patches[0]["status"]["conditions"]
    ] == [
        ("Ready", "Unknown", "Progressing", message),
        ("Reconciling", "True", "Progressing", message),
    ]
    got = _download(result, tmp_path / "got")
    assert (got / "deploy/app.yaml").read_bytes() == b"kind: ConfigMap\ndata: {}\n"

    again = reconcile_git_repository(_with_status(obj, result), reconciler)
    assert again.status is not None
    assert again.status["artifact"] == artifact  # up to date: nothing new stored
    assert len(cluster.patches) == 3  # an observed generation needs no progress patch


def test_new_commits_and_ignore_rules_make_new_artifacts(
    fleet: Fleet,
    secure_git: SecureGit,
    reconciler: GitRepositoryReconciler,
    cluster: RecordingCluster,
    tmp_path: Path,
) -> None:
    _secret(cluster, secure_git, bearerToken=GIT_TOKEN)
    obj = _object(secure_git.https.repo_url(fleet.name), secretRef={"name": "git-auth"})
    first = reconcile_git_repository(obj, reconciler)
    newer = fleet.push({"deploy/svc.yaml": b"kind: Service\n"})
    second = reconcile_git_repository(_with_status(obj, first), reconciler)
    assert second.revision == f"main@sha1:{newer}"
    assert second.status is not None
    assert first.status is not None
    assert second.status["artifact"]["path"] != first.status["artifact"]["path"]
    # The previous artifact stays in storage (a Kustomization may still be downloading it).
    _download(first, tmp_path / "previous")

    obj["spec"]["ignore"] = "/deploy/svc.yaml\n"
    obj["metadata"]["generation"] = 2
    third = reconcile_git_repository(_with_status(obj, second), reconciler)
    assert third.status is not None
    assert third.status["observedIgnore"] == "/deploy/svc.yaml\n"
    assert third.status["observedGeneration"] == 2
    got = _download(third, tmp_path / "ignored")
    assert sorted(p.name for p in (got / "deploy").iterdir()) == ["app.yaml"]


def test_bad_credentials_fail_with_a_scrubbed_message(
    fleet: Fleet,
    secure_git: SecureGit,
    reconciler: GitRepositoryReconciler,
    cluster: RecordingCluster,
) -> None:
    _secret(cluster, secure_git, username=GIT_USER, password="Leaky-Password-5521")
    url = secure_git.https.repo_url(fleet.name)
    result = reconcile_git_repository(_object(url, secretRef={"name": "git-auth"}), reconciler)
    assert not result.ready
    conditions = _conditions(result)
    status, reason, message = conditions["Ready"]
    assert (status, reason) == ("False", "AuthenticationFailed")
    assert message.startswith(f"failed to checkout and determine revision: unable to clone '{url}'")
    assert conditions["FetchFailed"] == ("True", "AuthenticationFailed", message)
    assert conditions["Reconciling"] == (
        "True",
        "ProgressingWithRetry",
        "processing object: new generation -1 -> 1",
    )
    written = repr(cluster.patches)
    assert "Leaky-Password-5521" not in written
    leaked = base64.b64encode(f"{GIT_USER}:Leaky-Password-5521".encode()).decode()
    assert leaked not in written


def test_a_missing_secret_is_an_authentication_failure(
    fleet: Fleet, secure_git: SecureGit, reconciler: GitRepositoryReconciler
) -> None:
    result = reconcile_git_repository(
        _object(secure_git.https.repo_url(fleet.name), secretRef={"name": "absent"}), reconciler
    )
    assert _conditions(result)["FetchFailed"] == (
        "True",
        "AuthenticationFailed",
        "failed to get secret 'ns/absent': secrets \"absent\" not found",
    )


def test_a_git_outage_keeps_the_last_artifact_and_backs_off(
    reconciler: GitRepositoryReconciler, cluster: RecordingCluster, tmp_path: Path
) -> None:
    ca = CertificateAuthority.create("outage-ca")
    server = GitServer(
        tmp_path / "git",
        {GIT_USER: GIT_PASSWORD},
        tokens={GIT_TOKEN: GIT_USER},
        tls=ca.serving("git", ips=["127.0.0.1"]),
        private=True,
    )
    server.start()
    server.create_repo("fleet")
    work = tmp_path / "work"
    git("init", "--quiet", "--initial-branch=main", str(work))
    head = commit(work, {"a.yaml": b"a: 1\n"})
    git("push", "--quiet", str(server.root / "fleet.git"), "main", cwd=work)
    cluster.secrets[("ns", "git-auth")] = {"bearerToken": GIT_TOKEN.encode(), "ca.crt": ca.cert_pem}
    obj = _object(server.repo_url("fleet"), secretRef={"name": "git-auth"}, interval="10s")
    good = reconcile_git_repository(obj, reconciler)
    assert good.ready
    server.stop()

    delays = []
    current = _with_status(obj, good)
    for _ in range(6):
        failed = reconcile_git_repository(current, reconciler)
        delays.append(failed.requeue_after)
        current = _with_status(obj, failed)
    assert delays == [0.75, 1.5, 3.0, 6.0, 10.0, 10.0]  # doubling, capped at the interval
    assert failed.status is not None
    assert good.status is not None
    assert failed.status["artifact"] == good.status["artifact"]
    conditions = _conditions(failed)
    assert conditions["Ready"][:2] == ("False", "GitOperationFailed")
    assert conditions["FetchFailed"][:2] == ("True", "GitOperationFailed")
    assert conditions["ArtifactInStorage"] == (
        "True",
        "Succeeded",
        f"stored artifact for revision 'main@sha1:{head}'",
    )
    assert conditions["Reconciling"] == (
        "True",
        "ProgressingWithRetry",
        "reconciliation in progress",
    )
    assert failed.status["observedGeneration"] == 1
    # Consumers keep downloading the last good artifact by its URL.
    assert (_download(failed, tmp_path / "last") / "a.yaml").read_bytes() == b"a: 1\n"

    server.start()  # back on a new port: the URL in the spec moves with it
    obj["spec"]["url"] = server.repo_url("fleet")
    recovered = reconcile_git_repository(current | {"spec": obj["spec"]}, reconciler)
    server.stop()
    assert recovered.ready
    assert recovered.requeue_after == 10.0
    assert set(_conditions(recovered)) == {"Ready", "ArtifactInStorage"}


def test_a_suspended_object_is_left_alone(
    reconciler: GitRepositoryReconciler, cluster: RecordingCluster
) -> None:
    result = reconcile_git_repository(
        _object("https://git.invalid/fleet.git", suspend=True), reconciler
    )
    assert (result.requeue_after, result.ready, result.status) == (None, False, None)
    assert cluster.patches == []


@pytest.mark.parametrize(
    ("spec", "reason", "text"),
    [
        ({"url": "file:///etc"}, "URLInvalid", "field spec.url: must be an http://"),
        ({"include": [{"repository": {"name": "x"}}]}, "InvalidSpec", "spec.include: is not"),
        ({"interval": "soon"}, "InvalidSpec", "field spec.interval: 'soon' is not a duration"),
    ],
)
def test_a_spec_that_cannot_work_stalls(
    reconciler: GitRepositoryReconciler,
    cluster: RecordingCluster,
    spec: dict[str, Any],
    reason: str,
    text: str,
) -> None:
    obj = _object("https://git.invalid/fleet.git")
    obj["spec"].update(spec)
    result = reconcile_git_repository(obj, reconciler)
    assert result.requeue_after is None
    conditions = _conditions(result)
    assert conditions["Stalled"][:2] == ("True", reason)
    assert conditions["Ready"][:2] == ("False", reason)
    assert text in conditions["Ready"][2]
    assert "Reconciling" not in conditions
    assert cluster.patches


def test_an_archive_over_its_bound_is_a_storage_failure(
    fleet: Fleet,
    secure_git: SecureGit,
    cluster: RecordingCluster,
    served: ArtifactServer,
    tmp_path: Path,
) -> None:
    small = GitRepositoryReconciler(
        cluster,
        Storage(tmp_path / "storage", served.url),
        GitFetcher(tmp_path / "cache"),
        max_archive_bytes=10,
        clock=lambda: NOW,
    )
    _secret(cluster, secure_git, bearerToken=GIT_TOKEN)
    obj = _object(secure_git.https.repo_url(fleet.name), secretRef={"name": "git-auth"})
    result = reconcile_git_repository(obj, small)
    status, reason, message = _conditions(result)["StorageOperationFailed"]
    assert (status, reason) == ("True", "ArchiveOperationFailed")
    assert message.startswith("failed to archive and store artifact: revision ")
    assert "exceed 10 bytes" in message
    assert _conditions(result)["Ready"][:2] == ("False", "ArchiveOperationFailed")
    assert not list((tmp_path / "storage").rglob("*.tar.gz"))
    assert not list((tmp_path / "storage").rglob(".incoming-*"))


def test_an_artifact_lost_from_storage_is_stored_again(
    fleet: Fleet,
    secure_git: SecureGit,
    reconciler: GitRepositoryReconciler,
    cluster: RecordingCluster,
    tmp_path: Path,
) -> None:
    _secret(cluster, secure_git, bearerToken=GIT_TOKEN)
    obj = _object(secure_git.https.repo_url(fleet.name), secretRef={"name": "git-auth"})
    first = reconcile_git_repository(obj, reconciler)
    assert first.status is not None
    (tmp_path / "storage" / first.status["artifact"]["path"]).unlink()  # a restart on emptyDir
    again = reconcile_git_repository(_with_status(obj, first), reconciler)
    assert again.status is not None
    assert again.status["artifact"]["path"] == first.status["artifact"]["path"]
    assert (_download(again, tmp_path / "got") / "deploy/app.yaml").exists()


def test_a_new_advertised_address_rewrites_the_artifact_url_even_while_git_is_down(
    reconciler: GitRepositoryReconciler, cluster: RecordingCluster, tmp_path: Path
) -> None:
    server = GitServer(tmp_path / "git", {GIT_USER: GIT_PASSWORD}, private=False)
    server.start()
    server.create_repo("fleet")
    work = tmp_path / "work"
    git("init", "--quiet", "--initial-branch=main", str(work))
    commit(work, {"a.yaml": b"a: 1\n"})
    git("push", "--quiet", str(server.root / "fleet.git"), "main", cwd=work)
    obj = _object(server.repo_url("fleet"))
    first = _with_status(obj, reconcile_git_repository(obj, reconciler))
    server.stop()
    # The controller starts again behind another address, on the same storage volume.
    with ArtifactServer(tmp_path / "storage") as moved:
        restarted = GitRepositoryReconciler(
            cluster,
            Storage(tmp_path / "storage", moved.url),
            GitFetcher(tmp_path / "cache"),
            clock=lambda: NOW,
        )
        cluster.patches.clear()

        failed = reconcile_git_repository(first, restarted)

        assert not failed.ready  # git is unreachable ...
        assert failed.status is not None
        artifact = failed.status["artifact"]
        old = first["status"]["artifact"]
        # ... yet the artifact is now advertised at the new address, and nothing else moved.
        assert artifact["url"] == f"{moved.url}/{old['path']}"
        assert artifact["url"] != old["url"]
        assert {k: v for k, v in artifact.items() if k != "url"} == {
            k: v for k, v in old.items() if k != "url"
        }
        assert cluster.patches[0]["status"]["artifact"]["url"] == artifact["url"]
        assert (_download(failed, tmp_path / "got") / "a.yaml").read_bytes() == b"a: 1\n"


def test_a_git_server_that_never_answers_is_cut_at_the_timeout(
    reconciler: GitRepositoryReconciler, tmp_path: Path
) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        obj = _object(f"http://127.0.0.1:{port}/fleet.git", timeout="2s")
        result = reconcile_git_repository(obj, reconciler)
    status, reason, message = _conditions(result)["FetchFailed"]
    assert (status, reason) == ("True", "GitOperationFailed")
    assert "timed out after 2s" in message


class RecordingEvents:
    """An `EventSink` that keeps what it is given."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []

    def record(
        self,
        obj: dict[str, Any],
        severity: str,
        message: str,
        *,
        revision: str = "",
        reason: str = "",
    ) -> None:
        assert obj["metadata"]["name"] == "fleet"
        self.events.append((severity, reason, message, revision))


def test_events_tell_of_new_artifacts_and_failures(
    fleet: Fleet,
    secure_git: SecureGit,
    cluster: RecordingCluster,
    served: ArtifactServer,
    tmp_path: Path,
) -> None:
    sink = RecordingEvents()
    reconciler = GitRepositoryReconciler(
        cluster,
        Storage(tmp_path / "storage", served.url),
        GitFetcher(tmp_path / "cache"),
        events=sink,
        clock=lambda: NOW,
    )
    _secret(cluster, secure_git, bearerToken=GIT_TOKEN)
    obj = _object(secure_git.https.repo_url(fleet.name), secretRef={"name": "git-auth"})
    first = reconcile_git_repository(obj, reconciler)
    reconcile_git_repository(_with_status(obj, first), reconciler)  # up to date: no event
    _secret(cluster, secure_git, bearerToken="Wrong-Token-31")
    reconcile_git_repository(_with_status(obj, first), reconciler)
    assert sink.events[0] == (
        "info",
        "NewArtifact",
        "stored artifact for commit 'second'",
        f"main@sha1:{fleet.main}",
    )
    assert len(sink.events) == 2
    severity, reason, message, _ = sink.events[1]
    assert (severity, reason) == ("error", "AuthenticationFailed")
    assert message.startswith("failed to checkout and determine revision")
    assert "Wrong-Token-31" not in message
