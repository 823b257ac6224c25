"""The registry client and OCIRepository resolution against a real distribution registry.

The registry runs with token authentication, so every pull below passes the anonymous Bearer
challenge; pushes go through the registry API (Flux artifacts) and the pinned helm (charts).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from pathlib import Path

import pytest

from core.fetch import FetchPolicy
from core.host.command import run
from core.oci.reference import parse_repository
from core.oci.registry import RegistryClient, RegistryError, RegistryLimits
from core.oci.source import OCIRepositorySpec, SourceError, pull_artifact, pull_chart
from devenv.ports import refusing_port
from devenv.registry import Registry
from tests.fixtures.registry import FLUX_LAYER, RegistryAPI, push_artifact, push_chart
from tests.render.test_helm import helm_limits, write_chart

LOOPBACK = FetchPolicy(allowed_hosts=None, allow_loopback=True)


def _spec(registry: Registry, name: str, **spec: object) -> OCIRepositorySpec:
    return OCIRepositorySpec.parse(
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "OCIRepository",
            "metadata": {"name": "app", "namespace": "flux-system"},
            "spec": {"interval": "1m", "url": f"oci://{registry.host}/{name}", **spec},
        },
        file="clusters/prod/app-source.yaml",
    )


@pytest.fixture(scope="module")
def pushed(oci_registry: Registry) -> dict[str, str]:
    """Artifact versions of fleet/app and their manifest digests."""
    return {
        tag: push_artifact(
            oci_registry, "fleet/app", tag, {"app.yaml": f"kind: ConfigMap # {tag}\n"}
        )
        for tag in ("1.0.0", "1.1.0", "2.0.0-rc.1", "v1.2.0", "latest", "stable")
    }


def test_a_tag_resolves_through_the_token_challenge(
    oci_registry: Registry, pushed: dict[str, str], tmp_path: Path
) -> None:
    before = oci_registry.tokens_issued
    client = RegistryClient(LOOPBACK, tmp_path)
    artifact = pull_artifact(client, _spec(oci_registry, "fleet/app", ref={"tag": "stable"}))
    assert artifact.revision == f"stable@{pushed['stable']}"
    assert (artifact.path / "app.yaml").read_text() == "kind: ConfigMap # stable\n"
    assert artifact.annotations["org.opencontainers.image.source"] == (
        "https://example.com/fleet.git"
    )
    assert oci_registry.tokens_issued > before


def test_no_ref_means_latest(
    oci_registry: Registry, pushed: dict[str, str], tmp_path: Path
) -> None:
    artifact = pull_artifact(RegistryClient(LOOPBACK, tmp_path), _spec(oci_registry, "fleet/app"))
    assert artifact.revision == f"latest@{pushed['latest']}"


def test_semver_picks_the_highest_matching_tag(
    oci_registry: Registry, pushed: dict[str, str], tmp_path: Path
) -> None:
    client = RegistryClient(LOOPBACK, tmp_path)
    found = pull_artifact(client, _spec(oci_registry, "fleet/app", ref={"semver": "1.x"}))
    assert found.revision == f"v1.2.0@{pushed['v1.2.0']}"
    pre = pull_artifact(client, _spec(oci_registry, "fleet/app", ref={"semver": ">=2.0.0-0"}))
    assert pre.revision.startswith("2.0.0-rc.1@")
    filtered = pull_artifact(
        client,
        _spec(oci_registry, "fleet/app", ref={"semver": "*", "semverFilter": "^1\\.[01]"}),
    )
    assert filtered.revision == f"1.1.0@{pushed['1.1.0']}"
    with pytest.raises(SourceError, match="no match found for semver: >=3"):
        pull_artifact(client, _spec(oci_registry, "fleet/app", ref={"semver": ">=3"}))


def test_digest_wins_over_semver_and_tag(
    oci_registry: Registry, pushed: dict[str, str], tmp_path: Path
) -> None:
    spec = _spec(
        oci_registry,
        "fleet/app",
        ref={"digest": pushed["1.0.0"], "semver": "*", "tag": "stable"},
    )
    artifact = pull_artifact(RegistryClient(LOOPBACK, tmp_path), spec)
    assert artifact.revision == pushed["1.0.0"]
    assert "# 1.0.0" in (artifact.path / "app.yaml").read_text()


def test_layer_selector_picks_by_media_type_and_copy_keeps_the_blob(
    oci_registry: Registry, tmp_path: Path
) -> None:
    other = b"not the content layer"
    push_artifact(
        oci_registry,
        "fleet/layers",
        "1.0.0",
        {"app.yaml": "kind: Namespace\n"},
        extra_layers=(("application/vnd.example.other", other),),
        layer_first=False,
    )
    client = RegistryClient(LOOPBACK, tmp_path)
    selected = pull_artifact(
        client,
        _spec(
            oci_registry,
            "fleet/layers",
            ref={"tag": "1.0.0"},
            layerSelector={"mediaType": FLUX_LAYER, "operation": "extract"},
        ),
    )
    assert (selected.path / "app.yaml").read_text() == "kind: Namespace\n"
    copied = pull_artifact(
        client,
        _spec(
            oci_registry,
            "fleet/layers",
            ref={"tag": "1.0.0"},
            layerSelector={"mediaType": "application/vnd.example.other", "operation": "copy"},
        ),
    )
    assert copied.path.read_bytes() == other
    with pytest.raises(SourceError, match="failed to find layer with media type 'x/y'"):
        pull_artifact(
            client,
            _spec(
                oci_registry,
                "fleet/layers",
                ref={"tag": "1.0.0"},
                layerSelector={"mediaType": "x/y"},
            ),
        )


def test_an_index_resolves_to_its_linux_amd64_manifest(
    oci_registry: Registry, pushed: dict[str, str], tmp_path: Path
) -> None:
    client = RegistryAPI(oci_registry, "fleet/app")
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": pushed["1.0.0"],
                "size": 1,
                "platform": {"os": "linux", "architecture": "arm64"},
            },
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": pushed["1.1.0"],
                "size": 1,
                "platform": {"os": "linux", "architecture": "amd64"},
            },
        ],
    }
    body = json.dumps(index).encode()
    client.request(
        "PUT",
        "/v2/fleet/app/manifests/multi",
        body,
        {"Content-Type": "application/vnd.oci.image.index.v1+json"},
    )
    artifact = pull_artifact(
        RegistryClient(LOOPBACK, tmp_path), _spec(oci_registry, "fleet/app", ref={"tag": "multi"})
    )
    assert artifact.revision == "multi@sha256:" + hashlib.sha256(body).hexdigest()
    assert "# 1.1.0" in (artifact.path / "app.yaml").read_text()


def test_a_host_off_the_allow_list_is_refused_before_any_request(
    oci_registry: Registry, pushed: dict[str, str], tmp_path: Path
) -> None:
    before = oci_registry.tokens_issued
    client = RegistryClient(FetchPolicy(allowed_hosts=frozenset(), allow_loopback=True), tmp_path)
    with pytest.raises(SourceError, match=f"refused: host {oci_registry.host} is not on the"):
        pull_artifact(client, _spec(oci_registry, "fleet/app"))
    assert oci_registry.tokens_issued == before


def test_loopback_needs_the_explicit_setting(oci_registry: Registry, tmp_path: Path) -> None:
    client = RegistryClient(FetchPolicy(allowed_hosts=None), tmp_path)
    with pytest.raises(SourceError, match=r"127\.0\.0\.1 is a loopback address"):
        pull_artifact(client, _spec(oci_registry, "fleet/app"))


def test_an_unreachable_registry_fails_clearly(tmp_path: Path) -> None:
    with refusing_port() as port:
        spec = OCIRepositorySpec.parse(
            {
                "kind": "OCIRepository",
                "metadata": {"name": "gone"},
                "spec": {"url": f"oci://127.0.0.1:{port}/fleet/app"},
            }
        )
        with pytest.raises(
            SourceError, match=r"OCIRepository/flux-system/gone: .*connection refused"
        ):
            pull_artifact(RegistryClient(LOOPBACK, tmp_path), spec)


def test_a_missing_tag_names_the_repository(oci_registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"fleet/app.*HTTP 404"):
        pull_artifact(
            RegistryClient(LOOPBACK, tmp_path),
            _spec(oci_registry, "fleet/app", ref={"tag": "no-such-tag"}),
        )


def test_blobs_are_verified_and_cached_by_digest(
    oci_registry: Registry, pushed: dict[str, str], tmp_path: Path
) -> None:
    client = RegistryClient(LOOPBACK, tmp_path)
    repo = parse_repository(f"oci://{oci_registry.host}/fleet/app")
    manifest = client.manifest(repo, "1.0.0")
    layer = manifest.layers[0]
    path = client.blob(repo, layer)
    assert "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest() == layer["digest"]
    assert client.blob(repo, layer) == path


class _Lying(http.server.BaseHTTPRequestHandler):
    """A registry whose every answer is the same bytes, whatever digest was asked for."""

    def do_GET(self) -> None:
        body = b'{"schemaVersion": 2, "layers": []}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_content_that_does_not_match_its_digest_is_refused(tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Lying)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = RegistryClient(LOOPBACK, tmp_path)
        repo = parse_repository(f"oci://127.0.0.1:{server.server_address[1]}/fleet/app")
        wanted = "sha256:" + "0" * 64
        with pytest.raises(RegistryError, match="does not match its digest"):
            client.manifest(repo, wanted)
        with pytest.raises(RegistryError, match="does not match its digest"):
            client.blob(repo, {"digest": wanted, "size": 10})
        assert not list((tmp_path).rglob("0" * 64))
    finally:
        server.shutdown()
        server.server_close()


def test_charts_resolve_by_exact_version_and_by_constraint(
    oci_registry: Registry, helm_bin: Path, tmp_path: Path
) -> None:
    for version in ("1.0.0", "1.1.0", "1.3.0+build.1", "2.0.0"):
        chart = write_chart(tmp_path / f"src-{version}" / "webapp", version)
        run(
            [str(helm_bin), "package", str(chart), "--destination", str(tmp_path / "pkg")],
            limits=helm_limits(tmp_path / "home"),
        )
        push_chart(
            oci_registry,
            helm_bin,
            tmp_path / "pkg" / f"webapp-{version}.tgz",
            "charts",
            tmp_path / "home",
        )
    client = RegistryClient(LOOPBACK, tmp_path / "cache")
    url = f"oci://{oci_registry.host}/charts"
    assert pull_chart(client, url, "webapp", ">=1.0.0 <1.2.0").version == "1.1.0"
    assert pull_chart(client, url, "webapp", None).version == "2.0.0"
    exact = pull_chart(client, url, "webapp", "1.0.0")
    assert exact.version == "1.0.0"
    assert exact.package.read_bytes()[:2] == b"\x1f\x8b"
    # helm pushes 1.3.0+build.1 as the tag 1.3.0_build.1; `_` reads as `+`.
    assert pull_chart(client, url, "webapp", "~1.3").version == "1.3.0+build.1"
    assert pull_chart(client, url, "webapp", "1.3.0+build.1").version == "1.3.0+build.1"
    with pytest.raises(SourceError, match="no chart version found"):
        pull_chart(client, url, "webapp", ">=3")


def test_cached_blobs_need_no_request(
    oci_registry: Registry, pushed: dict[str, str], tmp_path: Path
) -> None:
    repo = parse_repository(f"oci://{oci_registry.host}/fleet/app")
    layer = RegistryClient(LOOPBACK, tmp_path).manifest(repo, "1.0.0").layers[0]
    RegistryClient(LOOPBACK, tmp_path).blob(repo, layer)
    before = oci_registry.tokens_issued
    # A fresh client would need a token for any request: none is asked for.
    RegistryClient(LOOPBACK, tmp_path).blob(repo, layer)
    assert oci_registry.tokens_issued == before


def test_a_blob_over_the_limit_is_refused(
    oci_registry: Registry, pushed: dict[str, str], tmp_path: Path
) -> None:
    repo = parse_repository(f"oci://{oci_registry.host}/fleet/app")
    client = RegistryClient(LOOPBACK, tmp_path, RegistryLimits(blob_bytes=16))
    layer = client.manifest(repo, "1.0.0").layers[0]
    with pytest.raises(RegistryError, match="over the 16 limit"):
        client.blob(repo, layer)
    with pytest.raises(RegistryError, match="larger than 16 bytes"):
        client.blob(repo, {**layer, "size": None})
    small = RegistryClient(LOOPBACK, tmp_path / "m", RegistryLimits(manifest_bytes=16))
    with pytest.raises(RegistryError, match="larger than 16 bytes"):
        small.manifest(repo, "1.0.0")


class _Redirecting(http.server.BaseHTTPRequestHandler):
    """A registry that sends blob downloads to another server, as registries on S3 do."""

    target = ""

    def do_GET(self) -> None:
        self.send_response(307)
        self.send_header("Location", f"{self.target}{self.path}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Storage(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_blob_redirect_needs_no_allow_list_entry_but_passes_the_address_rules(
    tmp_path: Path,
) -> None:
    body = b"layer bytes"
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    storage = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Storage)
    registry = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirecting)
    _Storage.body = body
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (storage, registry)]
    for thread in threads:
        thread.start()
    # Names stand in for hosts: the registry and the storage it redirects to.
    addresses = {"registry.test": "127.0.0.1", "storage.test": "127.0.0.1", "lan.test": "10.1.2.3"}
    policy = FetchPolicy(
        allowed_hosts=frozenset({f"registry.test:{registry.server_address[1]}"}),
        allow_loopback=True,
        resolver=lambda host, port: [addresses[host]],
    )
    repo = parse_repository(
        f"oci://registry.test:{registry.server_address[1]}/fleet/app", insecure=True
    )
    try:
        _Redirecting.target = f"http://storage.test:{storage.server_address[1]}"
        path = RegistryClient(policy, tmp_path / "a").blob(repo, {"digest": digest})
        assert path.read_bytes() == body
        # A redirect into a private network is refused by address, allow-list or not.
        _Redirecting.target = f"http://lan.test:{storage.server_address[1]}"
        with pytest.raises(RegistryError, match=r"10\.1\.2\.3 is a private address"):
            RegistryClient(policy, tmp_path / "b").blob(repo, {"digest": digest})
    finally:
        for server in (storage, registry):
            server.shutdown()
            server.server_close()
