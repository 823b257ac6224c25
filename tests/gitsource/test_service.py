"""The assembled source controller: artifact server, storage, reconciler, and the loop's hooks."""

from __future__ import annotations

import http.client
from pathlib import Path

from core.sources.artifact import artifact_policy, download_artifact
from reconciler.source.service import GitSourceService, SourceSettings
from tests.fixtures.gitserver import GIT_TOKEN, SecureGit
from tests.gitsource.conftest import Fleet
from tests.gitsource.test_reconcile import RecordingCluster, RecordingEvents, _object


def _status(host_port: str, path: str) -> int:
    host, port = host_port.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request("HEAD", f"/{path}")
        return connection.getresponse().status
    finally:
        connection.close()


def test_the_service_reconciles_serves_and_forgets(
    fleet: Fleet, secure_git: SecureGit, tmp_path: Path
) -> None:
    cluster = RecordingCluster()
    cluster.secrets[("ns", "git-auth")] = {
        "bearerToken": GIT_TOKEN.encode(),
        "ca.crt": secure_git.ca_pem,
    }
    settings = SourceSettings(tmp_path / "storage", tmp_path / "cache", "127.0.0.1", 0)
    obj = _object(secure_git.https.repo_url(fleet.name), secretRef={"name": "git-auth"})
    sink = RecordingEvents()
    with GitSourceService(cluster, settings, events=sink) as service:
        assert service.reconcile(obj) == 300.0
        assert [event[1] for event in sink.events] == ["NewArtifact"]
        artifact = cluster.patches[-1]["status"]["artifact"]
        assert artifact["url"].startswith(service.server.url + "/gitrepository/ns/fleet/")
        got = download_artifact(
            artifact["url"], artifact["digest"], tmp_path / "got",
            policy=artifact_policy(allow_loopback=True),
        )  # fmt: skip
        assert (got / "deploy/app.yaml").is_file()

    # After a restart on the same storage the artifact is served again.
    with GitSourceService(cluster, settings) as restarted:
        assert _status(restarted.server.url, artifact["path"]) == 200
        restarted.deleted("ns", "fleet")
        assert _status(restarted.server.url, artifact["path"]) == 404
        assert not restarted.reconciler.fetcher.cache_of("ns", "fleet").exists()
