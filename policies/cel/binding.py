"""Inline a policy's `variables` into each expression with `cel.bind`, so one activation serves all.

A ValidatingAdmissionPolicy's `variables.<name>` are evaluated lazily and at most once per
request. Rebuilding the engine's activation for every variable costs more than the evaluation
itself, so each expression is instead compiled once as

    cel.bind(tgvar_a, <a>, cel.bind(tgvar_b, <b>, <expression>))

binding only the variables it uses (and those they use, in declaration order), with every
`variables.<name>` outside string literals renamed to `tgvar_<name>`. Errors stay values: a bound
variable whose evaluation failed makes an expression fail only if its result depends on it, as
with lazy evaluation. An expression that names `variables` any other way (`variables['a']`,
`has(variables.a)`) is left as is: the caller then evaluates variables one by one. Pure text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["PREFIX", "bind_variables"]

PREFIX = "tgvar_"
_REFERENCE = re.compile(r"\bvariables\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)")
_BARE = re.compile(r"\bvariables\b")
_HAS = re.compile(r"\bhas\s*\(\s*variables\b")


def _segments(expression: str) -> list[tuple[bool, str]]:
    """Split into (is_code, text) pieces; string and bytes literals are not code."""
    pieces: list[tuple[bool, str]] = []
    i, start, n = 0, 0, len(expression)
    while i < n:
        char = expression[i]
        if char not in "'\"":
            i += 1
            continue
        prefix = i
        while prefix > start and expression[prefix - 1] in "rRbB":
            prefix -= 1
        raw = "r" in expression[prefix:i].lower()
        if prefix > start and (expression[prefix - 1].isalnum() or expression[prefix - 1] == "_"):
            prefix, raw = i, False  # an identifier ending in r or b, not a literal prefix
        pieces.append((True, expression[start:prefix]))
        quote = expression[i : i + 3] if expression[i : i + 3] in ("'''", '"""') else char
        j = i + len(quote)
        while j < n and not expression.startswith(quote, j):
            j += 2 if expression[j] == "\\" and not raw else 1
        end = min(n, j + len(quote))
        pieces.append((False, expression[prefix:end]))
        i = start = end
    pieces.append((True, expression[start:]))
    return pieces


def _references(expression: str) -> tuple[set[str], bool]:
    """Return the variable names an expression uses, and whether every use is `variables.x`."""
    names: set[str] = set()
    plain = True
    for code, text in _segments(expression):
        if not code:
            continue
        names.update(_REFERENCE.findall(text))
        if len(_BARE.findall(text)) != len(_REFERENCE.findall(text)) or _HAS.search(text):
            plain = False
    return names, plain


def _rename(expression: str) -> str:
    return "".join(
        _REFERENCE.sub(lambda m: PREFIX + m.group(1), text) if code else text
        for code, text in _segments(expression)
    )


def bind_variables(expression: str, variables: Sequence[tuple[str, str]]) -> str | None:
    """Return the expression with the variables it uses bound, or None when it cannot be."""
    sources = dict(variables)
    order = [name for name, _ in variables]
    names, plain = _references(expression)
    if not plain:
        return None
    needed: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name in needed or name not in sources:
            continue
        needed.add(name)
        inner, inner_plain = _references(sources[name])
        if not inner_plain:
            return None
        pending.extend(inner)
    if names - set(sources):
        return None  # an undeclared variable: let evaluation report it as the API server does
    bound = _rename(expression)
    for name in reversed([n for n in order if n in needed]):
        bound = f"cel.bind({PREFIX}{name}, {_rename(sources[name])}, {bound})"
    return bound
