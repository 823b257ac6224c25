"""Load fixture-format cases from text, so engine tests read like the user-facing format."""

from __future__ import annotations

import textwrap
from pathlib import Path

from policies.fixtures import Case, load_case


def case(tmp_path: Path, text: str, name: str = "case.yaml") -> Case:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return load_case(path)
