"""`tidegate reconcile` without a kind: run the reconciler controller (Flux's flags and defaults).

`tidegate reconcile ks NAME` (and `source git NAME`) is the `flux reconcile` verb of
`cli.flux`; the same subcommand with no kind runs the controller. This module adds the
controller's flags to that parser and starts `reconciler.runtime.Runtime` with them. Flags are
spelled as kustomize-controller's (`--concurrent`, `--requeue-dependency`,
`--watch-all-namespaces`, `--enable-leader-election`, `--metrics-addr`, `--health-addr`, ...);
booleans accept Go's `--flag`, `--flag=true` and `--flag=false`. Bad values are argparse errors
naming the flag, never tracebacks.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from core.errors import TidegateError
from core.host import tools

# The reconciler (and with it the Kubernetes client) is imported by `run_controller`: the flags
# are registered on every start of `tidegate`, the controller runs rarely.

__all__ = ["EPILOG", "add_controller_arguments", "run_controller"]

EPILOG = """\
two modes:
  tidegate reconcile ks NAME [--with-source]   request a reconcile of a Kustomization and wait
  tidegate reconcile source git NAME           the same for a GitRepository
  tidegate reconcile [controller flags]        run the reconciler controller until SIGTERM:
                                               out of cluster with --kubeconfig, in cluster
                                               with its ServiceAccount
"""

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "error": logging.ERROR}


def add_controller_arguments(parser: argparse.ArgumentParser) -> None:
    """The controller's flags (ignored by the verbs)."""
    group = parser.add_argument_group("controller flags (without a kind)")
    group.add_argument("--concurrent", type=_positive_int, default=4, help="workers (4)")
    group.add_argument(
        "--requeue-dependency",
        type=_duration,
        default=30.0,
        help="retry delay for an unready dependency or source (30s)",
    )
    group.add_argument(
        "--watch-all-namespaces",
        type=_bool,
        nargs="?",
        const=True,
        default=True,
        help="watch every namespace, else only the runtime namespace (true)",
    )
    group.add_argument(
        "--watch-label-selector",
        type=_label_selector,
        default="",
        help="only objects matching it (sharding)",
    )
    group.add_argument(
        "--enable-leader-election",
        type=_bool,
        nargs="?",
        const=True,
        default=False,
        help="reconcile only while holding the Lease (false)",
    )
    group.add_argument("--leader-election-lease-duration", type=_duration, default=35.0)
    group.add_argument("--leader-election-renew-deadline", type=_duration, default=30.0)
    group.add_argument("--leader-election-retry-period", type=_duration, default=5.0)
    group.add_argument("--metrics-addr", type=_address, default=("0.0.0.0", 8080))  # noqa: S104
    group.add_argument("--health-addr", type=_address, default=("0.0.0.0", 9440))  # noqa: S104
    group.add_argument(
        "--no-cross-namespace-refs", type=_bool, nargs="?", const=True, default=False
    )
    group.add_argument("--default-service-account", default="")
    group.add_argument("--interval-jitter-percentage", type=_percentage, default=5.0)
    group.add_argument("--min-retry-delay", type=_duration, default=0.75)
    group.add_argument("--max-retry-delay", type=_duration, default=900.0)
    group.add_argument(
        "--artifact-allow-loopback",
        type=_bool,
        nargs="?",
        const=True,
        default=False,
        help="download artifacts from loopback addresses (development clusters only)",
    )
    group.add_argument(
        "--storage-path", type=Path, default=None, help="where GitRepository artifacts are kept"
    )
    group.add_argument(
        "--storage-addr",
        type=_address,
        default=("0.0.0.0", 9090),  # noqa: S104 - the artifact server faces the cluster
        help="the artifact server's address (:9090)",
    )
    group.add_argument(
        "--storage-adv-addr", default="", help="the artifact server's advertised host:port"
    )
    group.add_argument(
        "--notification-allow-loopback",
        type=_bool,
        nargs="?",
        const=True,
        default=False,
        help="deliver notifications to loopback addresses (development clusters only; false)",
    )
    group.add_argument(
        "--predict-repository",
        type=Path,
        default=None,
        help="predict from a local clone of the source holding every applied commit instead of "
        "from the artifacts the controller keeps (development use; off)",
    )
    group.add_argument(
        "--predict",
        type=_bool,
        nargs="?",
        const=True,
        default=True,
        help="preview each applied revision of a Kustomization from the last one, from the "
        "artifacts the controller keeps, and say in its commit status whether it was applied as "
        "previewed (true)",
    )
    group.add_argument(
        "--predict-cluster",
        default="",
        help="the cluster entry point (clusters/NAME) previewed whole for a Kustomization whose "
        "render needs objects of other units (postBuild.substituteFrom); without it such a "
        "Kustomization is not predicted (off)",
    )
    group.add_argument("--kustomize", type=Path, default=None, help="the kustomize binary")
    group.add_argument("--helm", type=Path, default=None, help="the helm binary (predictions)")
    group.add_argument("--work-dir", type=Path, default=None, help="artifacts and builds")
    group.add_argument("--log-level", choices=tuple(_LEVELS), default="info")
    group.add_argument("--log-encoding", choices=("json", "console"), default="json")


def run_controller(args: argparse.Namespace) -> int:
    """Run the controller until SIGTERM."""
    from reconciler import logs
    from reconciler.runtime import Runtime, Settings
    from reconciler.wiring import controllers

    if args.log_encoding == "json":
        logs.configure(_LEVELS[args.log_level])
    else:
        logging.basicConfig(level=_LEVELS[args.log_level])
    settings = Settings(
        kustomize=_kustomize(args.kustomize),
        kubeconfig=args.kubeconfig,
        concurrent=args.concurrent,
        requeue_dependency=args.requeue_dependency,
        watch_all_namespaces=args.watch_all_namespaces,
        watch_label_selector=args.watch_label_selector,
        enable_leader_election=args.enable_leader_election,
        metrics_addr=args.metrics_addr,
        health_addr=args.health_addr,
        no_cross_namespace_refs=args.no_cross_namespace_refs,
        default_service_account=args.default_service_account,
        leader_election_lease_duration=args.leader_election_lease_duration,
        leader_election_renew_deadline=args.leader_election_renew_deadline,
        leader_election_retry_period=args.leader_election_retry_period,
        interval_jitter_percentage=args.interval_jitter_percentage,
        min_retry_delay=args.min_retry_delay,
        max_retry_delay=args.max_retry_delay,
        artifact_allow_loopback=args.artifact_allow_loopback,
        work_dir=args.work_dir,
        storage_path=args.storage_path,
        storage_addr=args.storage_addr,
        storage_adv_addr=args.storage_adv_addr,
        notification_allow_loopback=args.notification_allow_loopback,
        predict=args.predict,
        predict_repository=_predict_repository(args),
        predict_cluster=args.predict_cluster,
        helm=_tool("helm", args.helm) if args.predict_cluster else args.helm,
    )
    return Runtime(settings, controllers).run()


def _kustomize(explicit: Path | None) -> Path:
    return _tool("kustomize", explicit)


def _tool(name: str, explicit: Path | None) -> Path:
    """The flag, else `TIDEGATE_<NAME>`, else PATH; never a build (see `core.host.tools`)."""
    variable = f"TIDEGATE_{name.upper()}"
    configured = explicit if explicit is not None else os.environ.get(variable)
    return tools.locate(name, configured, setting=f"--{name} or {variable}")


def _predict_repository(args: argparse.Namespace) -> Path | None:
    """`--predict-repository` needs `--predict-cluster`: a prediction is for one cluster."""
    repository: Path | None = args.predict_repository
    if repository is None:
        return None
    if not args.predict_cluster:
        raise TidegateError("--predict-repository needs --predict-cluster (clusters/NAME)")
    if not (repository / ".git").exists() and not (repository / "HEAD").is_file():
        raise TidegateError(f"--predict-repository: {repository} is not a git repository")
    return repository


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1", "t"):
        return True
    if lowered in ("false", "0", "f"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r} (use true or false)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _label_selector(text: str) -> str:
    """A label selector the controller can also match itself (it filters sources locally)."""
    from reconciler import label_selector

    try:
        label_selector.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a label selector: {exc}") from None
    return text


def _percentage(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < 100:
        raise argparse.ArgumentTypeError(f"must be in [0, 100): {text!r}")
    return value


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _duration(text: str) -> float:
    """A Go duration of one unit (750ms, 30s, 15m, 1h)."""
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit):
            try:
                value = float(text[: -len(unit)]) * _UNITS[unit]
            except ValueError:
                break
            if value <= 0:
                raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
            return value
    raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use 750ms, 30s, 15m, 1h)")


def _address(text: str) -> tuple[str, int]:
    """`host:port` or `:port` (every address), as Go's listeners take it."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"not an address: {text!r} (use :8080 or 127.0.0.1:8080)")
    return (host.strip("[]") or "0.0.0.0"), int(port)  # noqa: S104 - ':port' means every address
