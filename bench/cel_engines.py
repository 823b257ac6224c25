"""Compare the CEL engines on PyPI for user rules: speed and conformance on VAP-style expressions.

Engines: `cel-expr-python` (the CEL team's binding of cel-cpp; the one Tidegate uses),
`common-expression-language` (PyO3 binding of the Rust `cel` crate) and `cel-python` (`celpy`,
pure Python). Only the first is a project dependency; install the others into the virtualenv to
compare: `.venv/bin/pip install -r bench/cel-engines-requirements.txt`.

Speed: 12 expressions typical of ValidatingAdmissionPolicy (field tests, `has`, `all`/`exists`
over containers, string functions) on a Deployment with 4 containers; the median of 5 runs of
compiling each once and evaluating each 2,000 times with the variables bound once per object.
Conformance: expressions whose result the CEL specification fixes (optional field selection,
`has`, errors as values, string extension functions, heterogeneous numeric equality, short-circuit
of errors); an engine passes a case when it returns the specified value (or an error where one is
specified) and fails it when it returns something else or refuses to parse it.

Run from the repository root: `.venv/bin/python -m bench.cel_engines`.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

ERROR = object()
"""Marks a case whose specified result is an error."""

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web-api", "namespace": "shop", "labels": {"app": "web", "tier": "front"}},
    "spec": {
        "replicas": 3,
        "template": {
            "spec": {
                "containers": [
                    {
                        "name": f"c{i}",
                        "image": f"ghcr.io/example/c{i}:1.{i}.0",
                        "resources": {"limits": {"memory": "256Mi"}},
                        "securityContext": {"runAsNonRoot": True},
                    }
                    for i in range(4)
                ]
            }
        },
    },
}

SPEED = [
    "object.spec.replicas <= 5",
    "has(object.metadata.labels) && 'app' in object.metadata.labels",
    "object.metadata.name.startsWith('web-')",
    "object.spec.template.spec.containers.all(c, !c.image.endsWith(':latest'))",
    "object.spec.template.spec.containers.all(c, has(c.resources) && has(c.resources.limits))",
    "object.spec.template.spec.containers.exists(c, c.name == 'c2')",
    "object.spec.template.spec.containers.all(c, c.securityContext.runAsNonRoot == true)",
    "size(object.spec.template.spec.containers) < 10",
    "object.metadata.labels.tier in ['front', 'back']",
    "object.metadata.namespace != 'kube-system' || object.metadata.name == 'x'",
    "object.spec.template.spec.containers.map(c, c.name).size() == 4",
    "object.metadata.name.matches('^[a-z-]+$')",
]

CONFORMANCE: list[tuple[str, Any]] = [
    ("object.spec.?missing.orValue(7)", 7),
    ("object.?spec.?replicas.orValue(0)", 3),
    ("has(object.spec.missing)", False),
    ("object.spec.missing == 1", ERROR),
    ("false && object.spec.missing == 1", False),
    ("object.spec.missing == 1 || true", True),
    ("'a,b'.split(',')", ["a", "b"]),
    ("'Hello'.lowerAscii()", "hello"),
    ("'%s=%d'.format(['x', 1])", "x=1"),
    ("'abc'.indexOf('c')", 2),
    ("dyn(1) == 1.0", True),
    ("1 / 0", ERROR),
    ("[1, 2, 3].exists_one(x, x > 2)", True),
    ("cel.bind(x, 2, x * x)", 4),
    ("{'a': 1}.all(k, k == 'a')", True),
]


def _engines() -> dict[str, Callable[[str], Callable[[dict[str, Any]], Any]]]:
    """Return, per installed engine, a compiler: expression -> (variables -> result or ERROR)."""
    engines: dict[str, Callable[[str], Callable[[dict[str, Any]], Any]]] = {}
    try:
        from policies.cel.engine import Engine, EvalError

        engine = Engine()

        def compile_expr(expression: str) -> Callable[[dict[str, Any]], Any]:
            program = engine.compile(expression, cached=False)

            def run(variables: dict[str, Any]) -> Any:
                result = program.evaluate(variables["__activation__"])
                return ERROR if isinstance(result, EvalError) else result

            return run

        engines["cel-expr-python 0.1.3"] = compile_expr
    except ImportError:
        pass
    try:
        import cel  # common-expression-language

        def compile_rust(expression: str) -> Callable[[dict[str, Any]], Any]:
            program = cel.compile(expression)

            def run(variables: dict[str, Any]) -> Any:
                try:
                    return program.execute(variables["__context__"])
                except Exception:
                    return ERROR

            return run

        engines["common-expression-language 0.10.0"] = compile_rust
    except ImportError:
        pass
    try:
        import celpy

        environment = celpy.Environment()

        def compile_celpy(expression: str) -> Callable[[dict[str, Any]], Any]:
            program = environment.program(environment.compile(expression))

            def run(variables: dict[str, Any]) -> Any:
                try:
                    return _plain(program.evaluate(variables["__celpy__"]))
                except Exception:
                    return ERROR

            return run

        engines["cel-python 0.5.0"] = compile_celpy
    except ImportError:
        pass
    return engines


def _plain(value: Any) -> Any:
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _bind(name: str, obj: dict[str, Any]) -> dict[str, Any]:
    """Bind `object` the way each engine wants it, once per object."""
    if name.startswith("cel-expr-python"):
        return {"__activation__": _ENGINE.activation({"object": obj})} if _ENGINE else {}
    if name.startswith("common-expression-language"):
        import cel

        context = cel.Context()
        context.add_variable("object", obj)
        return {"__context__": context}
    import celpy

    return {"__celpy__": {"object": celpy.json_to_cel(obj)}}


_ENGINE: Any = None


def main() -> None:
    global _ENGINE
    engines = _engines()
    if not engines:
        sys.exit("no CEL engine installed")
    try:
        from policies.cel.engine import Engine

        _ENGINE = Engine()
    except ImportError:
        _ENGINE = None
    results: dict[str, Any] = {}
    for name, compile_expr in engines.items():
        variables = _bind(name, DEPLOYMENT)
        passed, failed = [], []
        for expression, expected in CONFORMANCE:
            try:
                got = compile_expr(expression)(variables)
            except Exception:
                got = "refused"
            (passed if got is expected or got == expected else failed).append(expression)
        rounds = 2_000 if not name.startswith("cel-python") else 50
        timings = []
        compile_times = []
        for _ in range(5):
            started = time.perf_counter()
            programs = [compile_expr(e) for e in SPEED]
            compile_times.append((time.perf_counter() - started) / len(SPEED))
            started = time.perf_counter()
            for _ in range(rounds):
                for program in programs:
                    program(variables)
            timings.append((time.perf_counter() - started) / (rounds * len(SPEED)))
        results[name] = {
            "evaluation_us": round(statistics.median(timings) * 1e6, 2),
            "compile_us": round(statistics.median(compile_times) * 1e6, 1),
            "conformance": f"{len(passed)}/{len(CONFORMANCE)}",
            "failed": failed,
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
