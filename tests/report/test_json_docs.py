"""The JSON examples in the README and docs/preview.md show every field the output has.

The output is that of a preview with policy findings, one of them waived, so the example must
show the fields of a finding and of its waiver too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from core.report import jsonout
from tests.report.samples import sample_preview
from tests.report.test_policy_reports import policy_result

ROOT = Path(__file__).resolve().parents[2]


def _keys(data: Any, path: str = "") -> set[str]:
    """Every key path in a JSON document (list items merged), except free-form count maps."""
    found: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            here = f"{path}.{key}"
            found.add(here)
            if key != "suppressed":
                found |= _keys(value, here)
    elif isinstance(data, list):
        for item in data:
            found |= _keys(item, path + "[]")
    return found


@pytest.mark.parametrize("document", ["README.md", "docs/preview.md"])
def test_the_documented_example_has_exactly_the_output_fields(document: str) -> None:
    text = (ROOT / document).read_text()
    [example] = re.findall(r"```json\n(.*?)```", text, flags=re.S)
    actual = jsonout.to_json(sample_preview(), policy_result())
    assert _keys(json.loads(example)) == _keys(actual)
