"""GitHub's published OpenAPI description, for checking the fake GitHub's every exchange.

The description comes from npm's `@octokit/openapi` (pinned in scripts/dev, installed into the
user cache). OpenAPI 3.0 schemas differ from JSON Schema in one way that matters here,
`nullable: true`, which is rewritten before validating with `jsonschema`. `example_of` builds the
smallest document a schema accepts, so the fake returns objects with every required field and
only states the fields it cares about.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

NPM_CACHE = Path(os.environ.get("TIDEGATE_NPM_CACHE", Path.home() / ".cache/tidegate/npm"))
GITHUB_DESCRIPTION = NPM_CACHE / "node_modules/@octokit/openapi/generated/api.github.com.json"
_ROOT = "urn:github-rest"


class Spec:
    """Operations of one OpenAPI document, matched by method and concrete path."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        self._registry: Registry[Any] = Registry().with_resource(
            _ROOT, Resource.from_contents(document, default_specification=DRAFT7)
        )
        self._validators: dict[str, jsonschema.Draft7Validator] = {}
        self._paths = [
            (re.compile("^" + re.sub(r"\{[^/}]+\}", "[^/]+", template) + "$"), template)
            for template in document["paths"]
        ]

    def operation(self, method: str, path: str) -> tuple[str, Mapping[str, Any]]:
        """The template and operation for a request; AssertionError if the API has none."""
        for pattern, template in self._paths:
            if pattern.match(path):
                operation = self.document["paths"][template].get(method.lower())
                if operation is not None:
                    return template, operation
        raise AssertionError(f"{method} {path} is not in GitHub's REST API")

    def check_request(self, method: str, path: str, body: Any) -> list[str]:
        """Errors of a request body against its operation's schema."""
        template, operation = self.operation(method, path)
        content = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if content is None:
            return [] if body is None else [f"{method} {template} takes no JSON body"]
        pointer = _pointer("paths", template, method.lower(), "requestBody", "content")
        return self._errors(pointer + "/application~1json/schema", body)

    def check_response(self, method: str, path: str, status: int, body: Any) -> list[str]:
        """Errors of a response against the operation's documented response for `status`."""
        template, operation = self.operation(method, path)
        response = operation.get("responses", {}).get(str(status))
        if response is None and status >= 400:
            # Descriptions list only some error statuses per operation; every GitHub error
            # body is a `basic-error`.
            return self._errors("/components/schemas/basic-error", body)
        if response is None:
            return [f"{method} {template} does not document status {status}"]
        pointer = _pointer("paths", template, method.lower(), "responses", str(status))
        if "$ref" in response:
            pointer = response["$ref"].lstrip("#")
            response = self.resolve(response["$ref"])
        content = response.get("content", {}).get("application/json")
        if content is None:
            return [] if body in (None, b"", "") else [f"{method} {template} {status}: no body"]
        return self._errors(pointer + "/content/application~1json/schema", body)

    def resolve(self, ref: str) -> Any:
        """The document node a local `$ref` names."""
        node: Any = self.document
        for part in ref.lstrip("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def example_of(self, schema: Mapping[str, Any], depth: int = 0) -> Any:
        """The smallest value `schema` accepts: required fields only, nulls where allowed."""
        if "$ref" in schema:
            return self.example_of(self.resolve(schema["$ref"]), depth)
        if schema.get("nullable") or depth > 12:
            return None
        if "allOf" in schema:
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                value = self.example_of(part, depth + 1)
                if isinstance(value, dict):
                    merged.update(value)
            return merged
        for key in ("oneOf", "anyOf"):
            if key in schema:
                return self.example_of(schema[key][0], depth + 1)
        if "enum" in schema:
            return schema["enum"][0]
        kind = schema.get("type", "object")
        if isinstance(kind, list):
            kind = next(k for k in kind if k != "null")
        if kind == "object":
            properties = schema.get("properties", {})
            return {
                name: self.example_of(properties.get(name, {}), depth + 1)
                for name in schema.get("required", [])
            }
        return _SCALARS[kind](schema)

    def _errors(self, pointer: str, instance: Any) -> list[str]:
        validator = self._validators.get(pointer)
        if validator is None:
            schema = {"$ref": f"{_ROOT}#{pointer}"}
            validator = jsonschema.Draft7Validator(schema, registry=self._registry)
            self._validators[pointer] = validator
        return [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}"
            for e in validator.iter_errors(instance)
        ]


_SCALARS: dict[str, Any] = {
    "string": lambda s: {"date-time": "2026-01-01T00:00:00Z", "uri": "https://example.com/x"}.get(
        s.get("format", ""), "x"
    ),
    "integer": lambda s: 1,
    "number": lambda s: 1,
    "boolean": lambda s: False,
    "array": lambda s: [],
}


def _pointer(*parts: str) -> str:
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _json_schema(node: Any) -> Any:
    """Rewrite OpenAPI 3.0's `nullable: true` into JSON Schema, everywhere in the document."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _json_schema(value) for key, value in node.items()}
    if converted.get("nullable") is True:
        if isinstance(converted.get("type"), str):
            converted["type"] = [converted["type"], "null"]
            if "enum" in converted:
                converted["enum"] = [*converted["enum"], None]
        else:
            rest = {k: v for k, v in converted.items() if k != "nullable"}
            return {"anyOf": [rest, {"type": "null"}], "nullable": True}
    return converted


@functools.cache
def github() -> Spec:
    """GitHub's REST description (loaded once per test process)."""
    return Spec(_json_schema(json.loads(GITHUB_DESCRIPTION.read_bytes())))
