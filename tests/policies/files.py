"""An in-memory revision for gate and waiver tests (the git-backed one is tested with git)."""

from __future__ import annotations

import textwrap


class DictFiles:
    """`policies.gate.RevisionFiles` over a dict of path -> text."""

    def __init__(self, files: dict[str, str] | None = None) -> None:
        self.contents = {path: textwrap.dedent(text) for path, text in (files or {}).items()}

    def read(self, path: str) -> bytes | None:
        text = self.contents.get(path)
        return None if text is None else text.encode()

    def files(self, directory: str) -> list[str]:
        prefix = directory.rstrip("/") + "/"
        return sorted(p for p in self.contents if p.startswith(prefix))
