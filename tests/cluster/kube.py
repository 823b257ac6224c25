"""Helpers for the cluster tests: waiting on eventual state, unique names, the pinned kubectl.

They only read and write through the public clients (the Python client and kubectl); they must
not reach into the control plane's processes or files.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from kubernetes.client.exceptions import ApiException

from devenv import toolchain

__all__ = [
    "FIELD_MANAGER",
    "apply",
    "eventually",
    "kubectl",
    "kubectl_get",
    "kubectl_json",
    "status_of",
    "unique_name",
]

FIELD_MANAGER = "tidegate"

T = TypeVar("T")

_counter = itertools.count()


def unique_name(prefix: str) -> str:
    """A DNS-1123 name unique within the test session and across sessions."""
    return f"{prefix}-{next(_counter)}-{uuid.uuid4().hex[:6]}"


def eventually(check: Callable[[], T | None], what: str, timeout: float = 120.0) -> T:
    """Poll `check` until it returns something truthy; fail the test naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def status_of(call: Callable[[], object]) -> int:
    """The HTTP status a Python client call ends with (200 when it succeeds)."""
    try:
        call()
    except ApiException as exc:
        return int(exc.status)
    return 200


def apply(dynamic: Any, body: dict[str, Any]) -> Any:
    """Server-side apply `body` as the `tidegate` field manager and return the live object."""
    resource = dynamic.resources.get(api_version=body["apiVersion"], kind=body["kind"])
    return dynamic.server_side_apply(
        resource,
        body=body,
        namespace=body["metadata"].get("namespace"),
        field_manager=FIELD_MANAGER,
        force_conflicts=True,
    )


def kubectl(kubeconfig: Path, *args: str) -> str:
    """Run the pinned kubectl against `kubeconfig` and return its stdout (fail on non-zero)."""
    done = subprocess.run(
        [str(toolchain.binary("kubectl")), f"--kubeconfig={kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def kubectl_json(kubeconfig: Path, *args: str) -> Any:
    """Run kubectl with `-o json` and parse the result."""
    return json.loads(kubectl(kubeconfig, *args, "-o", "json"))


def kubectl_get(kubeconfig: Path, *args: str) -> Any:
    """`kubectl get ARGS` as parsed JSON, managedFields included."""
    return kubectl_json(kubeconfig, "get", "--show-managed-fields", *args)
