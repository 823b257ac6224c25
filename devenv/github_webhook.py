"""Signed `pull_request` deliveries, as GitHub sends them, for the demo and the benchmarks.

`tidegate demo` and `bench.webhook_comment` play GitHub's part next to `devenv.github_api`: they
open a pull request on the local GitHub API server, then tell `tidegate serve` about it with a
webhook delivery. This module builds that payload (the fields GitHub sends and Tidegate reads),
signs it with the webhook secret (`X-Hub-Signature-256`, HMAC-SHA256 of the raw body) and posts
it. It only sends: it asserts nothing about the answer and keeps no state.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.request
import uuid
from collections.abc import Mapping
from typing import Any

__all__ = ["deliver", "pull_request_event", "signed_headers"]


def pull_request_event(
    action: str,
    *,
    number: int,
    head: str,
    head_ref: str,
    base: str,
    repository: str,
    clone_url: str,
    installation_id: int,
    base_ref: str = "main",
    head_repository: str | None = None,
) -> dict[str, Any]:
    """A `pull_request` payload: head `head` on branch `head_ref` onto `base_ref` at `base`.

    `head_repository` names a fork the head comes from (default: the repository itself).
    """
    fork = repository if head_repository is None else head_repository
    return {
        "action": action,
        "number": number,
        "pull_request": {
            "number": number,
            "draft": False,
            "head": {"sha": head, "ref": head_ref, "repo": {"full_name": fork}},
            "base": {"ref": base_ref, "sha": base, "repo": {"full_name": repository}},
        },
        "repository": {"full_name": repository, "clone_url": clone_url},
        "installation": {"id": installation_id},
        "sender": {"login": "octocat"},
    }


def signed_headers(
    secret: bytes, body: bytes, *, event: str = "pull_request", delivery: str = ""
) -> dict[str, str]:
    """GitHub's delivery headers for `body`: the event, a delivery id and its signature."""
    signature = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": f"sha256={signature}",
    }


def deliver(
    url: str, secret: bytes, payload: Mapping[str, Any], *, event: str = "pull_request"
) -> int:
    """POST `payload` to `url` as a GitHub delivery signed with `secret`; return the status.

    Raises:
        urllib.error.URLError: the delivery could not be made, or was answered with an error
            status (`HTTPError`, which carries it).
    """
    body = json.dumps(payload).encode()
    request = urllib.request.Request(  # noqa: S310 - the loopback servers of the demo
        url,
        data=body,
        method="POST",
        headers={**signed_headers(secret, body, event=event), "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return int(response.status)
