"""Builds the pinned Go tools from the project's own `tools/*/go.mod` and caches them.

Each tool set is one Go module under `tools/` whose go.mod/go.sum pin every dependency. Built
binaries live outside the repository in `<cache>/tools/<set>-<key>/`, where the key hashes the
module files, the link flags and the Go version, so a changed pin rebuilds and nothing else does.
Builds take a file lock, so parallel test workers wait for one build instead of racing.

This module must not download anything but Go modules named in those go.mod files.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from core.errors import TidegateError
from devenv.filelock import exclusive

__all__ = [
    "TOOL_SETS",
    "ToolSet",
    "ToolchainError",
    "binary",
    "cache_root",
    "ensure",
    "ensure_all",
    "set_for",
]

TOOLS_DIR = Path(__file__).resolve().parent.parent / "tools"


class ToolchainError(TidegateError):
    """A pinned tool could not be built."""


@dataclass(frozen=True)
class ToolSet:
    """One Go module under tools/ and the binaries built from it."""

    name: str
    packages: tuple[str, ...]
    """Import paths of the main packages; the binary name is the last path element."""
    version_flags: tuple[tuple[str, str], ...] = ()
    """(`-X` variable, go.mod module whose pinned version it receives)."""
    on_demand: bool = False
    """Built only when named: a benchmark peer the tests never run."""

    @property
    def module_dir(self) -> Path:
        """The directory holding this set's go.mod."""
        return TOOLS_DIR / self.name

    @property
    def binaries(self) -> tuple[str, ...]:
        """Names of the binaries this set produces."""
        return tuple(_binary_name(package) for package in self.packages)


def _binary_name(package: str) -> str:
    last = package.rstrip("/").rsplit("/", 1)[-1]
    # Modules with a major-version suffix (…/server/v3) name their binary after the element before.
    if re.fullmatch(r"v\d+", last):
        last = package.rstrip("/").rsplit("/", 2)[-2]
    return {"server": "etcd"}.get(last, last)


_K8S_VERSION = "k8s.io/kubernetes"
TOOL_SETS: dict[str, ToolSet] = {
    tool.name: tool
    for tool in (
        ToolSet(
            "k8s",
            (
                "k8s.io/kubernetes/cmd/kube-apiserver",
                "k8s.io/kubernetes/cmd/kube-controller-manager",
                "k8s.io/kubernetes/cmd/kube-scheduler",
                "k8s.io/kubernetes/cmd/kubectl",
            ),
            # Without these, /version reports v0.0.0-master and version gates misbehave.
            (
                ("k8s.io/component-base/version.gitVersion", _K8S_VERSION),
                ("k8s.io/client-go/pkg/version.gitVersion", _K8S_VERSION),
            ),
        ),
        ToolSet("etcd", ("go.etcd.io/etcd/server/v3",)),
        ToolSet("kwok", ("sigs.k8s.io/kwok/cmd/kwok",)),
        ToolSet(
            "kustomize",
            ("sigs.k8s.io/kustomize/kustomize/v5",),
            (
                (
                    "sigs.k8s.io/kustomize/api/provenance.version",
                    "sigs.k8s.io/kustomize/kustomize/v5",
                ),
            ),
        ),
        ToolSet(
            "helm",
            ("helm.sh/helm/v3/cmd/helm",),
            (("helm.sh/helm/v3/internal/version.version", "helm.sh/helm/v3"),),
        ),
        # Flux's own kustomize-controller: the peer `bench/` runs beside the reconciler. Large and
        # never needed by the tests, so only `tidegate dev tools build kustomize-controller` (or the
        # benchmark) builds it.
        ToolSet(
            "kustomize-controller", ("github.com/fluxcd/kustomize-controller",), on_demand=True
        ),
        # The CNCF distribution registry: tests pull OCI charts and Flux artifacts from it.
        ToolSet(
            "registry",
            ("github.com/distribution/distribution/v3/cmd/registry",),
            (
                (
                    "github.com/distribution/distribution/v3/version.version",
                    "github.com/distribution/distribution/v3",
                ),
            ),
        ),
    )
}


def set_for(binary_name: str) -> ToolSet:
    """Return the tool set that builds a binary (`kube-apiserver` -> the k8s set)."""
    for tool in TOOL_SETS.values():
        if binary_name in tool.binaries:
            return tool
    known = ", ".join(sorted(b for t in TOOL_SETS.values() for b in t.binaries))
    raise ToolchainError(f"no pinned tool builds '{binary_name}' (known: {known})")


def cache_root() -> Path:
    """Return Tidegate's cache directory (`$TIDEGATE_CACHE_DIR`, else the XDG cache)."""
    explicit = os.environ.get("TIDEGATE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tidegate"


def binary(binary_name: str) -> Path:
    """Return the path of a pinned binary, building its tool set first if needed."""
    return ensure(set_for(binary_name)) / binary_name


def ensure(tool: ToolSet, *, log: bool = True) -> Path:
    """Return the directory holding a tool set's binaries, building them when missing."""
    target = _target_dir(tool)
    if _complete(tool, target):
        return target
    with exclusive(target.parent / f".{tool.name}.lock"):
        if not _complete(tool, target):
            _build(tool, target, log=log)
    return target


def _complete(tool: ToolSet, target: Path) -> bool:
    return all((target / name).is_file() for name in tool.binaries)


def _target_dir(tool: ToolSet) -> Path:
    if not (tool.module_dir / "go.mod").is_file():
        raise ToolchainError(f"{tool.module_dir}/go.mod is missing; run from a source checkout")
    digest = hashlib.sha256()
    for file in ("go.mod", "go.sum"):
        digest.update((tool.module_dir / file).read_bytes())
    digest.update(" ".join(_ldflags(tool)).encode())
    digest.update(_go_version().encode())
    return cache_root() / "tools" / f"{tool.name}-{digest.hexdigest()[:16]}"


def _go_version() -> str:
    go = shutil.which("go")
    if go is None:
        raise ToolchainError(
            "Go is not installed; Go 1.26 or newer builds the pinned kube-apiserver, etcd, "
            "kwok, kustomize and helm (install it, or put `go` on PATH)"
        )
    info = os.stat(go)
    return _go_version_of(go, info.st_ino, info.st_size, info.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _go_version_of(go: str, inode: int, size: int, mtime_ns: int) -> str:
    """`go env GOVERSION` of one `go` binary, asked once per process while the file stays.

    Every pinned tool's path depends on it, so a preview asked twice (kustomize, helm), and a
    warm preview server asked again on every request, each starting a Go process for it.
    """
    done = subprocess.run(
        [go, "env", "GOVERSION"], capture_output=True, text=True, check=False, env=_go_env()
    )
    if done.returncode != 0:
        raise ToolchainError(f"`go env GOVERSION` failed: {done.stderr.strip()}")
    return done.stdout.strip()


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    # A too-new go directive must fail loudly instead of silently fetching another toolchain.
    env.update(GOTOOLCHAIN="local", CGO_ENABLED="0", GOFLAGS="-trimpath -mod=readonly")
    return env


def _pinned_versions(tool: ToolSet) -> dict[str, str]:
    text = (tool.module_dir / "go.mod").read_text()
    return dict(re.findall(r"^\s*(?:require\s+)?(\S+)\s+(v\S+)", text, flags=re.MULTILINE))


def _ldflags(tool: ToolSet) -> list[str]:
    versions = _pinned_versions(tool)
    flags = ["-s", "-w"]
    for variable, module in tool.version_flags:
        flags.append(f"-X {variable}={versions[module]}")
    if tool.name == "k8s":
        major, minor = versions[_K8S_VERSION].lstrip("v").split(".")[:2]
        flags += [
            f"-X k8s.io/component-base/version.gitMajor={major}",
            f"-X k8s.io/component-base/version.gitMinor={minor}",
            "-X k8s.io/component-base/version.gitTreeState=clean",
        ]
    return flags


def _build(tool: ToolSet, target: Path, *, log: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    names = ", ".join(tool.binaries)
    if log:
        print(f"building {names} (pinned in tools/{tool.name}/go.mod)", file=sys.stderr)
    # Build next to the target and rename, so a killed build never leaves a half-filled target.
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{tool.name}-"))
    try:
        for package, name in zip(tool.packages, tool.binaries, strict=True):
            _go_build(tool, package, scratch / name)
        shutil.rmtree(target, ignore_errors=True)
        scratch.replace(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if log:
        print(f"built {tool.name} in {time.monotonic() - started:.0f}s: {target}", file=sys.stderr)


def _go_build(tool: ToolSet, package: str, output: Path) -> None:
    done = subprocess.run(
        ["go", "build", "-ldflags", " ".join(_ldflags(tool)), "-o", str(output), package],
        cwd=tool.module_dir,
        capture_output=True,
        text=True,
        check=False,
        env=_go_env(),
    )
    if done.returncode != 0:
        raise ToolchainError(f"building {output.name} failed:\n{done.stderr.strip()[-4000:]}")


def ensure_all(names: Iterable[str] = ()) -> dict[str, Path]:
    """Build (when missing) the named tool sets or binaries, or all but the on-demand ones."""
    wanted = list(names) or [name for name, tool in TOOL_SETS.items() if not tool.on_demand]
    result: dict[str, Path] = {}
    for name in wanted:
        tool = TOOL_SETS.get(name) or set_for(name)
        result[tool.name] = ensure(tool)
    return result
