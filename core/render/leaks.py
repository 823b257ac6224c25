"""Find the Secret values a Kustomization's input files hold, so error text can be scrubbed of them.

A failing tool may quote what it was working on (kustomize quotes the node a replacement failed on),
and a Secret that never got rendered was never masked. This module reads the failed unit's input
files and returns every cleartext value they define for a Secret: `data` and `stringData` of Secret
objects, and `secretGenerator` literals, files and env files. Callers only add these to
`core.secrets.KnownValues`; the values are never returned anywhere else or written down.

Best effort by design: an unparsable file defines nothing, and a missing one is skipped.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from core import secrets, yamlio
from core.errors import TidegateError
from core.host.files import FileSource

__all__ = ["secret_values"]


def secret_values(source: FileSource, files: Iterable[str]) -> Iterator[bytes]:
    """Yield the cleartext Secret values defined in `files` of `source`."""
    for path in sorted(files):
        docs = _documents(source, path)
        yield from secrets.values_in(docs)
        for doc in docs:
            for generated, is_env in _generator_files(doc, posixpath.dirname(path)):
                yield from _generated(source, generated, is_env=is_env)


def _documents(source: FileSource, path: str) -> list[Any]:
    if (
        not path.endswith((".yaml", ".yml", ".json"))
        and posixpath.basename(path) != "Kustomization"
    ):
        return []
    try:
        return list(yamlio.load_all(source.read(path))) if source.is_file(path) else []
    except (yamlio.YAMLError, TidegateError, UnicodeDecodeError):
        return []


def _generator_files(doc: Any, directory: str) -> Iterator[tuple[str, bool]]:
    """The files a kustomization's secretGenerators read, with whether each is an env file."""
    if not isinstance(doc, Mapping):
        return
    for generator in doc.get("secretGenerator") or []:
        if not isinstance(generator, Mapping):
            continue
        for entry in generator.get("files") or []:
            # `key=path` or just `path`.
            yield _join(directory, str(entry).rpartition("=")[2]), False
        envs = list(generator.get("envs") or [])
        if generator.get("env"):
            envs.append(generator["env"])
        for entry in envs:
            yield _join(directory, str(entry)), True


def _join(directory: str, relative: str) -> str:
    return posixpath.normpath(posixpath.join(directory, relative))


def _generated(source: FileSource, path: str, *, is_env: bool) -> Iterator[bytes]:
    try:
        if path.startswith("..") or not source.is_file(path):
            return
        data = source.read(path)
    except (TidegateError, OSError):
        return
    if not is_env:
        yield data
        return
    for line in data.decode(errors="replace").splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.lstrip().startswith("#"):
            yield value.encode()
