"""The reconciler loads the code-host clients and the CEL engine only when an object needs them.

PyGithub and python-gitlab (commit-status Providers) and the CEL engine's native library
(`healthCheckExprs`, `commitStatusExpr`) were together more than a third of the controller's
peak memory, though most clusters use none of them. Each case runs in a fresh interpreter; the
probe is shown to see the engine once an expression is compiled and a client once it is
imported, so the first case cannot pass vacuously.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAZY = ("github", "gitlab", "cel_expr_python")

PROBE = f"""
import json, sys
import cli.reconcile, reconciler.runtime, reconciler.wiring
for statement in sys.argv[1:]:
    exec(statement)
print(json.dumps(sorted(m for m in {LAZY!r} if m in sys.modules)))
"""


def _loaded(*statements: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *statements],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found: list[str] = json.loads(done.stdout.splitlines()[-1])
    return found


def test_starting_the_reconciler_loads_neither_code_host_clients_nor_the_cel_engine() -> None:
    assert _loaded() == []


def test_a_health_check_expression_loads_the_cel_engine_when_compiled() -> None:
    rules = (
        "from reconciler import health; health.ExprRules.compile({'metadata': {}, 'spec': "
        "{'healthCheckExprs': [{'apiVersion': 'v1', 'kind': 'ConfigMap', 'current': 'true'}]}})"
    )

    assert _loaded("from reconciler import health; health.ExprRules.none()") == []
    assert _loaded(rules) == ["cel_expr_python"]


def test_the_probe_sees_a_code_host_client_once_it_is_imported() -> None:
    assert _loaded("import core.vcs.github") == ["github"]
