"""Build Tidegate's OCI image without a container engine, and run its entrypoint unprivileged.

The `Dockerfile` is for machines with Docker; this module builds an equivalent image from
parts a Debian machine has (run as root, as debootstrap and chroot need):

1. a Debian rootfs from `debootstrap --variant=minbase` with Python, git, OpenSSH's client and CA
   certificates, cached in the user cache and keyed by suite, packages and mirror, so later
   builds start from a copy;
2. the project installed with pip into a virtualenv at `/opt/tidegate` inside it (dependencies
   pinned exactly by pyproject.toml, from PyPI), the pinned kustomize and helm (built from
   `tools/*/go.mod` by `devenv.toolchain`) in `/usr/local/bin`, and a `tidegate` user 65532;
3. that tree packed as one layer into an OCI image layout by `umoci`, with the entrypoint,
   user, environment and port set in the image configuration.

`push` copies a layout to a registry with `skopeo`; `unpack` takes an image back out of a
registry into a rootless bundle, and `run_entrypoint` runs the image's own entrypoint and user
from that bundle's runtime configuration in a user namespace (`unshare --root`), which is how
the tests serve `/healthz` from the image. This is development tooling: it is not imported by
the product and never runs in a cluster.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from core.errors import TidegateError
from devenv import toolchain
from devenv.filelock import exclusive

__all__ = [
    "BASE_PACKAGES",
    "ImageError",
    "build",
    "push",
    "run_entrypoint",
    "unpack",
]

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = ("python3", "python3-venv", "git", "openssh-client", "ca-certificates")
"""What the image needs beyond minbase (the Dockerfile's base image has the same)."""
USER = 65532
PREFIX = "/opt/tidegate"
SOURCE_DIR = "/opt/tidegate-source"
"""Where the sources sit in the rootfs while pip installs them (removed afterwards)."""
SOURCES = ("pyproject.toml", "README.md", "core", "app", "reconciler", "policies", "devenv", "cli")
"""What pip installs from (the same as the Dockerfile copies)."""
ROOT = Path(__file__).resolve().parents[1]


class ImageError(TidegateError):
    """A build step failed; the message carries the end of its output."""


def build(layout: Path, tag: str, work: Path) -> None:
    """Build the image into the OCI layout `layout` as `tag`, using `work` as scratch space."""
    rootfs = work / "rootfs"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    _run(["cp", "-a", str(_base()), str(rootfs)])
    _install(rootfs)
    _pack(rootfs, layout, tag, work / "bundle")


def push(layout: Path, tag: str, reference: str) -> None:
    """Copy `layout:tag` to `reference` (`HOST:PORT/NAME:TAG`, plain HTTP on loopback)."""
    _run(
        [
            "skopeo",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            f"oci:{layout}:{tag}",
            f"docker://{reference}",
        ]
    )


def unpack(reference: str, bundle: Path) -> None:
    """Pull `reference` from the registry and unpack it as a rootless runtime bundle."""
    layout = bundle.with_name(bundle.name + "-layout")
    _run(
        [
            "skopeo",
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            f"docker://{reference}",
            f"oci:{layout}:pulled",
        ]
    )
    _run(["umoci", "unpack", "--rootless", "--image", f"{layout}:pulled", str(bundle)])


def run_entrypoint(
    bundle: Path, args: Sequence[str], env: Mapping[str, str], log: Path
) -> subprocess.Popen[bytes]:
    """Start the image's entrypoint with `args` (as its CMD) in a user namespace.

    The process runs as the image's user (mapped from the caller), chrooted into the bundle's
    rootfs, with the image's environment plus `env`; network and PIDs are the host's, so a
    server it starts on loopback can be reached by the caller.
    """
    spec = json.loads((bundle / "config.json").read_text())
    process = spec["process"]
    # umoci wrote the runtime args as entrypoint + cmd; the caller's args replace the cmd.
    entrypoint = _image_config(bundle)["Entrypoint"]
    user = int(process["user"]["uid"])
    environment = dict(item.split("=", 1) for item in process.get("env", []))
    environment.update(env)
    argv = [
        "unshare",
        f"--map-user={user}",
        f"--map-group={int(process['user']['gid'])}",
        "--mount",
        f"--root={bundle / 'rootfs'}",
        f"--wd={process.get('cwd') or '/'}",
        "env",
        "-i",
        *[f"{key}={value}" for key, value in environment.items()],
        *entrypoint,
        *args,
    ]
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)


def _image_config(bundle: Path) -> dict[str, list[str]]:
    """The `config` of the image `unpack` pulled into the layout beside `bundle`."""
    blobs = bundle.with_name(bundle.name + "-layout") / "blobs" / "sha256"
    [entry] = json.loads((blobs.parent.parent / "index.json").read_text())["manifests"]
    manifest = json.loads((blobs / entry["digest"].split(":", 1)[1]).read_text())
    config = json.loads((blobs / manifest["config"]["digest"].split(":", 1)[1]).read_text())
    found: dict[str, list[str]] = config["config"]
    return found


def _base() -> Path:
    """The cached Debian rootfs (built once per suite, package list and mirror)."""
    key = hashlib.sha256(f"{SUITE} {MIRROR} {' '.join(BASE_PACKAGES)}".encode()).hexdigest()
    base = toolchain.cache_root() / f"image-base-{key[:16]}"
    with exclusive(base.with_suffix(".lock")):
        if (base / ".complete").exists():
            return base
        shutil.rmtree(base, ignore_errors=True)
        partial = base.with_name(base.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                SUITE,
                str(partial),
                MIRROR,
            ],
            timeout=3600,
        )
        # Package indexes and downloaded .debs are build leftovers, not part of the image.
        for leftover in ("var/lib/apt/lists", "var/cache/apt/archives"):
            for path in (partial / leftover).glob("*"):
                if path.is_file():
                    path.unlink()
        partial.rename(base)
        (base / ".complete").touch()
    return base


def _install(rootfs: Path) -> None:
    """The project in a virtualenv, the pinned tools and the unprivileged user."""
    (rootfs / ".complete").unlink(missing_ok=True)
    source = rootfs / SOURCE_DIR.lstrip("/")
    source.mkdir(parents=True)
    for name in SOURCES:
        target = source / name
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, target)
    # pip inside the chroot resolves PyPI's name with the host's resolver configuration and
    # trusts the certificates the host's pip trusts (a proxy's own CA, say); both leave the
    # rootfs with the sources, so the build machine's trust never ships in the image.
    shutil.copy2("/etc/resolv.conf", rootfs / "etc" / "resolv.conf")
    shutil.copy2(_host_certificates(), source / "certificates.pem")
    try:
        _chroot(rootfs, ["python3", "-m", "venv", PREFIX])
        _chroot(
            rootfs,
            [f"{PREFIX}/bin/pip", "install", "--quiet", "--no-cache-dir", SOURCE_DIR],
            timeout=3600,
            env={"PIP_CERT": f"{SOURCE_DIR}/certificates.pem"},
        )
    finally:
        (rootfs / "etc" / "resolv.conf").unlink(missing_ok=True)
        shutil.rmtree(source, ignore_errors=True)
    for tool in ("kustomize", "helm"):
        shutil.copy2(toolchain.binary(tool), rootfs / "usr" / "local" / "bin" / tool)
    _chroot(rootfs, ["useradd", "--uid", str(USER), "--create-home", "tidegate"])


def _pack(rootfs: Path, layout: Path, tag: str, bundle: Path) -> None:
    """One layer of `rootfs`, and the image configuration, into `layout:tag`."""
    image = f"{layout}:{tag}"
    if not (layout / "index.json").exists():
        _run(["umoci", "init", "--layout", str(layout)])
    _run(["umoci", "new", "--image", image])
    _run(["umoci", "unpack", "--image", image, str(bundle)])
    (bundle / "rootfs").rmdir()
    rootfs.rename(bundle / "rootfs")
    _run(["umoci", "repack", "--image", image, str(bundle)])
    _run(
        [
            "umoci",
            "config",
            "--image",
            image,
            "--os=linux",
            f"--config.user={USER}:{USER}",
            f"--config.entrypoint={PREFIX}/bin/tidegate",
            "--config.cmd=--help",
            f"--config.env=PATH={PREFIX}/bin:/usr/local/bin:/usr/bin:/bin",
            "--config.env=HOME=/home/tidegate",
            "--config.workingdir=/home/tidegate",
            "--config.exposedports=8080/tcp",
        ]
    )
    _run(["umoci", "gc", "--layout", str(layout)])


def _host_certificates() -> str:
    """The CA bundle the host's pip uses."""
    for name in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        if os.environ.get(name):
            return os.environ[name]
    return "/etc/ssl/certs/ca-certificates.crt"


def _chroot(
    rootfs: Path, argv: Sequence[str], *, timeout: float = 600, env: Mapping[str, str] = {}
) -> None:
    environment = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    environment |= {"HOME": "/root", "LANG": "C.UTF-8", **env}
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    _run([chroot, str(rootfs), *argv], timeout=timeout, env=environment)


def _run(
    argv: Sequence[str], *, timeout: float = 1200, env: Mapping[str, str] | None = None
) -> None:
    try:
        subprocess.run(
            list(argv),
            check=True,
            capture_output=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
        )
    except subprocess.CalledProcessError as exc:
        output = (exc.stdout or b"") + (exc.stderr or b"")
        tail = output.decode(errors="replace")[-3000:]
        raise ImageError(f"{argv[0]} {argv[1] if len(argv) > 1 else ''} failed:\n{tail}") from None
    except subprocess.TimeoutExpired:
        raise ImageError(f"{argv[0]} did not finish within {timeout:.0f} s") from None
