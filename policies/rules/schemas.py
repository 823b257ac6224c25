"""Schemas of Kubernetes objects: the built-in kinds from a packaged set, CRDs from the repository.

Built-in kinds are validated against the strict JSON schemas that the pinned `kubernetes-validate`
distribution ships per Kubernetes minor release (generated from the API server's OpenAPI, with
unknown fields forbidden): the newest packaged release not newer than the target is used. Only
the data files are read (located without importing the package); validation runs on
`jsonschema-rs`, each schema compiled once per process. A schema is used for an object only when
its `apiVersion` enum names the object's exact apiVersion, so a custom group that shares a first
label with a built-in one (`apps.example.com`) is never judged by the built-in schema.

Custom resources are validated against the `openAPIV3Schema` of their CustomResourceDefinition
as rendered at head. That schema is OpenAPI 3.0 with Kubernetes extensions; it is translated
into JSON Schema the way the API server reads it: `nullable` admits null,
`x-kubernetes-int-or-string` admits an integer or a string, `x-kubernetes-preserve-unknown-fields`
and `x-kubernetes-embedded-resource` keep unknown fields, any other object with `properties`
forbids fields it does not declare (server-side apply refuses them), and the root always admits
`apiVersion`, `kind` and `metadata`. CEL rules (`x-kubernetes-validations`) and formats are not
evaluated. Schemas come from the pull request: translation is recursive but depth-bounded and
never raises; a schema that cannot be compiled yields no validator.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson

__all__ = [
    "COMMON_KINDS",
    "Problem",
    "builtin_validator",
    "crd_validator",
    "preload",
    "problems",
    "schema_release",
]

_DEFINITIONS_ID = "https://kubernetes.io/api/_definitions.json"
_RELEASE = re.compile(r"^v1\.(\d+)\.0-local-strict$")
_MAX_DEPTH = 64
_MAX_MESSAGE = 200


@dataclass(frozen=True)
class Problem:
    """One schema violation: where in the object, and what."""

    path: str
    message: str


@cache
def _schema_root() -> Path | None:
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))) / "kubernetes-json-schema"
    return root if root.is_dir() else None


@cache
def _releases() -> tuple[int, ...]:
    root = _schema_root()
    if root is None:
        return ()
    found = (_RELEASE.match(entry.name) for entry in root.iterdir())
    return tuple(sorted(int(m.group(1)) for m in found if m))


def schema_release(target_minor: int) -> int | None:
    """Return the newest packaged minor release not newer than the target, if any."""
    usable = [minor for minor in _releases() if minor <= target_minor]
    return usable[-1] if usable else None


@cache
def _registry(root: Path, minor: int) -> jsonschema_rs.Registry:
    path = root / f"v1.{minor}.0-local-strict" / "_definitions.json"
    definitions = orjson.loads(path.read_bytes())
    return jsonschema_rs.Registry([(_DEFINITIONS_ID, definitions)])


@cache
def builtin_validator(minor: int, api_version: str, kind: str) -> Any:
    """Return the compiled validator of a built-in kind in a packaged release, or None."""
    root = _schema_root()
    if root is None or not kind.isalnum():
        return None
    group, _, version = api_version.rpartition("/")
    prefix = f"{group.split('.')[0]}-" if group else ""
    # Names become a file name: only plain alphanumerics, so no path can be smuggled in.
    if not version.isalnum() or (group and not group.split(".")[0].isalnum()):
        return None
    path = root / f"v1.{minor}.0-local-strict" / f"{kind.lower()}-{prefix}{version}.json"
    if not path.is_file():
        return None
    schema = orjson.loads(path.read_bytes())
    enum = schema.get("properties", {}).get("apiVersion", {}).get("enum", [])
    if api_version not in enum:
        return None
    return jsonschema_rs.validator_for(
        schema, registry=_registry(root, minor), validate_formats=False
    )


COMMON_KINDS = (
    ("v1", "ConfigMap"),
    ("v1", "Namespace"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("v1", "PersistentVolumeClaim"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    ("networking.k8s.io/v1", "Ingress"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("policy/v1", "PodDisruptionBudget"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
)
"""The built-in kinds nearly every pull request touches, compiled ahead by `preload`."""


def preload(target_minor: int, kinds: tuple[tuple[str, str], ...] = COMMON_KINDS) -> int:
    """Compile the shared definitions and the validators of `kinds` for a target release now.

    For a long-lived process, so that its first pull request does not pay for them (~20 ms for
    the definitions and a common kind). Returns how many validators exist; nothing else changes.
    """
    release = schema_release(target_minor)
    if release is None:
        return 0
    return sum(builtin_validator(release, api, kind) is not None for api, kind in kinds)


def crd_validator(crd: Mapping[str, Any], version: str) -> Any:
    """Return a validator for one served version of a CRD, or None when it has no usable schema."""
    key = json.dumps(crd.get("spec"), sort_keys=True, default=str)
    return _crd_validator(key, version)


@cache
def _crd_validator(spec_json: str, version: str) -> Any:
    spec = json.loads(spec_json)
    if not isinstance(spec, Mapping):
        return None
    versions = spec.get("versions")
    entry = (
        next(
            (v for v in versions if isinstance(v, Mapping) and v.get("name") == version),
            None,
        )
        if isinstance(versions, list)
        else None
    )
    schema = _get(entry, "schema", "openAPIV3Schema") or _get(spec, "validation", "openAPIV3Schema")
    if not isinstance(schema, Mapping):
        return None
    translated = _translate(schema, 0)
    properties = translated.setdefault("properties", {})
    if isinstance(properties, dict):
        properties.setdefault("apiVersion", {"type": "string"})
        properties.setdefault("kind", {"type": "string"})
        properties.setdefault("metadata", {"type": "object"})
    try:
        return jsonschema_rs.Draft4Validator(translated, validate_formats=False)
    except (ValueError, jsonschema_rs.ValidationError):
        return None


def _get(node: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


_KEEP = (
    "type",
    "enum",
    "required",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "multipleOf",
    "exclusiveMinimum",
    "exclusiveMaximum",
)


def _translate(node: Any, depth: int) -> dict[str, Any]:
    """Translate one structural-schema node into JSON Schema (draft 4)."""
    if not isinstance(node, Mapping) or depth > _MAX_DEPTH:
        return {}
    out: dict[str, Any] = {key: node[key] for key in _KEEP if key in node}
    if node.get("x-kubernetes-int-or-string") is True:
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    properties = node.get("properties")
    if isinstance(properties, Mapping):
        out["properties"] = {str(k): _translate(v, depth + 1) for k, v in properties.items()}
    additional = node.get("additionalProperties")
    if isinstance(additional, Mapping):
        out["additionalProperties"] = _translate(additional, depth + 1)
    elif isinstance(additional, bool):
        out["additionalProperties"] = additional
    elif "properties" in out and not (
        node.get("x-kubernetes-preserve-unknown-fields") is True
        or node.get("x-kubernetes-embedded-resource") is True
    ):
        out["additionalProperties"] = False
    if node.get("x-kubernetes-embedded-resource") is True and "properties" in out:
        for field in ("apiVersion", "kind"):
            out["properties"].setdefault(field, {"type": "string"})
        out["properties"].setdefault("metadata", {"type": "object"})
    items = node.get("items")
    if isinstance(items, Mapping):
        out["items"] = _translate(items, depth + 1)
    for combinator in ("allOf", "anyOf", "oneOf"):
        branches = node.get(combinator)
        if isinstance(branches, list) and combinator not in out:
            out[combinator] = [_translate(b, depth + 1) for b in branches]
    if isinstance(node.get("not"), Mapping):
        out["not"] = _translate(node["not"], depth + 1)
    return out


def problems(validator: Any, body: Mapping[str, Any]) -> list[Problem]:
    """Return the violations of an object against a compiled validator, in document order.

    The body is first made plain JSON, as the API server receives it: YAML 1.1 readers turn some
    scalars into dates and keys into numbers, which JSON carries as strings.
    """
    try:
        plain = orjson.loads(orjson.dumps(body, default=str, option=orjson.OPT_NON_STR_KEYS))
    except (TypeError, orjson.JSONEncodeError) as exc:
        return [Problem("(root)", f"cannot be written as JSON: {type(exc).__name__}")]
    found = []
    for error in validator.iter_errors(plain):
        path = ".".join(
            f"[{p}]" if isinstance(p, int) else str(p) for p in error.instance_path
        ).replace(".[", "[")
        message = str(error.message)
        if len(message) > _MAX_MESSAGE:
            message = message[:_MAX_MESSAGE] + "…"
        found.append(Problem(path or "(root)", message))
    return sorted(found, key=lambda p: p.path)
