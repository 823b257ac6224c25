"""Kubernetes object names and namespaces, validated as the API server validates them.

A name the API server would refuse can never be applied, so a preview showing it would lie; and
names are where hostile renders grow without bound (a Kustomization renaming a copy of itself adds
a prefix on every level). The rules are the API server's, per kind family:

- Namespaces, and every object's `metadata.namespace`: a DNS-1123 label (at most 63 characters of
  `a-z`, `0-9` and `-`, starting and ending alphanumeric).
- Services: a DNS-1035 label (the same, but starting with a letter).
- RBAC Roles, ClusterRoles, RoleBindings and ClusterRoleBindings: a path segment (anything but
  `.`, `..` or a name containing `/` or `%`), so `system:controller:x` is valid.
- Everything else, custom resources included: a DNS-1123 subdomain (at most 253 characters,
  labels of the above joined by dots).

Pure functions over strings: no I/O.
"""

from __future__ import annotations

import re

__all__ = ["name_problem", "namespace_problem"]

_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL = re.compile(_LABEL)
_DNS1035_LABEL = re.compile(r"[a-z](?:[-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_LABEL_MAX = 63
_SUBDOMAIN_MAX = 253
_RBAC_GROUP = "rbac.authorization.k8s.io"
_PATH_SEGMENT_KINDS = frozenset({"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"})
# Longest part of a bad name quoted in a message: a hostile name may be megabytes long.
_QUOTE = 80


def _quote(value: str) -> str:
    shown = value if len(value) <= _QUOTE else value[:_QUOTE] + "…"
    return repr(shown)


def _dns1123_label(value: str) -> str | None:
    if len(value) > _LABEL_MAX:
        return f"is {len(value)} characters long; at most {_LABEL_MAX} are allowed"
    if not _DNS1123_LABEL.fullmatch(value):
        return "must be a DNS-1123 label (lower-case letters, digits and '-')"
    return None


def _dns1035_label(value: str) -> str | None:
    if len(value) > _LABEL_MAX:
        return f"is {len(value)} characters long; at most {_LABEL_MAX} are allowed"
    if not _DNS1035_LABEL.fullmatch(value):
        return "must be a DNS-1035 label (lower-case letters, digits and '-', from a letter on)"
    return None


def _dns1123_subdomain(value: str) -> str | None:
    if len(value) > _SUBDOMAIN_MAX:
        return f"is {len(value)} characters long; at most {_SUBDOMAIN_MAX} are allowed"
    if not _DNS1123_SUBDOMAIN.fullmatch(value):
        return "must be a DNS-1123 subdomain (lower-case letters, digits, '-' and '.')"
    return None


def _path_segment(value: str) -> str | None:
    if value in (".", ".."):
        return "may not be '.' or '..'"
    if "/" in value or "%" in value:
        return "may not contain '/' or '%'"
    return None


def name_problem(group: str, kind: str, name: str) -> str | None:
    """Return why the API server would refuse `name` for this kind, or None when it is valid."""
    if not name:
        return "metadata.name is empty"
    if group == "" and kind == "Namespace":
        problem = _dns1123_label(name)
    elif group == "" and kind == "Service":
        problem = _dns1035_label(name)
    elif group == _RBAC_GROUP and kind in _PATH_SEGMENT_KINDS:
        problem = _path_segment(name)
    else:
        problem = _dns1123_subdomain(name)
    return f"metadata.name {_quote(name)} {problem}" if problem else None


def namespace_problem(namespace: str) -> str | None:
    """Return why `namespace` is not a valid namespace name, or None (empty means none)."""
    if not namespace:
        return None
    problem = _dns1123_label(namespace)
    return f"metadata.namespace {_quote(namespace)} {problem}" if problem else None
