"""Secret values never leave a preview: not in a report, on stderr, or in the render cache.

Each test runs the real `tidegate preview` (in-process, or as `python -m cli` where the process
boundary matters) with the pinned kustomize on a repository that plants canary values: Secrets
written with base64 `data:` and with `stringData`, variables substituted from a Secret
(`postBuild.substituteFrom`) in full, as a `${TOKEN:0:6}` prefix and inside a longer string, and
a kustomize error that quotes a Secret literal. Every output and every byte the cache wrote is
searched for each canary, its base64 form and its first six characters.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

from tests.preview.conftest import Preview
from tests.preview.gitrepo import commit, configmap, flux_cluster, kustomization, new_repo

PROD = "clusters/production"
ROOT = Path(__file__).resolve().parents[2]

# Distinct values with distinct six-character prefixes, so a prefix found means that value leaked.
DATA_V1 = "Qz7data-canary-before-0001"
DATA_V2 = "Wk4data-canary-after-00002"
STRING_V1 = "Jp9string-canary-before-01"
STRING_V2 = "Xr2string-canary-after-002"
TOKEN_V1 = "Vb6token-canary-before-001"
TOKEN_V2 = "Hm3token-canary-after-0002"
LITERAL = "Ty8literal-canary-00000003"
CANARIES = (DATA_V1, DATA_V2, STRING_V1, STRING_V2, TOKEN_V1, TOKEN_V2, LITERAL)


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def _forbidden() -> list[str]:
    found = []
    for value in CANARIES:
        found += [value, value[:6], _b64(value)]
    return found


def _secret(name: str, namespace: str, *, data: str | None = None, text: str | None = None) -> str:
    body = f"data: {{token: {_b64(data)}}}\n" if data else f"stringData: {{token: {text}}}\n"
    return (
        f"apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {namespace}}}\n" + body
    )


def _files(data: str, text: str, token: str) -> dict[str, str]:
    substitute = "postBuild: {substituteFrom: [{kind: Secret, name: vars}]}"
    return {
        **flux_cluster(),
        f"{PROD}/apps.yaml": kustomization("apps", "./apps", extra=substitute),
        # The variables Secret sits beside the Kustomization that reads it, in flux-system.
        f"{PROD}/vars.yaml": _secret("vars", "flux-system", data=token),
        "apps/data-secret.yaml": _secret("db-password", "apps", data=data),
        "apps/string-secret.yaml": _secret("api-key", "apps", text=text),
        "apps/config.yaml": configmap(
            "settings",
            "apps",
            full="${token}",
            prefix="${token:0:6}",
            inside="Bearer ${token} end",
            plain="unchanged",
        ),
    }


def _repo(tmp_path: Path) -> tuple[Path, str, str]:
    repo, base = new_repo(tmp_path / "repo", _files(DATA_V1, STRING_V1, TOKEN_V1))
    head = commit(repo, _files(DATA_V2, STRING_V2, TOKEN_V2), "rotate every secret")
    return repo, base, head


def _assert_clean(text: str, where: str) -> None:
    leaked = [value for value in _forbidden() if value in text]
    assert not leaked, f"{where} carries {leaked}"


def _cache_bytes(cache: Path) -> list[tuple[Path, bytes]]:
    return [(path, path.read_bytes()) for path in sorted(cache.rglob("*")) if path.is_file()]


def test_secret_values_reach_no_report_no_stderr_and_no_cache_entry(
    tmp_path: Path, preview: Preview
) -> None:
    repo, base, head = _repo(tmp_path)

    sarif = tmp_path / "findings.sarif"
    outputs = [
        preview(repo, base, head, "--sarif", str(sarif), fmt=fmt) for fmt in ("json", "markdown")
    ]

    json_run = outputs[0]
    # The Secrets are committed in clear text: the gate blocks them, and says so without a value.
    assert json_run.code == 3, json_run.report
    assert {f["rule"] for f in json_run.data["findings"] if f["blocking"]} == {"GP011"}
    _assert_clean(sarif.read_text(), "the SARIF log")
    changes = {(c[2], c[3], c[4]) for c in json_run.changes()}
    assert changes == {
        ("update", "Secret", "apps/db-password"),
        ("update", "Secret", "apps/api-key"),
        ("update", "ConfigMap", "apps/settings"),
        ("update", "Secret", "flux-system/vars"),
    }
    settings = next(c for c in json_run.unit(PROD, "apps")["changes"] if c["name"] == "settings")
    # Fields fed from the Secret show as changed and masked. A prefix is cut from the value's
    # mask token, not from the value, so it is masked but cannot tell that the value changed.
    assert settings["fields"] == ["data.full", "data.inside"]
    lines = settings["diff"].splitlines()
    assert "-  full: '*** (before)'" in lines
    assert "+  full: '*** (after)'" in lines
    assert "+  inside: '*** (after)'" in lines
    assert "   prefix: '***'" in lines
    assert "   plain: unchanged" in lines
    for outcome in outputs:
        _assert_clean(outcome.report, "the report")
        _assert_clean(outcome.stderr, "stderr")
        assert "tidegate:masked" not in outcome.report
    entries = _cache_bytes(tmp_path / "cache")
    assert len(entries) > 3, "the cache was written"
    for path, content in entries:
        _assert_clean(content.decode("latin-1"), f"cache file {path.name}")


def test_a_kustomize_error_quoting_a_secret_literal_is_not_shown(
    tmp_path: Path, preview: Preview
) -> None:
    repo, base = new_repo(
        tmp_path / "repo",
        {
            **flux_cluster(),
            f"{PROD}/apps.yaml": kustomization("apps", "./apps"),
            "apps/kustomization.yaml": "secretGenerator:\n- name: s\n  literals: [ok=1]\n",
        },
    )
    # A literal without '=' makes kustomize fail with an error that quotes the literal.
    head = commit(
        repo,
        {"apps/kustomization.yaml": f"secretGenerator:\n- name: s\n  literals: [{LITERAL}]\n"},
        "break the generator",
    )

    outcome = preview(repo, base, head)

    assert outcome.code == 2
    apps = outcome.unit(PROD, "apps")
    assert apps["status"] == "failed"
    assert apps["error"], "the failure is reported"
    _assert_clean(outcome.report, "the report")
    _assert_clean(outcome.stderr, "stderr")
    for path, content in _cache_bytes(tmp_path / "cache"):
        _assert_clean(content.decode("latin-1"), f"cache file {path.name}")


def test_the_command_line_error_path_prints_no_secret(
    tmp_path: Path, kustomize_bin: Path, helm_bin: Path
) -> None:
    repo, base, head = _repo(tmp_path)

    # The preview renders every Secret, then cannot write its report: the error path runs last,
    # in a separate process, as a user would meet it.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli",
            "preview",
            "--repo",
            str(repo),
            "--base",
            base,
            "--head",
            head,
            "--output",
            str(tmp_path / "no-such-dir" / "report.json"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--kustomize",
            str(kustomize_bin),
            "--helm",
            str(helm_bin),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert done.returncode == 2
    assert done.stderr.startswith("tidegate: error: --output ")
    assert "Traceback" not in done.stderr
    _assert_clean(done.stdout + done.stderr, "the command's output")
