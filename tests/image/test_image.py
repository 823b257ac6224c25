"""The OCI image, built without a container engine: pushed to the local registry, pulled back,
and its entrypoint run unprivileged in a user namespace, serving `/healthz` under gunicorn.

Building takes minutes (a Debian rootfs the first time, then pip installing the project). These
tests run in `scripts/dev test` like every other; they are marked `image` so that
`scripts/dev image` can run them alone.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
import requests

from devenv import image
from devenv.registry import Registry

# Building is minutes of downloading and installing, longer than the suite's per-test bound.
pytestmark = [pytest.mark.image, pytest.mark.timeout(3600)]

TAG = "test"


@pytest.fixture(scope="module")
def pulled(registry_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image built, pushed to the local registry and unpacked from it as a bundle."""
    root = tmp_path_factory.mktemp("image")
    layout = root / "layout"
    image.build(layout, TAG, root / "work")
    with Registry(registry_bin, root / "registry") as registry:
        reference = f"{registry.host}/tidegate:{TAG}"
        image.push(layout, TAG, reference)
        bundle = root / "bundle"
        image.unpack(reference, bundle)
    return bundle


def test_the_image_declares_its_entrypoint_user_and_port(pulled: Path) -> None:
    layout = pulled.with_name(pulled.name + "-layout")
    [manifest_entry] = json.loads((layout / "index.json").read_text())["manifests"]
    blobs = layout / "blobs" / "sha256"
    manifest = json.loads((blobs / manifest_entry["digest"].split(":")[1]).read_text())
    config = json.loads((blobs / manifest["config"]["digest"].split(":")[1]).read_text())
    assert config["config"]["Entrypoint"] == ["/opt/tidegate/bin/tidegate"]
    assert config["config"]["User"] == "65532:65532"
    assert "8080/tcp" in config["config"]["ExposedPorts"]
    rootfs = pulled / "rootfs"
    for tool in ("usr/local/bin/kustomize", "usr/local/bin/helm", "usr/bin/git", "usr/bin/ssh"):
        assert (rootfs / tool).is_file(), f"{tool} is not in the image"


def test_the_entrypoint_serves_healthz_as_the_image_user(pulled: Path, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = ["serve", "--web-only", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = {"TIDEGATE_DATA_DIR": "/home/tidegate/data", "TIDEGATE_GITHUB_WEBHOOK_SECRET": "s"}
    log = tmp_path / "serve.log"
    server = image.run_entrypoint(pulled, args, env, log)
    try:
        answer = None
        while answer is None:
            assert server.poll() is None, log.read_text()
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=60)
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.5)  # gunicorn listens before its worker has booted to answer
        assert answer.status_code == 200
        assert requests.get(f"http://127.0.0.1:{port}/readyz", timeout=60).status_code == 200
        # gunicorn's processes run inside the bundle's rootfs, in a user namespace where the
        # image's user 65532 is the only user there is (so they run as it).
        children = _descendants(server.pid)
        assert children
        for pid in children:
            assert Path(f"/proc/{pid}/root").resolve() == (pulled / "rootfs").resolve()
            assert Path(f"/proc/{pid}/uid_map").read_text().split()[:2] == ["65532", "0"]
            uid = Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[0]
            assert uid == "0"  # the caller's user outside, mapped to 65532 inside
    finally:
        server.terminate()
        server.wait(timeout=60)


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    try:
        threads = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return found  # the process exited while we looked
    for thread in threads:
        try:
            children = (thread / "children").read_text().split()
        except FileNotFoundError:
            continue  # a thread that ended between the listing and the read
        for child in children:
            found += [int(child), *_descendants(int(child))]
    return found
