"""Notifications for the controller process: the notifier, its queue and the deploy reporter.

`deploy_reporting` assembles, over the process's cluster adapters, the `Notifier` (Alerts,
Providers and Secrets read from the cluster), its delivery queue (started here; the caller stops
it) and the `DeployReporter` that is both the pipeline's observer and the event subscriber in
front of the notifier. Receivers may be any public host; loopback, private and link-local
addresses are refused unless `policy` allows them. This module only assembles.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from core.fetch import FetchPolicy
from reconciler.notification.code_hosts import code_host
from reconciler.notification.delivery import Dispatcher
from reconciler.notification.lifecycle import DeployReporter, Predictor, Recorder, TreeHolder
from reconciler.notification.service import Notifier, ObjectStore

__all__ = ["DeployReporting", "deploy_reporting"]

DEFAULT_POLICY = FetchPolicy(allowed_hosts=None)
"""Any public host; no loopback, private or link-local address."""


@dataclass(frozen=True)
class DeployReporting:
    """What the process wires: the reporter (observer and subscriber) and the queue to stop."""

    reporter: DeployReporter
    dispatcher: Dispatcher


def deploy_reporting(
    store: ObjectStore,
    *,
    registry: CollectorRegistry | None = None,
    policy: FetchPolicy = DEFAULT_POLICY,
    cluster: str = "",
    instance: str = "",
    predictor: Predictor | None = None,
    recorder: Recorder | None = None,
    trees: TreeHolder | None = None,
) -> DeployReporting:
    """The started notification path of one controller process."""
    dispatcher = Dispatcher(policy)
    dispatcher.start()
    notifier = Notifier(store, dispatcher, hosts=code_host)
    reporter = DeployReporter(
        notifier.notify,
        cluster=cluster,
        predictor=predictor,
        recorder=recorder,
        trees=trees,
        registry=registry,
        instance=instance,
    )
    return DeployReporting(reporter, dispatcher)
