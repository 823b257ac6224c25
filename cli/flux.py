"""`tidegate get|suspend|resume|reconcile`: the common `flux` verbs for Kustomizations and sources.

They read and patch exactly what Flux's CLI does, so they work whichever controller reconciles the
objects: `get` lists and prints flux's table (NAME, REVISION, SUSPENDED, READY, MESSAGE);
`suspend`/`resume` merge-patch `spec.suspend`; `reconcile` merge-patches the
`reconcile.fluxcd.io/requestedAt` annotation with the current time (RFC 3339). `resume` and
`reconcile` then poll (every 2s, up to `--timeout`) the way flux does:

- resume: until the object's generation is observed (`status.observedGeneration` and the Ready
  condition's `observedGeneration`) and it is Current;
- reconcile: until `status.lastHandledReconcileAt` differs from its value before the annotation
  and the object is Current;
- then Ready must be True, else `<Kind> reconciliation failed: <Ready message>`.

"Current" is kstatus's rule for condition-based objects: the generation is observed, no
`Stalled=True` (Failed: stop at once) and no `Reconciling=True` (InProgress: keep polling).
Exit codes follow kubectl: 0 done, 1 any failure (not found, suspended, failed, timed out).
Without a kind, `tidegate reconcile` runs the controller instead (`cli.reconcile`).
This module must not reach the cluster except through `core.cluster.fluxobjects`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cli import reconcile as controller
from core.cluster.fluxobjects import GIT_REPOSITORY, KUSTOMIZATION, FluxKind, LiveCluster
from core.cluster.port import ClusterError
from core.errors import TidegateError

__all__ = ["FluxObjects", "Waiter", "kstatus", "register", "summarise", "table"]

EXIT_OK = 0
EXIT_FAILED = 1
DEFAULT_NAMESPACE = "flux-system"
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
POLL_SECONDS = 2.0
HEX_SHOWN = 8


class FluxObjects(Protocol):
    """The calls the verbs make; `LiveCluster` is the real one."""

    def get(self, kind: FluxKind, namespace: str, name: str) -> dict[str, Any]:
        """The object, or `NotFound`."""

    def list(
        self, kind: FluxKind, namespace: str | None, label_selector: str = ""
    ) -> list[dict[str, Any]]:
        """Objects of `kind` in `namespace` (all namespaces when None)."""

    def merge_patch(
        self, kind: FluxKind, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        """Apply a JSON merge patch and return the object."""


class VerbFailed(TidegateError):  # noqa: N818 - a user-facing outcome, printed with flux's mark
    """The verb could not do what was asked; the message is shown after `✗`."""


@dataclass(frozen=True)
class Waiter:
    """How long and how often to poll (seams for tests)."""

    timeout: float
    interval: float = POLL_SECONDS
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


def register(subparsers: Any) -> None:
    """Add `get`, `suspend`, `resume` and `reconcile`."""
    get = subparsers.add_parser("get", help="list Kustomizations or Git sources like `flux get`")
    get.add_argument("what", choices=("ks", "kustomizations", "kustomization", "sources", "source"))
    get.add_argument("source_kind", nargs="?", choices=("git",), help="source kind (git)")
    get.add_argument("-A", "--all-namespaces", action="store_true")
    _common(get)
    get.set_defaults(handler=_get)
    for verb, handler, text in (
        ("suspend", _suspend, "suspend reconciliation of a Kustomization"),
        ("resume", _resume, "resume a Kustomization and wait until it is reconciled"),
    ):
        parser = subparsers.add_parser(verb, help=text)
        parser.add_argument("what", choices=("ks", "kustomization"))
        parser.add_argument("name")
        _common(parser)
        parser.set_defaults(handler=handler)
    reconcile = subparsers.add_parser(
        "reconcile",
        help="request a reconcile and wait (ks NAME | source git NAME), or run the controller",
        epilog=controller.EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    reconcile.add_argument(
        "what",
        nargs="?",
        choices=("ks", "kustomization", "source"),
        help="omit to run the controller",
    )
    reconcile.add_argument("args", nargs="*", metavar="NAME", help="ks NAME, or source git NAME")
    reconcile.add_argument("--with-source", action="store_true", help="reconcile the source first")
    _common(reconcile)
    controller.add_controller_arguments(reconcile)
    reconcile.set_defaults(handler=_reconcile)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--namespace", default=DEFAULT_NAMESPACE)
    parser.add_argument("--kubeconfig", type=Path, default=None)
    parser.add_argument("--context", default=None)
    parser.add_argument("--timeout", type=_duration, default=300.0, help="e.g. 90s, 5m (5m)")
    parser.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)


def _duration(text: str) -> float:
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    try:
        value = float(text[:-1]) * units[text[-1]] if text[-1:] in units else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use 30s, 5m, 1h)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"the timeout must be positive: {text!r}")
    return value


# --- reading status -----------------------------------------------------------------------------


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The status condition of type `kind`, if any."""
    for item in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(item, dict) and item.get("type") == kind:
            return item
    return None


def kstatus(obj: dict[str, Any]) -> str:
    """`Current`, `InProgress` or `Failed`, by kstatus's rules for condition-based objects."""
    generation = (obj.get("metadata") or {}).get("generation")
    observed = (obj.get("status") or {}).get("observedGeneration")
    if observed is not None and generation is not None and observed != generation:
        return "InProgress"
    stalled = condition(obj, "Stalled")
    if stalled is not None and stalled.get("status") == "True":
        return "Failed"
    reconciling = condition(obj, "Reconciling")
    if reconciling is not None and reconciling.get("status") == "True":
        return "InProgress"
    return "Current"


def summarise(obj: dict[str, Any], kind: FluxKind) -> list[str]:
    """One table row: NAME, REVISION, SUSPENDED, READY, MESSAGE (flux's columns)."""
    status = obj.get("status") or {}
    if kind is KUSTOMIZATION:
        revision = str(status.get("lastAppliedRevision") or "")
    else:
        revision = str((status.get("artifact") or {}).get("revision") or "")
    suspended = "True" if (obj.get("spec") or {}).get("suspend") is True else "False"
    ready = condition(obj, "Ready")
    if ready is None:
        state, message = "False", "waiting to be reconciled"
    else:
        state, message = str(ready.get("status", "Unknown")), str(ready.get("message", ""))
    name = str((obj.get("metadata") or {}).get("name", ""))
    return [name, _short_revision(revision), suspended, state, message]


def _short_revision(revision: str) -> str:
    # `main@sha1:<40 hex>` is shown as `main@sha1:<8 hex>`, as flux prints it.
    head, sep, digest = revision.rpartition(":")
    if sep and len(digest) > HEX_SHOWN and all(c in "0123456789abcdef" for c in digest):
        return f"{head}:{digest[:HEX_SHOWN]}"
    return revision


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned, tab-separated columns (flux's printer pads cells and ends them with a tab)."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("\t".join(cells).rstrip())
    return "\n".join(lines)


# --- the verbs ----------------------------------------------------------------------------------


def get(cluster: FluxObjects, kind: FluxKind, namespace: str | None, out: Any, err: Any) -> int:
    """Print the table of `kind` objects in `namespace` (all namespaces when None)."""
    items = sorted(
        cluster.list(kind, namespace),
        key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]),
    )
    if not items:
        where = "any" if namespace is None else namespace
        print(f"✗ no {kind.kind} objects found in {where} namespace", file=err)
        return EXIT_OK
    header = ["NAME", "REVISION", "SUSPENDED", "READY", "MESSAGE"]
    rows = [summarise(item, kind) for item in items]
    if namespace is None:
        header = ["NAMESPACE", *header]
        rows = [
            [o["metadata"].get("namespace", ""), *row] for o, row in zip(items, rows, strict=True)
        ]
    print(table(header, rows), file=out)
    return EXIT_OK


def suspend(cluster: FluxObjects, namespace: str, name: str, out: Any) -> None:
    """Set `spec.suspend: true` (and nothing else, as flux does)."""
    cluster.get(KUSTOMIZATION, namespace, name)
    print(f"► suspending kustomization {name} in {namespace} namespace", file=out)
    cluster.merge_patch(KUSTOMIZATION, namespace, name, {"spec": {"suspend": True}})
    print("✔ kustomization suspended", file=out)


def resume(cluster: FluxObjects, namespace: str, name: str, wait: Waiter, out: Any) -> None:
    """Set `spec.suspend: false`, then wait until the new generation is reconciled and Ready."""
    cluster.get(KUSTOMIZATION, namespace, name)
    print(f"► resuming kustomization {name} in {namespace} namespace", file=out)
    patched = cluster.merge_patch(KUSTOMIZATION, namespace, name, {"spec": {"suspend": False}})
    print("✔ kustomization resumed", file=out)
    print("◎ waiting for Kustomization reconciliation", file=out)
    generation = patched["metadata"].get("generation")

    def observed(obj: dict[str, Any]) -> bool:
        status = obj.get("status") or {}
        if (status.get("observedGeneration") or 0) < 1:
            return False
        ready = condition(obj, "Ready")
        if ready is None:
            return False
        seen = ready.get("observedGeneration") or status.get("observedGeneration")
        return bool(seen == obj["metadata"].get("generation") and seen >= (generation or 0))

    done = _poll(cluster, KUSTOMIZATION, namespace, name, wait, observed)
    revision = (done.get("status") or {}).get("lastAppliedRevision", "")
    print(f"✔ applied revision {revision}", file=out)


def reconcile(
    cluster: FluxObjects, kind: FluxKind, namespace: str, name: str, wait: Waiter, out: Any
) -> dict[str, Any]:
    """Annotate `requestedAt`, wait for the controller to handle it, and require Ready=True."""
    label = kind.kind if kind is KUSTOMIZATION else f"source {kind.kind}"
    obj = cluster.get(kind, namespace, name)
    if (obj.get("spec") or {}).get("suspend") is True:
        raise VerbFailed("resource is suspended")
    before = (obj.get("status") or {}).get("lastHandledReconcileAt")
    print(f"► annotating {label} {name} in {namespace} namespace", file=out)
    stamp = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    cluster.merge_patch(kind, namespace, name, {"metadata": {"annotations": {REQUESTED_AT: stamp}}})
    print(f"✔ {label} annotated", file=out)
    print(f"◎ waiting for {kind.kind} reconciliation", file=out)

    def handled(current: dict[str, Any]) -> bool:
        return (current.get("status") or {}).get("lastHandledReconcileAt") not in (None, before)

    return _poll(cluster, kind, namespace, name, wait, handled)


def _poll(
    cluster: FluxObjects,
    kind: FluxKind,
    namespace: str,
    name: str,
    wait: Waiter,
    reached: Callable[[dict[str, Any]], bool],
) -> dict[str, Any]:
    deadline = wait.clock() + wait.timeout
    while True:
        obj = cluster.get(kind, namespace, name)
        state = kstatus(obj)
        ready = condition(obj, "Ready") or {}
        if reached(obj) and state == "Failed":
            raise VerbFailed(f"{kind.kind} reconciliation failed: {ready.get('message', '')}")
        if reached(obj) and state == "Current":
            if ready.get("status") != "True":
                raise VerbFailed(f"{kind.kind} reconciliation failed: {ready.get('message', '')}")
            return obj
        if wait.clock() >= deadline:
            raise VerbFailed(
                f"timed out waiting for {kind.kind} {namespace}/{name} to be reconciled "
                f"(after {wait.timeout:g}s)"
            )
        wait.sleep(wait.interval)


# --- argument handling --------------------------------------------------------------------------


def _connect(args: argparse.Namespace) -> LiveCluster:
    return LiveCluster.from_kubeconfig(args.kubeconfig, args.context)


def _guard(action: Callable[[LiveCluster], int], args: argparse.Namespace) -> int:
    try:
        cluster = _connect(args)
    except ClusterError as exc:
        print(f"✗ {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        return action(cluster)
    except TidegateError as exc:
        print(f"✗ {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        cluster.close()


def _get(args: argparse.Namespace) -> int:
    kind = GIT_REPOSITORY if args.what.startswith("source") else KUSTOMIZATION
    namespace = None if args.all_namespaces else args.namespace
    return _guard(lambda c: get(c, kind, namespace, sys.stdout, sys.stderr), args)


def _suspend(args: argparse.Namespace) -> int:
    def run(cluster: LiveCluster) -> int:
        suspend(cluster, args.namespace, args.name, sys.stdout)
        return EXIT_OK

    return _guard(run, args)


def _resume(args: argparse.Namespace) -> int:
    def run(cluster: LiveCluster) -> int:
        resume(cluster, args.namespace, args.name, Waiter(args.timeout), sys.stdout)
        return EXIT_OK

    return _guard(run, args)


def _reconcile(args: argparse.Namespace) -> int:
    if args.what is None:
        if args.args:
            print(
                "✗ usage: tidegate reconcile ks NAME, or no kind to run the controller",
                file=sys.stderr,
            )
            return EXIT_FAILED
        return controller.run_controller(args)
    if args.what == "source":
        if len(args.args) != 2 or args.args[0] != "git":
            print("✗ usage: tidegate reconcile source git NAME", file=sys.stderr)
            return EXIT_FAILED
        name = args.args[1]
    elif len(args.args) != 1:
        print("✗ usage: tidegate reconcile ks NAME [--with-source]", file=sys.stderr)
        return EXIT_FAILED
    else:
        name = args.args[0]

    def run(cluster: LiveCluster) -> int:
        wait = Waiter(args.timeout)
        if args.what == "source":
            _reconcile_source(cluster, args.namespace, name, wait)
            return EXIT_OK
        if args.with_source:
            ks = cluster.get(KUSTOMIZATION, args.namespace, name)
            ref = (ks.get("spec") or {}).get("sourceRef") or {}
            if ref.get("kind") != GIT_REPOSITORY.kind:
                raise VerbFailed(
                    f"Kustomization {args.namespace}/{name}: spec.sourceRef.kind "
                    f"{ref.get('kind')!r} is not supported by --with-source (GitRepository only)"
                )
            _reconcile_source(cluster, ref.get("namespace") or args.namespace, ref["name"], wait)
        done = reconcile(cluster, KUSTOMIZATION, args.namespace, name, wait, sys.stdout)
        print(f"✔ applied revision {(done.get('status') or {}).get('lastAppliedRevision', '')}")
        return EXIT_OK

    return _guard(run, args)


def _reconcile_source(cluster: FluxObjects, namespace: str, name: str, wait: Waiter) -> None:
    done = reconcile(cluster, GIT_REPOSITORY, namespace, name, wait, sys.stdout)
    revision = ((done.get("status") or {}).get("artifact") or {}).get("revision", "")
    print(f"✔ fetched revision {revision}")
