"""Cache keys: the same parts give the same key in every process, different parts another.

Keys name renders on disk that CI jobs keep between runs, so a key must not depend on the
process (dict order, hash seed) and must survive what orjson cannot write.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

from core.render.cache import canonical_key

ROOT = Path(__file__).resolve().parents[2]
PARTS = ("kustomization", {"b": [1, 2.5, None], "a": {"z": True, 3: "x"}}, "é", ("t", 1))


@dataclasses.dataclass(frozen=True)
class _Spec:
    path: str
    prune: bool


def test_key_ignores_mapping_order_and_follows_every_value() -> None:
    reordered = ("kustomization", {"a": {3: "x", "z": True}, "b": [1, 2.5, None]}, "é", ("t", 1))

    assert canonical_key(*PARTS) == canonical_key(*reordered)
    assert canonical_key(*PARTS) != canonical_key("kustomization", {"b": [1, 2.5, None]}, "é")
    assert canonical_key(_Spec("apps/web", True)) != canonical_key(_Spec("apps/web", False))
    assert canonical_key("a", "b") != canonical_key("ab") != canonical_key(["a", "b"], None)


def test_key_is_the_same_in_another_process() -> None:
    # Another interpreter, another hash seed: the key of the same parts must not move.
    program = (
        f"from core.render.cache import canonical_key;print(canonical_key(*{PARTS!r}), end='')"
    )
    other = subprocess.run(
        [sys.executable, "-c", program],
        env={"PYTHONHASHSEED": "12345", "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )

    assert other.stdout == canonical_key(*PARTS)


def test_what_orjson_cannot_write_still_gets_a_stable_key_of_its_own() -> None:
    surrogate = "apps/\udcff/kustomization.yaml"  # a path that is not UTF-8
    huge = 1 << 70

    assert canonical_key(surrogate) == canonical_key(surrogate)
    assert canonical_key(surrogate) != canonical_key("apps/\ufffd/kustomization.yaml")
    assert canonical_key(huge) == canonical_key(huge) != canonical_key(huge + 1)
