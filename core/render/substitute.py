"""Flux's post-build variable substitution (`spec.postBuild`), ported from fluxcd/pkg/envsubst.

kustomize-controller serialises each built object to YAML, expands `${...}` expressions in that
text with its fork of drone/envsubst, and parses the result again. This module does the same, with
the same grammar and quirks, because a preview that substitutes differently would lie:

- `${var}`, `${var=default}`, `${var:=default}`, `${var:-default}` (also `:+`, `:?`, which like
  Flux's fork return the value when set and the argument otherwise), `${var:pos}`,
  `${var:pos:len}`, `${var/a/b}`, `${var//a/b}`, `${var/#a/b}`, `${var/%a/b}`, `${var#glob}`,
  `${var##glob}`, `${var%glob}`, `${var%%glob}`, `${var^}`, `${var^^}`, `${var,}`, `${var,,}`,
  `${#var}`; defaults may nest expressions.
- Bare `$var` is *not* substituted, and `${var-default}` / `${var?msg}` are parse errors
  ("missing closing brace"), exactly as in Flux.
- `$$` outside an expression is an escape for `$`, so `$${var}` stays the literal `${var}`.
- Strict mode (Flux's default since v1.9): an unset variable referenced without a default
  operator is an error, "variable not set (strict mode)".
- Variable values lose their newlines, and variable names must match
  `^[_[:alpha:]][_[:alpha:][:digit:]]*$`, as in Flux.
- Objects labelled or annotated `kustomize.toolkit.fluxcd.io/substitute: disabled` are skipped.

tests/render/test_substitute_flux.py runs Flux's own test tables (eval, funcs, parse) and the
results of fluxcd/pkg/envsubst v1.9.0 for what they leave out. Known differences: `${v/#/x}` and
`${v/%/x}` (empty pattern) prepend and append as on fluxcd/pkg's main branch, where v1.9.0 rejects
them; and Go matches `#`/`%` globs against byte prefixes, so a pattern ending inside a multi-byte
character can match there in Flux, while this port matches whole characters.

Secret-derived values. Values that came from Secrets (`postBuild.substituteFrom` of kind Secret)
must never be cached, compared or shown in cleartext, yet they can land anywhere in any object.
While expanding, every piece of output produced from a secret variable (its value, or what an
operator made of it) is recorded; afterwards the path of every string in the object (keys included)
that contains one of those pieces is returned with the object (`core.cleartext.SecretPaths`), and
`Clear.masked` replaces each such string by the mask token of the whole string, so diffs show
`***`, `*** (before)` or `*** (after)` and still tell whether the value changed. The object itself
stays cleartext, because the reconciler applies it. The `data`/`stringData` of Secrets need no
path: `Masker.mask_object` masks them by kind. This over-masks rather than under-masks (a short
value masks every string containing it), and a value that the paths would not cover (split by
YAML, say) fails the render. Errors never quote object text once a secret value was substituted
into it.

This module must never log or raise with a cleartext secret-derived value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from core import yamlio
from core.cleartext import Path, SecretPaths, replace_paths
from core.errors import InputError, RenderError
from core.model import ObjectRef, RawObject
from core.secrets import is_secret, strip_tokens

__all__ = [
    "DISABLED_KEY",
    "Expansion",
    "SubstitutionError",
    "expand",
    "substitute_object",
]

DISABLED_KEY = "kustomize.toolkit.fluxcd.io/substitute"
_VAR_NAME = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]*$")
_DEFAULT_OPS = frozenset({"-", "+", "=", "?", ":-", ":+", ":=", ":?"})
# Raw secret values at least this long are also searched for in the final text as a last check.
_LEAK_CHECK_MIN = 4


class SubstitutionError(Exception):
    """An expression could not be parsed or expanded (the message quotes no values)."""


# --------------------------------------------------------------------------------------------
# Scanner: a port of envsubst/parse/scan.go (positions count code points, not bytes).

_EOF = ""
_SCAN_IDENT, _SCAN_LBRACK, _SCAN_RBRACK, _SCAN_ESCAPE = 1, 2, 4, 8
_ESC_DOLLAR, _ESC_BACKSLASH = 1, 2
_ESC_ALL = _ESC_DOLLAR | _ESC_BACKSLASH
_T_ILLEGAL, _T_EOF, _T_IDENT, _T_LBRACK, _T_RBRACK = range(5)

Accept = Callable[[str, int], bool]


class _Scanner:
    """Reads runes and tokens; `skip` removes an escape character from the buffer in place."""

    def __init__(self, buf: str) -> None:
        self.buf = buf
        self.pos = 0
        self.start = 0
        self.width = 0
        self.mode = 0
        self.escape = 0
        self.accept: Accept = _accept_rune

    def read(self) -> str:
        if self.pos >= len(self.buf):
            self.width = 0
            return _EOF
        self.width = 1
        self.pos += 1
        return self.buf[self.pos - 1]

    def unread(self) -> None:
        self.pos -= self.width

    def skip(self) -> None:
        self.buf = self.buf[: self.pos - 1] + self.buf[self.pos :]

    def peek(self) -> str:
        rune = self.read()
        self.unread()
        return rune

    def string(self) -> str:
        return self.buf[self.start : self.pos]

    def scan(self) -> int:
        self.start = self.pos
        rune = self.read()
        if rune == _EOF:
            return _T_EOF
        if self.scan_lbrack(rune):
            return _T_LBRACK
        if self.scan_rbrack(rune):
            return _T_RBRACK
        if self.scan_ident(rune):
            return _T_IDENT
        return _T_ILLEGAL

    def scan_ident(self, rune: str) -> bool:
        if not self.mode & _SCAN_IDENT:
            return False
        if self.scan_escaped(rune):
            self.skip()
        elif not self.accept(rune, self.pos - self.start):
            return False
        while True:
            rune = self.read()
            if rune == _EOF:
                self.unread()
                return True
            if self.scan_lbrack(rune):
                self.unread()
                self.unread()
                return True
            if self.scan_escaped(rune):
                self.skip()
                continue
            if not self.accept(rune, self.pos - self.start):
                self.unread()
                return True

    def scan_lbrack(self, rune: str) -> bool:
        if not self.mode & _SCAN_LBRACK or rune != "$":
            return False
        if self.read() == "{":
            return True
        self.unread()
        return False

    def scan_rbrack(self, rune: str) -> bool:
        return bool(self.mode & _SCAN_RBRACK) and rune == "}"

    def scan_escaped(self, rune: str) -> bool:
        if not self.mode & _SCAN_ESCAPE:
            return False
        if rune == "$" and self.escape & _ESC_DOLLAR and self.peek() == "$":
            return True
        return rune == "\\" and bool(self.escape & _ESC_BACKSLASH) and self.peek() in ("/", "\\")


def _accept_rune(rune: str, index: int) -> bool:
    return True


def _accept_ident(rune: str, index: int) -> bool:
    return rune.isalpha() or rune.isdecimal() or rune == "_"  # Go: IsLetter, IsDigit (Nd)


def _accept_colon(rune: str, index: int) -> bool:
    return rune == ":"


def _accept_one_hash(rune: str, index: int) -> bool:
    return rune == "#" and index == 1


def _accept_not_closing(rune: str, index: int) -> bool:
    return rune != "}"


def _accept_hash_func(rune: str, index: int) -> bool:
    return rune == "#" and index < 3


def _accept_percent_func(rune: str, index: int) -> bool:
    return rune == "%" and index < 3


def _accept_default_func(rune: str, index: int) -> bool:
    return (index == 1 and rune == ":") or (index == 2 and rune in "=-?+")


def _accept_replace_func(rune: str, index: int) -> bool:
    return (index == 1 and rune == "/") or (index == 2 and rune in "/#%")


def _accept_one_equal(rune: str, index: int) -> bool:
    return index == 1 and rune == "="


def _accept_one_colon(rune: str, index: int) -> bool:
    return index == 1 and rune == ":"


def _reject_colon_close(rune: str, index: int) -> bool:
    return rune not in (":", "}")


def _accept_slash(rune: str, index: int) -> bool:
    return rune == "/"


def _accept_not_slash(rune: str, index: int) -> bool:
    return rune != "/"


def _accept_casing_func(rune: str, index: int) -> bool:
    return rune in ",^" and index < 3


# --------------------------------------------------------------------------------------------
# Parser: a port of envsubst/parse/parse.go.


@dataclass
class _Text:
    value: str


@dataclass
class _Func:
    param: str = ""
    name: str = ""
    args: list[_Node] = field(default_factory=list)


_Node = _Text | _Func | list[Any]


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = _Scanner(text)

    def parse_any(self) -> list[_Node]:
        nodes: list[_Node] = []
        while True:
            self.s.accept = _accept_rune
            self.s.mode = _SCAN_IDENT | _SCAN_LBRACK | _SCAN_ESCAPE
            self.s.escape = _ESC_DOLLAR
            token = self.s.scan()
            if token == _T_EOF:
                return nodes
            if token == _T_IDENT:
                nodes.append(_Text(self.s.string()))
            elif token == _T_LBRACK:
                nodes.append(self.parse_func())
            else:
                raise SubstitutionError("bad substitution")

    def parse_func(self) -> _Node:
        self.s.escape = _ESC_ALL
        if self.s.peek() == "#":
            return self.parse_len()
        self.s.accept, self.s.mode = _accept_ident, _SCAN_IDENT
        if self.s.scan() != _T_IDENT:
            raise SubstitutionError("unable to parse variable name")
        name = self.s.string()
        following = self.s.peek()
        if following == ":":
            return self.parse_default_or_substr(name)
        if following == "=":
            return self.parse_default(name)
        if following in (",", "^"):
            return self.parse_operator(name, _accept_casing_func, with_arg=False)
        if following == "/":
            return self.parse_replace(name)
        if following == "#":
            return self.parse_operator(name, _accept_hash_func, with_arg=True)
        if following == "%":
            return self.parse_operator(name, _accept_percent_func, with_arg=True)
        self.s.accept, self.s.mode = _accept_ident, _SCAN_RBRACK
        if self.s.scan() != _T_RBRACK:
            raise SubstitutionError("missing closing brace")
        return _Func(param=name)

    def parse_param(self, accept: Accept, mode: int) -> _Node:
        self.s.accept, self.s.mode = accept, mode | _SCAN_LBRACK
        token = self.s.scan()
        if token == _T_LBRACK:
            return self.parse_func()
        if token in (_T_IDENT, _T_RBRACK):
            return _Text(self.s.string())
        raise SubstitutionError("unable to parse substitution within function")

    def operator(self, accept: Accept, error: str = "bad substitution") -> str:
        self.s.accept, self.s.mode = accept, _SCAN_IDENT
        if self.s.scan() != _T_IDENT:
            raise SubstitutionError(error)
        return self.s.string()

    def parse_default_or_substr(self, name: str) -> _Node:
        self.s.read()
        following = self.s.peek()
        if following > "\x7f":
            # Go steps back by the byte width of the last rune read, so after peeking a multi-byte
            # character it lands before the colon, and Flux reports a bad substitution.
            raise SubstitutionError("bad substitution")
        self.s.unread()
        if following in ("=", "-", "?", "+"):
            return self.parse_default(name)
        node = _Func(param=name, name=self.operator(_accept_one_colon))
        node.args.append(self.parse_param(_reject_colon_close, _SCAN_IDENT))
        self.s.accept, self.s.mode = _accept_colon, _SCAN_IDENT | _SCAN_RBRACK
        token = self.s.scan()
        if token == _T_RBRACK:
            return node
        if token != _T_IDENT:
            raise SubstitutionError("bad substitution")
        node.args.append(self.parse_param(_accept_not_closing, _SCAN_IDENT))
        self.consume_rbrack()
        return node

    def parse_operator(self, name: str, accept: Accept, *, with_arg: bool) -> _Node:
        node = _Func(param=name, name=self.operator(accept))
        if with_arg:
            node.args.append(self.parse_param(_accept_not_closing, _SCAN_IDENT))
        self.consume_rbrack()
        return node

    def parse_replace(self, name: str) -> _Node:
        node = _Func(param=name, name=self.operator(_accept_replace_func))
        if self.s.peek() == "/":
            node.args.append(_Text(""))  # an empty pattern, as in ${var/#/prefix}
        else:
            node.args.append(self.parse_param(_accept_not_slash, _SCAN_IDENT | _SCAN_ESCAPE))
        self.operator(_accept_slash)
        if self.s.peek() != "}":
            node.args.append(self.parse_param(_accept_not_closing, _SCAN_IDENT | _SCAN_ESCAPE))
        self.consume_rbrack()
        return node

    def parse_default(self, name: str) -> _Node:
        accept = _accept_one_equal if self.s.peek() == "=" else _accept_default_func
        node = _Func(param=name, name=self.operator(accept, "unable to parse default function"))
        while self.s.peek() != "}":
            node.args.append(self.parse_param(_accept_not_closing, _SCAN_IDENT))
        self.consume_rbrack()
        return node

    def parse_len(self) -> _Node:
        node = _Func(name=self.operator(_accept_one_hash))
        node.param = self.operator(_accept_ident)
        self.consume_rbrack()
        return node

    def consume_rbrack(self) -> None:
        self.s.mode = _SCAN_RBRACK
        if self.s.scan() != _T_RBRACK:
            raise SubstitutionError("bad substitution")


# --------------------------------------------------------------------------------------------
# Functions: a port of envsubst/funcs.go (lengths and offsets count UTF-8 bytes, as in Go).


def _to_default(value: str, *args: str) -> str:
    return "".join(args) if not value and args else value


def _to_len(value: str, *args: str) -> str:
    return str(len(value.encode()))


_GO_INT = re.compile(r"[+-]?[0-9]+")
_INT64 = 1 << 63


def _atoi(text: str) -> int | None:
    """Go's strconv.Atoi: ASCII digits with an optional sign, within int64; else None."""
    if not _GO_INT.fullmatch(text):
        return None
    number = int(text)
    return number if -_INT64 <= number < _INT64 else None


def _to_substr(value: str, *args: str) -> str:
    data = value.encode()
    pos = _atoi(args[0]) if args else None
    if pos is None:
        return value
    pos = max(len(data) + pos, 0) if pos < 0 else pos
    if len(args) == 1:
        return data[pos:].decode(errors="replace")
    length = _atoi(args[1])
    if length is None:
        return value
    if length < 0:
        end = len(data) + length
        return "" if end < pos else data[pos:end].decode(errors="replace")
    return data[pos : pos + length].decode(errors="replace")


def _replace(count: int) -> Callable[..., str]:
    def apply(value: str, *args: str) -> str:
        if not args:
            return value
        return value.replace(args[0], args[1] if len(args) > 1 else "", count)

    return apply


def _replace_prefix(value: str, *args: str) -> str:
    if len(args) == 2 and value.startswith(args[0]):
        return value.replace(args[0], args[1], 1)
    return value


def _replace_suffix(value: str, *args: str) -> str:
    if len(args) == 2 and value.endswith(args[0]):
        return value[: len(value) - len(args[0])] + args[1]
    return value


# Flux's fork of Go's path.Match, rune for rune: `*` matches any run of characters (`/`
# included), `?` one character, `[...]` a class negated only by `^`, `\\` escapes. A malformed
# pattern makes the operator return the value unchanged. Its quirks are kept on purpose: a star
# does not backtrack beyond the next chunk, and `[!a]`, `[a-]` or `[]a]` are not classes bash
# would read.


class _BadPatternError(Exception):
    """The glob pattern is malformed (Go's path.ErrBadPattern)."""


def _glob_match(pattern: str, name: str) -> bool:
    while pattern:
        star, chunk, pattern = _scan_chunk(pattern)
        if star and not chunk:
            return True
        rest, ok = _match_chunk(chunk, name)
        if ok and (not rest or pattern):
            name = rest
            continue
        if star and (skipped := _match_after_star(chunk, name, last=not pattern)) is not None:
            name = skipped
            continue
        return False
    return not name


def _match_after_star(chunk: str, name: str, *, last: bool) -> str | None:
    for index in range(len(name)):
        rest, ok = _match_chunk(chunk, name[index + 1 :])
        if ok and not (last and rest):
            return rest
    return None


def _scan_chunk(pattern: str) -> tuple[bool, str, str]:
    star = False
    while pattern.startswith("*"):
        pattern, star = pattern[1:], True
    in_range, index = False, 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            index += 1
        elif char == "[":
            in_range = True
        elif char == "]":
            in_range = False
        elif char == "*" and not in_range:
            break
        index += 1
    return star, pattern[:index], pattern[index:]


def _match_chunk(chunk: str, text: str) -> tuple[str, bool]:
    """Match star-free `chunk` at the start of `text`: (rest, matched); raise if it is bad."""
    while chunk:
        if not text:
            return "", False
        head = chunk[0]
        if head == "[":
            char, text, chunk = text[0], text[1:], chunk[1:]
            negated = chunk.startswith("^")
            chunk = chunk[1:] if negated else chunk
            matched, ranges = False, 0
            while not (chunk.startswith("]") and ranges > 0):
                low, chunk = _class_char(chunk)
                high = low
                if chunk[0] == "-":
                    high, chunk = _class_char(chunk[1:])
                matched = matched or low <= char <= high
                ranges += 1
            chunk = chunk[1:]
            if matched == negated:
                return "", False
        elif head == "?":
            text, chunk = text[1:], chunk[1:]
        else:
            if head == "\\":
                chunk = chunk[1:]
                if not chunk:
                    raise _BadPatternError
            if chunk[0] != text[0]:
                return "", False
            text, chunk = text[1:], chunk[1:]
    return text, True


def _class_char(chunk: str) -> tuple[str, str]:
    """One possibly escaped character of a class, and the rest of the chunk."""
    if not chunk or chunk[0] in "-]":
        raise _BadPatternError
    if chunk[0] == "\\":
        chunk = chunk[1:]
        if not chunk:
            raise _BadPatternError
    if len(chunk) == 1:
        raise _BadPatternError
    return chunk[0], chunk[1:]


def _trim(value: str, pattern: str, *, longest: bool) -> str:
    """Remove the shortest (or longest) prefix of `value` matching `pattern`, as Flux does."""
    matched = ""
    for index in range(len(value)):
        prefix = value[: len(value) - index]
        try:
            if not _glob_match(pattern, prefix):
                continue
        except _BadPatternError:
            return value
        matched = prefix
        if longest:
            break
    return value[len(matched) :] if matched else value


def _trimmer(*, longest: bool, suffix: bool) -> Callable[..., str]:
    def apply(value: str, *args: str) -> str:
        if not args:
            return value
        if suffix:
            return _trim(value[::-1], args[0][::-1], longest=longest)[::-1]
        return _trim(value, args[0], longest=longest)

    return apply


_FUNCS: dict[str, Callable[..., str]] = {
    ",": lambda v, *a: v[:1].lower() + v[1:],
    ",,": lambda v, *a: v.lower(),
    "^": lambda v, *a: v[:1].upper() + v[1:],
    "^^": lambda v, *a: v.upper(),
    "##": _trimmer(longest=True, suffix=False),
    "%": _trimmer(longest=False, suffix=True),
    "%%": _trimmer(longest=True, suffix=True),
    ":": _to_substr,
    "/#": _replace_prefix,
    "/%": _replace_suffix,
    "/": _replace(1),
    "//": _replace(-1),
}


def _lookup(name: str, nargs: int) -> Callable[..., str]:
    if name == "#":
        return _to_len if nargs == 0 else _trimmer(longest=False, suffix=False)
    return _FUNCS.get(name, _to_default)


# --------------------------------------------------------------------------------------------
# Evaluation.


@dataclass(frozen=True)
class Expansion:
    """The expanded text and every piece of it that was produced from a secret variable."""

    text: str
    secret_outputs: frozenset[str]


class _Evaluator:
    def __init__(
        self, variables: Mapping[str, str], strict: bool, secret_variables: Collection[str]
    ) -> None:
        self.variables = variables
        self.strict = strict
        self.secret_variables = secret_variables
        self.secret_outputs: set[str] = set()

    def run(self, nodes: list[_Node]) -> str:
        return "".join(self.node(node) for node in nodes)

    def node(self, node: _Node) -> str:
        if isinstance(node, _Text):
            return node.value
        if isinstance(node, _Func):
            return self.func(node)
        return self.run(node)

    def func(self, node: _Func) -> str:
        args = [self.node(arg) for arg in node.args]
        exists = node.param in self.variables
        if not exists and self.strict and node.name not in _DEFAULT_OPS:
            raise SubstitutionError(f"variable not set (strict mode): {node.param!r}")
        value = self.variables.get(node.param, "")
        output = _lookup(node.name, len(args))(value, *args)
        if exists and node.param in self.secret_variables:
            self.secret_outputs.update(piece for piece in (value, output) if piece)
        return output


def expand(
    text: str,
    variables: Mapping[str, str],
    *,
    strict: bool = True,
    secret_variables: Collection[str] = frozenset(),
) -> Expansion:
    """Expand `${...}` expressions in `text` the way Flux's envsubst does.

    Raises:
        SubstitutionError: a malformed expression, an invalid variable name, or (strict) an
            unset variable without a default.
    """
    for name in variables:
        if not _VAR_NAME.match(name):
            raise SubstitutionError(
                f"{name!r} var name is invalid, must match '^[_[:alpha:]][_[:alpha:][:digit:]]*$'"
            )
    if "$" not in text:
        # Every expression and escape starts with "$": most objects hold none (~0.2 ms each).
        return Expansion(text, frozenset())
    clean = {name: value.replace("\n", "") for name, value in variables.items()}
    evaluator = _Evaluator(clean, strict, secret_variables)
    result = evaluator.run(_Parser(text).parse_any())
    return Expansion(result, frozenset(evaluator.secret_outputs))


# --------------------------------------------------------------------------------------------
# Objects.


def _disabled(obj: Mapping[str, Any]) -> bool:
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        return False
    return any(
        isinstance(meta.get(key), Mapping) and meta[key].get(DISABLED_KEY) == "disabled"
        for key in ("labels", "annotations")
    )


def _dump(obj: Mapping[str, Any]) -> str:
    # No line folding: a folded default such as ${x:=a b} must reach the parser in one piece.
    return yamlio.dump(
        obj, default_flow_style=False, allow_unicode=True, sort_keys=True, width=1 << 30
    )


def substitute_object(
    obj: RawObject,
    variables: Mapping[str, str],
    *,
    secret_variables: Collection[str] = frozenset(),
    strict: bool = True,
    source: str | None = None,
) -> tuple[RawObject, SecretPaths]:
    """Return `obj` with its variables substituted, and where secret-derived strings landed.

    Objects labelled or annotated `kustomize.toolkit.fluxcd.io/substitute: disabled` are
    returned unchanged. Secret `data`/`stringData` get no paths: they are masked by kind.

    Raises:
        InputError: the substitution failed or its result is not one YAML object; the message
            names the object and its source file and never quotes secret-derived text.
    """
    if _disabled(obj):
        return obj, SecretPaths()
    label = str(ObjectRef.of(obj))
    try:
        expansion = expand(_dump(obj), variables, strict=strict, secret_variables=secret_variables)
    except SubstitutionError as exc:
        raise InputError(f"variable substitution failed: {exc}", file=source, obj=label) from exc
    result = _parse_result(expansion, label, source)
    if not expansion.secret_outputs:
        return result, SecretPaths()
    values: set[Path] = set()
    keys: set[Path] = set()
    _find_paths(result, (), expansion.secret_outputs, values, keys, skip=is_secret(result))
    paths = SecretPaths(frozenset(values), frozenset(keys))
    _check_no_leak(replace_paths(result, paths, lambda _: ""), expansion.secret_outputs, label)
    return result, paths


def _parse_result(expansion: Expansion, label: str, source: str | None) -> RawObject:
    try:
        parsed = yamlio.load(expansion.text)
    except yamlio.YAMLError as exc:
        detail = ""
        if isinstance(exc, yamlio.MarkedYAMLError) and exc.problem_mark is not None:
            mark = exc.problem_mark
            detail = f" (line {mark.line + 1}, column {mark.column + 1})"
            if not expansion.secret_outputs:
                detail = f": {exc.problem}{detail}"
        raise InputError(
            f"the object is not valid YAML after variable substitution{detail}",
            file=source,
            obj=label,
        ) from None
    if not isinstance(parsed, dict):
        raise InputError(
            "the object is not a mapping after variable substitution", file=source, obj=label
        )
    return parsed


def _find_paths(
    node: Any,
    here: Path,
    pieces: frozenset[str],
    values: set[Path],
    keys: set[Path],
    *,
    skip: bool,
) -> None:
    """Record the path of every string (and key) containing a secret-derived piece."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            _find_paths(item, (*here, index), pieces, values, keys, skip=False)
    elif isinstance(node, dict):
        for key, value in node.items():
            below = (*here, key)
            if any(p in str(key) for p in pieces):
                keys.add(below)
            if skip and key in ("data", "stringData"):
                continue  # Masker.mask_object tokens these from the real value
            _find_paths(value, below, pieces, values, keys, skip=False)
    elif node is not None and not isinstance(node, bool | int | float) and _holds(node, pieces):
        values.add(here)


def _holds(node: Any, pieces: frozenset[str]) -> bool:
    return any(p in str(node) for p in pieces)


def _check_no_leak(obj: Mapping[str, Any], pieces: frozenset[str], label: str) -> None:
    """Fail closed if a secret-derived value survived masking (for example split by YAML)."""
    body = dict(obj)
    if is_secret(body):
        body.pop("data", None)
        body.pop("stringData", None)
    text = strip_tokens(_dump(body))
    if any(len(piece) >= _LEAK_CHECK_MIN and piece in text for piece in pieces):
        raise RenderError(f"{label}: a value substituted from a Secret could not be masked")
