"""The reconciler's kustomize memo: what a build of an unchanged artifact costs on a memo hit.

The reconciler builds every Kustomization again at each interval, usually from the same artifact;
the build memo (`core.render.memo`) then answers kustomize's output without running it. This
measures one Kustomization of `--objects` ConfigMaps (1,000 by default, about 0.3 MiB of output,
as `bench.reconcile_floor`'s first scenario) built in this process through the reconciler's
cleartext build (`core.render.clear`, with the pinned kustomize):

- cold: the first build, kustomize runs;
- hit, keyed by the copied tree: the inputs are copied and every byte of them hashed for the key
  (what every build paid before the key came from the artifact's digest, and what a build from a
  plain directory still pays);
- hit, keyed by the artifact's digest: the key is taken before anything is copied.

For each: the median wall time of `--repeat` builds and their CPU time (user + system of this
process and its finished children, so kustomize's own run counts), and the load average.
Run from the repository root: `.venv/bin/python -m bench.build_memo [--objects 1000]`. It prints
JSON; nothing asserts a target.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from bench.timing import timed_medians
from core.host.files import DirectorySource
from core.render.clear import build_kustomization
from core.render.memo import BuildMemo
from core.units import KustomizationSpec, parse_unit
from devenv import toolchain

__all__ = ["main"]

_DIGEST = "sha256:" + "b" * 64


def _tree(root: Path, objects: int) -> Path:
    app = root / "app"
    app.mkdir(parents=True)
    names = []
    for i in range(objects):
        name = f"cm-{i:04d}.yaml"
        names.append(name)
        (app / name).write_text(
            "apiVersion: v1\nkind: ConfigMap\n"
            f"metadata: {{name: settings-{i}, namespace: apps}}\n"
            f"data: {{index: '{i}', payload: {'x' * 200}}}\n"
        )
    (app / "kustomization.yaml").write_text(json.dumps({"resources": names}))
    return root


def _spec() -> KustomizationSpec:
    obj = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "apps", "namespace": "flux-system"},
        "spec": {
            "interval": "10m",
            "prune": True,
            "path": "./app",
            "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
        },
    }
    parsed = parse_unit(obj, file="clusters/bench/apps.yaml")
    assert isinstance(parsed, KustomizationSpec)
    return parsed


def main(argv: list[str] | None = None) -> int:
    """Measure and print the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    kustomize = toolchain.binary("kustomize")
    spec = _spec()
    with tempfile.TemporaryDirectory(prefix="tidegate-bench-memo-") as scratch:
        source = DirectorySource(_tree(Path(scratch) / "artifact", args.objects))
        by_tree, by_digest = BuildMemo(), BuildMemo()

        def build(memo: BuildMemo | None, digest: str | None) -> int:
            built = build_kustomization(
                spec,
                source,
                kustomize_bin=kustomize,
                variables=None,
                work_root=Path(scratch),
                memo=memo,
                source_digest=digest,
            )
            return len(built.objects)

        count = build(None, None)
        cold = timed_medians(lambda: build(None, None), 3)
        build(by_tree, None)
        build(by_digest, _DIGEST)
        hit_tree = timed_medians(lambda: build(by_tree, None), args.repeat)
        hit_digest = timed_medians(lambda: build(by_digest, _DIGEST), args.repeat)
        assert by_tree.hits == by_digest.hits == args.repeat
    report = {
        "objects": count,
        "cold": cold,
        "hit_keyed_by_tree": hit_tree,
        "hit_keyed_by_artifact_digest": hit_digest,
        "tree_over_digest_cpu": round(hit_tree["cpu_ms"] / hit_digest["cpu_ms"], 2),
        "load_average_1m": round(os.getloadavg()[0], 1),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
