"""The CEL engine behind user rules: one environment, each expression compiled once, bounded.

The environment declares the variables a ValidatingAdmissionPolicy sees (`object`, `oldObject`,
`request`, `params`, `namespaceObject`, `variables`) plus `tidegate` (the GitOps context of the
change), all dynamically typed, with the engine's optional, strings, math, encoders and
`cel.bind` extensions and the Kubernetes library (`policies.cel.kubernetes_functions`).

Engine: `cel-expr-python`, the CEL team's binding of the C++ reference implementation, chosen
over `common-expression-language` and `cel-python` (docs/policy-gate.md, bench/cel_engines.py).

Bounds: an expression longer than `MAX_EXPRESSION` characters is refused at compile time; every
evaluation runs under the engine's fixed comprehension budget (10,000 iterations, then an
error), so neither a hostile object nor a careless rule can make evaluation unbounded. Errors
are values (`EvalError`), never exceptions, so one bad expression costs one finding.

The engine's native library is loaded with the first expression an `Engine` compiles, not with
this module: it is a large part of a process's memory, and the reconciler makes engines for
fields (`healthCheckExprs`, `commitStatusExpr`) most objects never set.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_EXPRESSION", "VARIABLES", "CompileError", "Engine", "EvalError", "Program"]

MAX_EXPRESSION = 10_000
VARIABLES = ("object", "oldObject", "request", "params", "namespaceObject", "variables", "tidegate")


class CompileError(ValueError):
    """An expression does not compile; the message is the engine's, with a caret."""


@dataclass(frozen=True)
class EvalError:
    """An expression evaluated to an error (missing key, bad argument, budget exceeded)."""

    message: str


class Program:
    """One compiled expression."""

    def __init__(self, source: str, compiled: Any) -> None:
        self.source = source
        self._compiled = compiled

    def evaluate(self, activation: Any) -> Any:
        """Return the result as plain Python data, or an `EvalError`."""
        try:
            value = self._compiled.eval(activation)
        except RuntimeError as exc:  # the engine reports budget and internal errors this way
            return EvalError(_clean(str(exc)))
        if value.type().name() == "ERROR":
            return EvalError(_clean(str(value.plain_value())))
        return value.plain_value()


def _clean(message: str) -> str:
    return message.replace(" [INTERNAL]", "").strip()


class Engine:
    """A CEL environment with a compile cache; safe to share between threads."""

    def __init__(self, variables: tuple[str, ...] = VARIABLES) -> None:
        """An environment declaring `variables` (by default the admission policy's)."""
        self._variables = variables
        self._made: Any = None
        self._cache: dict[str, Program] = {}
        self._lock = threading.Lock()

    @property
    def _env(self) -> Any:
        with self._lock:
            if self._made is None:
                self._made = _new_env(self._variables)
            return self._made

    def compile(self, expression: str, *, cached: bool = True) -> Program:
        """Compile an expression once; raise `CompileError` with the engine's message."""
        if cached:
            with self._lock:
                found = self._cache.get(expression)
            if found is not None:
                return found
        if len(expression) > MAX_EXPRESSION:
            raise CompileError(f"expression is longer than {MAX_EXPRESSION} characters")
        try:
            program = Program(expression, self._env.compile(expression))
        except RuntimeError as exc:
            raise CompileError(_clean(str(exc)).removeprefix("INVALID_ARGUMENT: ")) from None
        with self._lock:
            self._cache[expression] = program
        return program

    def activation(self, data: Mapping[str, Any]) -> Any:
        """Bind variables (plain JSON-like data) for one or more evaluations."""
        return self._env.Activation({name: data.get(name) for name in self._variables})


def _new_env(variables: tuple[str, ...]) -> Any:
    """The CEL environment declaring `variables`, with the extensions (loads the engine)."""
    from cel_expr_python import cel
    from cel_expr_python.ext import (
        ext_bindings,
        ext_encoders,
        ext_math,
        ext_optional,
        ext_strings,
    )

    from policies.cel import kubernetes_functions

    return cel.NewEnv(
        variables={name: cel.Type.DYN for name in variables},
        extensions=[
            ext_optional.ExtOptional(),
            ext_strings.ExtStrings(),
            ext_math.ExtMath(),
            ext_encoders.ExtEncoders(),
            ext_bindings.ExtBindings(),
            kubernetes_functions.extension(),
        ],
    )
