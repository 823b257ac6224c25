"""The `fetch:` section of `.tidegate.yaml` and of the operator's configuration file.

```yaml
fetch:
  allowHosts: [charts.example.com, "registry.example.com:5000"]  # host, or host:port
  unavailableSources: fail      # fail (default) | skip
  # Operator configuration only:
  allowLoopback: false          # 127.0.0.0/8 and ::1 (local test repositories)
  allowPrivate: false           # RFC 1918, 100.64.0.0/10, fc00::/7 (an internal chart mirror)
```

Which file decides: security settings come from the operator's file (and command line) and from
`.tidegate.yaml` at the BASE revision, never from the head a pull request proposes, because the
pull request must not widen what it may reach. Address opt-ins are the operator's alone: a
repository file that sets them is an error. Other top-level keys belong to other parts of Tidegate
and are left alone (`policies:` is parsed by `policies.config`, with the same base-revision
rule); unknown keys inside `fetch:` are errors naming the
file and field, so a typo never silently changes behaviour. Parsing and merging only: reading the
files is the caller's job.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core import yamlio
from core.errors import InputError

__all__ = ["CONFIG_FILE", "FetchConfig", "UnavailableSources", "parse_fetch_config"]

CONFIG_FILE = ".tidegate.yaml"

_REPOSITORY_KEYS = frozenset({"allowHosts", "unavailableSources"})
_OPERATOR_KEYS = _REPOSITORY_KEYS | {"allowLoopback", "allowPrivate"}


class UnavailableSources(enum.StrEnum):
    """What a unit whose source cannot be reached does to the preview's result."""

    FAIL = "fail"
    """The preview fails (exit 2): nothing unproven passes the gate."""
    SKIP = "skip"
    """The unit is reported as not previewed and does not fail the preview."""


@dataclass(frozen=True)
class FetchConfig:
    """The `fetch:` settings of one file; None means "not set here"."""

    allow_hosts: tuple[str, ...] = ()
    unavailable_sources: UnavailableSources | None = None
    allow_loopback: bool | None = None
    allow_private: bool | None = None

    def over(self, lower: FetchConfig) -> FetchConfig:
        """Merge: hosts add up; any other setting made here wins over `lower`'s."""
        return FetchConfig(
            allow_hosts=tuple(dict.fromkeys((*lower.allow_hosts, *self.allow_hosts))),
            unavailable_sources=self.unavailable_sources or lower.unavailable_sources,
            allow_loopback=_first(self.allow_loopback, lower.allow_loopback),
            allow_private=_first(self.allow_private, lower.allow_private),
        )


def _first(*values: bool | None) -> bool | None:
    return next((v for v in values if v is not None), None)


def parse_fetch_config(text: str | bytes, *, file: str, operator: bool = False) -> FetchConfig:
    """Parse the `fetch:` section of a configuration file (an empty file is an empty config).

    Raises:
        InputError: invalid YAML, or a wrong key or value in `fetch:`, naming file and field.
    """
    try:
        document = yamlio.load(text)
    except yamlio.YAMLError:
        raise InputError("invalid YAML", file=file) from None
    if document is None:
        return FetchConfig()
    if not isinstance(document, Mapping):
        raise InputError("must be a mapping of sections", file=file)
    section = document.get("fetch")
    if section is None:
        return FetchConfig()
    if not isinstance(section, Mapping):
        raise InputError("must be a mapping", file=file, field="fetch")
    allowed = _OPERATOR_KEYS if operator else _REPOSITORY_KEYS
    for key in section:
        if key not in _OPERATOR_KEYS:
            raise InputError(f"unknown setting {str(key)[:60]!r}", file=file, field="fetch")
        if key not in allowed:
            raise InputError(
                "may only be set in the operator's configuration, not in the repository",
                file=file,
                field=f"fetch.{key}",
            )
    return FetchConfig(
        allow_hosts=_hosts(section.get("allowHosts"), file),
        unavailable_sources=_mode(section.get("unavailableSources"), file),
        allow_loopback=_flag(section, "allowLoopback", file),
        allow_private=_flag(section, "allowPrivate", file),
    )


def _hosts(value: Any, file: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InputError("must be a list of host or host:port", file=file, field="fetch.allowHosts")
    hosts = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip() or any(c in item for c in "/@ \t"):
            raise InputError(
                "must be a host or host:port (no scheme or path)",
                file=file,
                field=f"fetch.allowHosts[{index}]",
            )
        hosts.append(item.strip().lower())
    return tuple(hosts)


def _mode(value: Any, file: str) -> UnavailableSources | None:
    if value is None:
        return None
    try:
        return UnavailableSources(value)
    except ValueError:
        raise InputError(
            "must be fail or skip", file=file, field="fetch.unavailableSources"
        ) from None


def _flag(section: Mapping[str, Any], key: str, file: str) -> bool | None:
    value = section.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise InputError("must be true or false", file=file, field=f"fetch.{key}")
