"""Hostile pull requests against the real `tidegate preview`: nothing outside the checkout leaks.

Each attack runs twice: with the input walk's refusals switched off, so that the sandbox alone
must stop it (kustomize then gets the files and URLs it is asked for, with Flux's
LoadRestrictionsNone), and with them on (the normal configuration, where the walk refuses first).
Every case checks the exit code, that the message names the cause, and that the canary is in
none of stdout, stderr, the JSON report, the Markdown report or the cache directory.
"""

from __future__ import annotations

import base64
import http.server
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.render import walk
from tests.preview.conftest import Outcome, Preview
from tests.preview.gitrepo import commit, flux_cluster, kustomization, new_repo

PROD = "clusters/production"
BASE_APP = "configMapGenerator: [{name: app, literals: [mode=safe]}]\n"


@dataclass
class Scene:
    """A repository and the secrets outside it that an attack tries to read."""

    root: Path
    canary: str
    canary_file: Path
    key_file: Path

    @property
    def secrets(self) -> list[str]:
        """Every form in which a leaked secret could appear in output."""
        key = self.key_file.read_bytes()
        raw = self.canary.encode()
        return [
            self.canary,
            base64.b64encode(raw).decode(),
            key.hex(),
            base64.b64encode(key).decode(),
        ]


@pytest.fixture
def scene(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Scene:
    """A canary file outside the repository, and work directories at a known depth below it.

    The preview's workspace, and so the renderers' work directories, land in `tmp/` here, so a
    path climbing from the copied kustomization (`../../../../../../outside/...`) reaches the
    canary exactly.
    """
    canary = f"CANARY{uuid.uuid4().hex}"
    outside = tmp_path / "outside"
    outside.mkdir()
    canary_file = outside / "canary.env"
    canary_file.write_text(f"LEAK={canary}\n")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    # The tools' environment carries TZ through, so /proc/self/environ would hold the canary.
    monkeypatch.setenv("TZ", canary)
    return Scene(tmp_path, canary, canary_file, tmp_path / "cache" / "masking.key")


@pytest.fixture(params=["sandbox only", "sandbox and walk"])
def walk_checks(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Run with the walk's refusals off (the sandbox alone holds) and on."""
    enabled: bool = request.param == "sandbox and walk"
    monkeypatch.setattr(walk, "_REFUSE", enabled)
    return enabled


# Where a kustomization two levels down (apps/leak/) climbs out of the work directory's copy
# (in the unit's directory, inside the preview's workspace, inside `tmp/`).
CLIMB = "../../../../../../outside/canary.env"


def _attacks(scene: Scene) -> dict[str, dict[str, str]]:
    """Attack name -> the files the pull request adds (the kustomization of apps/leak)."""
    absolute = str(scene.canary_file)
    key = str(scene.key_file)
    config = "apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata: {{name: leak}}\n{}\n"
    return {
        "files absolute": {"apps/leak/kustomization.yaml": _generator("files", absolute)},
        "files climbing": {"apps/leak/kustomization.yaml": _generator("files", f"k={CLIMB}")},
        "envs climbing": {"apps/leak/kustomization.yaml": _generator("envs", CLIMB)},
        "env of the process": {
            "apps/leak/kustomization.yaml": (
                "configMapGenerator: [{name: leak, env: /proc/self/environ}]\n"
            )
        },
        "the masking key": {"apps/leak/kustomization.yaml": _generator("files", key)},
        "generator file": {
            "apps/leak/kustomization.yaml": "generators: [gen.yaml]\n",
            "apps/leak/gen.yaml": config.format(f"files: [{absolute}]"),
        },
        "generator directory": {
            "apps/leak/kustomization.yaml": "generators: [gens]\n",
            "apps/leak/gens/kustomization.yaml": "resources: [gen.yaml]\n",
            "apps/leak/gens/gen.yaml": config.format(f"envs: [{CLIMB}]"),
        },
        "replacement source": {
            "apps/leak/kustomization.yaml": (
                f"resources: [cm.yaml]\nreplacements: [{{path: {absolute}}}]\n"
            ),
            "apps/leak/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
        },
    }


def _generator(field: str, path: str) -> str:
    return f"configMapGenerator: [{{name: leak, {field}: [{path}]}}]\n"


ATTACKS = [
    "files absolute",
    "files climbing",
    "envs climbing",
    "env of the process",
    "the masking key",
    "generator file",
    "generator directory",
    "replacement source",
]

# What the walk says about each attack when it refuses it.
WALK_CAUSE = {
    "files absolute": "is not allowed",
    "files climbing": "leaves the repository",
    "envs climbing": "leaves the repository",
    "env of the process": "absolute path '/proc/self/environ' is not allowed",
    "the masking key": "is not allowed",
    "generator file": "is not allowed",
    "generator directory": "leaves the repository",
    "replacement source": "is not allowed",
}


def _fleet(scene: Scene) -> tuple[Path, str]:
    return new_repo(
        scene.root / "repo",
        {
            **flux_cluster(),
            f"{PROD}/leak.yaml": kustomization("leak", "./apps/leak", extra="targetNamespace: a"),
            "apps/leak/kustomization.yaml": BASE_APP,
        },
    )


def _assert_nothing_leaked(scene: Scene, *texts: str) -> None:
    for secret in scene.secrets:
        for text in texts:
            assert secret not in text
        for path in (scene.root / "cache").rglob("*"):
            if path.is_file() and path != scene.key_file:
                assert secret.encode() not in path.read_bytes(), path


def _run_both_formats(
    preview: Preview, repo: Path, base: str, head: str
) -> tuple[Outcome, str, str]:
    """Run the preview as JSON and as Markdown; return the JSON run, both reports, stderr."""
    as_json = preview(repo, base, head)
    as_markdown = preview(repo, base, head, fmt="markdown")
    assert as_json.code == as_markdown.code
    return as_json, as_json.report + as_markdown.report, as_json.stderr + as_markdown.stderr


@pytest.mark.parametrize("attack", ATTACKS)
def test_host_files_never_leak_through_kustomize(
    scene: Scene, walk_checks: bool, preview: Preview, attack: str
) -> None:
    repo, base = _fleet(scene)
    head = commit(repo, _attacks(scene)[attack], attack)

    outcome, reports, stderr = _run_both_formats(preview, repo, base, head)

    assert outcome.code == 2
    error = outcome.unit(PROD, "leak")["error"]
    assert outcome.unit(PROD, "leak")["status"] == "failed"
    if walk_checks:
        assert WALK_CAUSE[attack] in error
    else:
        assert "permission denied (denied by the sandbox" in error
    _assert_nothing_leaked(scene, outcome.report, reports, stderr)


@pytest.fixture
def listener() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on loopback that records every request it gets."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            body = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: served-from-loopback}\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/leak.yaml", seen
    finally:
        server.shutdown()
        server.server_close()


def test_kustomize_opens_no_connection(
    scene: Scene, walk_checks: bool, preview: Preview, listener: tuple[str, list[str]]
) -> None:
    url, seen = listener
    repo, base = _fleet(scene)
    head = commit(repo, {"apps/leak/kustomization.yaml": f"resources: ['{url}']\n"}, "remote")

    outcome, reports, stderr = _run_both_formats(preview, repo, base, head)

    assert outcome.code == 2
    error = outcome.unit(PROD, "leak")["error"]
    if walk_checks:
        assert "remote base" in error
        assert "is not allowed" in error
    else:
        assert "connect: permission denied" in error
        assert "(denied by the sandbox: " in error
    assert seen == []
    assert url not in stderr
    assert "served-from-loopback" not in reports


def test_committed_symlink_to_a_host_file_is_refused(scene: Scene, preview: Preview) -> None:
    repo, base = _fleet(scene)
    (repo / "apps/leak/kustomization.yaml").write_text(_generator("files", "link.env"))
    (repo / "apps/leak/link.env").symlink_to(scene.canary_file)
    head = commit(repo, {}, "symlink")

    outcome, reports, stderr = _run_both_formats(preview, repo, base, head)

    assert outcome.code == 2
    assert "apps/leak/link.env is a symlink" in outcome.unit(PROD, "leak")["error"]
    _assert_nothing_leaked(scene, reports, stderr)


def test_normal_previews_still_render_in_the_sandbox(scene: Scene, preview: Preview) -> None:
    repo, base = _fleet(scene)
    head = commit(repo, {"apps/leak/kustomization.yaml": BASE_APP.replace("safe", "fast")}, "x")

    outcome = preview(repo, base, head)

    assert outcome.code == 1
    assert outcome.unit(PROD, "leak")["status"] != "failed"
