"""The notifier: from one reconciler event to queued requests for every Alert that selects it.

It reads Alerts, Providers and Secrets through `ObjectStore`, a port the live cluster adapter
implements (this package never imports a Kubernetes client), cleans the event's metadata as
notification-controller does on receipt, routes it, and submits one request per matching,
unsuspended Provider to the `Dispatcher` (commit-status updates only to git and generic Providers,
as Flux). github/gitlab Providers become queued commit-status jobs on the code-host port; an event
may carry `details` (the predicted-vs-applied report), which those Providers post as a comment on
the commit when, and only when, they set a new status, so a redelivered event adds no second
comment; a github Provider with GitHub App credentials writes a check run instead of a status, and
the details go into the run's text rather than a comment. A bad Alert, Provider or Secret is logged
by name and skipped; it never stops the other Alerts, and `notify` never raises or blocks on the
network.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from core.errors import InputError
from reconciler.notification.commit_status import (
    COMMIT_STATUS_TYPES,
    PENDING,
    HostFactory,
    post_status,
    repository_of,
    status_for,
)
from reconciler.notification.delivery import Dispatcher, Job
from reconciler.notification.event import Event, ObjectReference, clean_metadata
from reconciler.notification.objects import (
    API_VERSION,
    Alert,
    Credentials,
    Provider,
    parse_alert,
    parse_provider,
)
from reconciler.notification.providers import build_request
from reconciler.notification.routing import matching_alerts, notification_for

__all__ = ["Notifier", "ObjectStore"]

_LOG = logging.getLogger(__name__)
_TAKE_STATUS_EVENTS = frozenset(
    {"github", "gitlab", "gitea", "bitbucket", "bitbucketserver", "azuredevops"}
    | {"generic", "generic-hmac"}
)


def _status_only(event: Event) -> bool:
    return event.metadata.get("commit_status") in ("update", PENDING)


class ObjectStore(Protocol):
    """Read access to the cluster objects notifications need."""

    def list_objects(self, api_version: str, kind: str) -> Sequence[Mapping[str, Any]]:
        """Every object of the kind, in all namespaces."""

    def get_object(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> Mapping[str, Any] | None:
        """One object, or None when it does not exist."""

    def secret_data(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        """A Secret's decoded data, or None when it does not exist."""


class Notifier:
    """Routes events to Providers and queues their delivery."""

    def __init__(
        self, store: ObjectStore, dispatcher: Dispatcher, *, hosts: HostFactory | None = None
    ) -> None:
        """`hosts` makes code-host adapters for github/gitlab Providers (None: not reported)."""
        self._store = store
        self._dispatcher = dispatcher
        self._hosts = hosts

    def notify(self, event: Event, *, details: str = "", statuses: bool = True) -> int:
        """Queue `event` for every Alert that selects it; the number of requests queued.

        `details` (Markdown, Secret-free) goes only to commit-status Providers, as a commit
        comment next to the status; `statuses=False` keeps the event from them altogether.
        """
        event = clean_metadata(event)
        queued = 0
        for alert in matching_alerts(self._alerts(), event, self._labels):
            queued += self._send(alert, event, details, statuses)
        return queued

    def _alerts(self) -> list[Alert]:
        alerts = []
        for obj in self._store.list_objects(API_VERSION, "Alert"):
            try:
                alerts.append(parse_alert(obj))
            except InputError as exc:
                _LOG.warning("alert skipped: %s", exc)
        return alerts

    def _labels(self, involved: ObjectReference) -> Mapping[str, str]:
        obj = self._store.get_object(
            involved.api_version, involved.kind, involved.namespace, involved.name
        )
        labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
        return {str(k): str(v) for k, v in labels.items()}

    def _send(self, alert: Alert, event: Event, details: str, statuses: bool) -> int:
        where = f"Alert {alert.namespace}/{alert.name}"
        obj = self._store.get_object(API_VERSION, "Provider", alert.namespace, alert.provider_name)
        if obj is None:
            _LOG.warning("%s: provider %s not found", where, alert.provider_name)
            return 0
        try:
            provider = parse_provider(obj)
            if provider.suspend:
                return 0
            credentials = Credentials()
            if provider.secret_name:
                data = self._store.secret_data(alert.namespace, provider.secret_name)
                if data is None:
                    _LOG.warning("%s: secret %s not found", where, provider.secret_name)
                    return 0
                credentials = Credentials.from_secret_data(
                    data, secret=f"Secret {alert.namespace}/{provider.secret_name}"
                )
            notification = notification_for(alert, event)
            if _status_only(notification) and provider.type not in _TAKE_STATUS_EVENTS:
                # Flux keeps commit-status updates away from chat: they go to git and generic.
                return 0
            if provider.type in COMMIT_STATUS_TYPES:
                if not statuses:
                    return 0
                job = self._status_job(provider, credentials, alert, notification, details)
                return 1 if job is not None and self._dispatcher.submit(job) else 0
            request = build_request(provider, credentials, notification)
        except InputError as exc:
            _LOG.warning("%s: %s", where, exc)
            return 0
        return 1 if self._dispatcher.submit(request) else 0

    def _status_job(
        self,
        provider: Provider,
        credentials: Credentials,
        alert: Alert,
        event: Event,
        details: str,
    ) -> Job | None:
        """The commit status to set, as a queued job; None when the event sets none."""
        found = status_for(provider, alert, event)
        if found is None:
            return None
        if self._hosts is None:
            _LOG.warning(
                "Provider %s/%s: no code host configured", provider.namespace, provider.name
            )
            return None
        sha, report = found
        repository = repository_of(
            provider, credentials.address or provider.address, self._dispatcher.policy
        )
        hosts = self._hosts

        # A GitHub App writes check runs: the details go into the run, else into a comment.
        in_check_run = provider.type == "github" and credentials.github_app
        if in_check_run and details:
            report = dataclasses.replace(report, summary=report.title, text=details)

        def run() -> None:
            host = hosts(provider, repository, credentials)
            if post_status(host, sha, report) and details and not in_check_run:
                host.comment_on_commit(sha, details)

        return Job(f"{provider.namespace}/{provider.name}", run)
