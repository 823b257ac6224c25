"""List and watch Flux objects: the wire adapter under the reconciler's informer cache.

`Lister.list` returns the items of one kind with the list's `resourceVersion`; `Lister.watch`
streams the changes after a resourceVersion as `WatchEvent`s (ADDED, MODIFIED, DELETED, BOOKMARK)
until the server ends the watch or `close` is called from another thread. A resourceVersion the
apiserver has compacted away (HTTP 410 or an ERROR event with code 410) raises `Gone`, so the
caller relists; every other failure is a `ClusterError` naming the kind. This module keeps no
state between calls, never logs and never retries: resuming and relisting are the informer's job.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from core.cluster.fluxobjects import FluxKind
from core.cluster.port import ClusterError

__all__ = ["Gone", "Lister", "WatchEvent"]

# A watch line is one JSON object; an object larger than this is refused rather than buffered.
_MAX_LINE = 16 * 1024 * 1024
_CONNECT_TIMEOUT = 10.0


class Gone(ClusterError):  # noqa: N818 - the apiserver's own word (410 Gone)
    """The resourceVersion is too old; the caller must list again."""


@dataclass(frozen=True)
class WatchEvent:
    """One change: its type and the object (for BOOKMARK, only metadata.resourceVersion)."""

    type: str
    object: dict[str, Any]

    @property
    def resource_version(self) -> str:
        """The resourceVersion this event brings the watcher to."""
        return str((self.object.get("metadata") or {}).get("resourceVersion", ""))


class Lister:
    """List and watch Flux kinds through one authenticated API client."""

    def __init__(self, api: Any) -> None:
        self._custom = k8s.CustomObjectsApi(api)
        self._open: set[Any] = set()
        self._lock = threading.Lock()

    def list(
        self, kind: FluxKind, namespace: str | None, label_selector: str = ""
    ) -> tuple[list[dict[str, Any]], str]:
        """The objects of `kind` (in `namespace`, or all when None) and the list's version."""
        what = _what(kind, namespace)
        try:
            found = self._call(kind, namespace, label_selector=label_selector)
        except ApiException as exc:
            raise _error(what, exc) from None
        except (OSError, HTTPError) as exc:
            raise ClusterError(f"{what}: cannot reach the apiserver: {exc}") from None
        items: list[dict[str, Any]] = found.get("items") or []
        version = str((found.get("metadata") or {}).get("resourceVersion", ""))
        return items, version

    def watch(
        self,
        kind: FluxKind,
        namespace: str | None,
        resource_version: str,
        label_selector: str = "",
        timeout_seconds: int = 300,
    ) -> Iterator[WatchEvent]:
        """The changes after `resource_version`, until the server ends the watch."""
        what = _what(kind, namespace)
        try:
            response = self._call(
                kind,
                namespace,
                label_selector=label_selector,
                resource_version=resource_version,
                watch=True,
                allow_watch_bookmarks=True,
                timeout_seconds=timeout_seconds,
                _preload_content=False,
                # The server ends the watch after timeout_seconds; a silent connection longer
                # than that (plus slack) is dead.
                _request_timeout=(_CONNECT_TIMEOUT, timeout_seconds + 30),
            )
        except ApiException as exc:
            raise _error(what, exc) from None
        except (OSError, HTTPError) as exc:
            raise ClusterError(f"{what}: cannot reach the apiserver: {exc}") from None
        with self._lock:
            self._open.add(response)
        try:
            yield from _events(what, response)
        except (OSError, HTTPError) as exc:
            raise ClusterError(f"{what}: the watch broke: {exc}") from None
        finally:
            with self._lock:
                self._open.discard(response)
            # A watch's connection is not reused: it may be half shut down by `close`.
            response.close()
            response.release_conn()

    def watching(self) -> int:
        """How many watches are open right now."""
        with self._lock:
            return len(self._open)

    def close(self) -> None:
        """End every open watch now (from any thread): their iterators stop."""
        with self._lock:
            responses = list(self._open)
        for response in responses:
            # shutdown() wakes a thread blocked reading the socket; close() alone would not.
            try:
                response.shutdown()
            except (OSError, HTTPError):
                continue

    def _call(self, kind: FluxKind, namespace: str | None, **kwargs: Any) -> Any:
        if namespace is None:
            return self._custom.list_cluster_custom_object(
                kind.group, kind.version, kind.plural, **kwargs
            )
        return self._custom.list_namespaced_custom_object(
            kind.group, kind.version, namespace, kind.plural, **kwargs
        )


def _events(what: str, response: Any) -> Iterator[WatchEvent]:
    for line in _lines(what, response):
        try:
            event = json.loads(line)
        except ValueError:
            raise ClusterError(f"{what}: the watch sent a line that is not JSON") from None
        if not isinstance(event, dict) or not isinstance(event.get("object"), dict):
            raise ClusterError(f"{what}: the watch sent an event without an object")
        kind, body = str(event.get("type", "")), event["object"]
        if kind == "ERROR":
            code = body.get("code")
            message = body.get("message") or body.get("reason") or "unknown error"
            if code == 410:
                raise Gone(f"{what}: {message}")
            raise ClusterError(f"{what}: the watch failed: HTTP {code}: {message}")
        yield WatchEvent(kind, body)


def _lines(what: str, response: Any) -> Iterator[bytes]:
    buffer = b""
    for chunk in response.stream(64 * 1024, decode_content=True):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield line
        if len(buffer) > _MAX_LINE:
            raise ClusterError(f"{what}: a watch event is larger than {_MAX_LINE} bytes")
    if buffer.strip():
        yield buffer


def _what(kind: FluxKind, namespace: str | None) -> str:
    where = "all namespaces" if namespace is None else f"namespace {namespace}"
    return f"{kind.kind} in {where}"


def _error(what: str, exc: ApiException) -> ClusterError:
    try:
        body = json.loads(exc.body or "{}")
    except ValueError:
        body = {}
    reason = body.get("message") if isinstance(body, dict) else None
    text = f"{what}: HTTP {exc.status}: {reason or exc.reason}"
    return Gone(text) if exc.status == 410 else ClusterError(text)
