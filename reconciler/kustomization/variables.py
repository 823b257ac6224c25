"""The postBuild variables of a Kustomization: inline `substitute` over `substituteFrom` objects.

As Flux's `varsub`: ConfigMaps and Secrets are read from the Kustomization's namespace in order,
later ones overriding earlier ones, inline `substitute` winning over all; newlines are removed
from values; a missing object is skipped when `optional`, else `BuildFailed` with Flux's message
(`substitute from 'ConfigMap/vars' error: configmaps "vars" not found`). With the default
`WithVariables` strategy and nothing resolved there is no substitution at all (None). The names of
the variables that came from Secrets are returned with their values so the build can scrub them
from errors; no value is ever put into a message here.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.units import KustomizationSpec
from reconciler.kustomization.deps import ObjectReader
from reconciler.kustomization.model import Reason, StepFailed

__all__ = ["Variables", "read_variables"]


@dataclass(frozen=True)
class Variables:
    """The merged variables (None: do not substitute) and those that came from Secrets."""

    values: Mapping[str, str] | None
    secret_values: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        # Never the values: a repr ends up in tracebacks and test output.
        names = sorted(self.values or {})
        return f"Variables({names}, secret={sorted(self.secret_values)})"


def read_variables(spec: KustomizationSpec, reader: ObjectReader) -> Variables:
    """Read `spec.postBuild`'s variables from the cluster (see module doc)."""
    always = spec.substitute_strategy == "Always"
    if not spec.substitute and not spec.substitute_from and not always:
        return Variables(None)
    values: dict[str, str] = {}
    secret: dict[str, str] = {}
    for item in spec.substitute_from:
        found = reader.get("v1", item.kind, spec.unit.namespace, item.name)
        if found is None:
            if item.optional:
                continue
            plural = "configmaps" if item.kind == "ConfigMap" else "secrets"
            raise StepFailed(
                Reason.BUILD_FAILED,
                f"substitute from '{item.kind}/{item.name}' error: "
                f'{plural} "{item.name}" not found',
            )
        for name, value in _data(found, item.kind, item.name).items():
            values[name] = value
            if item.kind == "Secret":
                secret[name] = value
            else:
                secret.pop(name, None)
    for name, value in spec.substitute.items():
        values[name] = value
        secret.pop(name, None)
    if not values and not always:
        return Variables(None)
    return Variables(values, secret)


def _data(obj: Mapping[str, Any], kind: str, name: str) -> dict[str, str]:
    data: Mapping[str, Any] = obj.get("data") or {}
    out: dict[str, str] = {}
    for key, raw in data.items():
        text = str(raw)
        if kind == "Secret":
            try:
                text = base64.b64decode(text, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise StepFailed(
                    Reason.BUILD_FAILED,
                    f"substitute from 'Secret/{name}' error: key {key!r} is not UTF-8 text",
                ) from None
        out[str(key)] = text.replace("\n", "")
    return out
