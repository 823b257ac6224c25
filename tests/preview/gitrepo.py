"""Build real git repositories for preview tests from file trees written as dicts."""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Mapping
from pathlib import Path

Files = Mapping[str, str | None]
"""Repository path -> content (dedented), or None to delete the file."""


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` with a fixed identity and return stdout."""
    done = subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@tidegate.dev", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def write(repo: Path, files: Files) -> None:
    """Write (or delete) files in a work tree."""
    for path, content in files.items():
        target = repo / path
        if content is None:
            target.unlink()
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(content).lstrip())


def commit(repo: Path, files: Files, message: str) -> str:
    """Apply `files`, commit everything and return the new commit id."""
    write(repo, files)
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def new_repo(root: Path, files: Files) -> tuple[Path, str]:
    """Create a repository on branch main with one commit; return it and the commit id."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "--quiet", "--initial-branch=main")
    return root, commit(root, files, "base")


def flux_cluster(name: str = "production") -> dict[str, str]:
    """The files `flux bootstrap` writes for a cluster entry point."""
    return {
        f"clusters/{name}/flux-system/kustomization.yaml": """
            apiVersion: kustomize.config.k8s.io/v1beta1
            kind: Kustomization
            resources: [gotk-sync.yaml]
        """,
        f"clusters/{name}/flux-system/gotk-sync.yaml": f"""
            apiVersion: source.toolkit.fluxcd.io/v1
            kind: GitRepository
            metadata: {{name: flux-system, namespace: flux-system}}
            spec: {{interval: 1m, url: https://git.example.com/fleet.git, ref: {{branch: main}}}}
            ---
            apiVersion: kustomize.toolkit.fluxcd.io/v1
            kind: Kustomization
            metadata: {{name: flux-system, namespace: flux-system}}
            spec:
              interval: 10m
              path: ./clusters/{name}
              prune: true
              sourceRef: {{kind: GitRepository, name: flux-system}}
        """,
    }


def kustomization(name: str, path: str, *, prune: bool = True, extra: str = "") -> str:
    """A Flux Kustomization document."""
    spec_extra = textwrap.indent(textwrap.dedent(extra).strip(), "  ") if extra else ""
    return (
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\n"
        "kind: Kustomization\n"
        f"metadata: {{name: {name}, namespace: flux-system}}\n"
        "spec:\n"
        "  interval: 10m\n"
        f"  path: {path}\n"
        f"  prune: {str(prune).lower()}\n"
        "  sourceRef: {kind: GitRepository, name: flux-system}\n"
        + (spec_extra + "\n" if spec_extra else "")
    )


def configmap(name: str, namespace: str, **data: str) -> str:
    """A ConfigMap document."""
    body = "".join(f"  {key}: {value!r}\n" for key, value in data.items()) or "  {}\n"
    return (
        "apiVersion: v1\nkind: ConfigMap\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\n"
        f"data:\n{body}"
    )
