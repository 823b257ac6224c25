"""Sharding by label, as Flux does it with `--watch-label-selector`.

Each shard replica watches only Kustomizations labelled `sharding.fluxcd.io/key: <shard>`
(selector `sharding.fluxcd.io/key in (<shard>)`); the main replica watches those without the
label (`!sharding.fluxcd.io/key`). The selector goes to the apiserver's list/watch as is, and it
names the shard's leader-election Lease (`reconciler.leader.lease_name`). This module only builds
and checks selectors; it does not list anything.
"""

from __future__ import annotations

import re

from core.errors import TidegateError

__all__ = ["SHARD_LABEL", "ShardError", "selector"]

SHARD_LABEL = "sharding.fluxcd.io/key"

# A Kubernetes label value: at most 63 characters, alphanumeric at both ends.
_LABEL_VALUE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")


class ShardError(TidegateError):
    """A shard name that cannot be a label value."""


def selector(shard: str | None) -> str:
    """The watch selector of `shard`, or of the main replica (no shard label) when None."""
    if shard is None:
        return f"!{SHARD_LABEL}"
    if not _LABEL_VALUE.fullmatch(shard):
        raise ShardError(
            f"--shard {shard!r}: not a label value (1-63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit)"
        )
    return f"{SHARD_LABEL} in ({shard})"
