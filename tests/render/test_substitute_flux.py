"""Flux's own envsubst test tables, case for case, run against our port.

The tables below reproduce fluxcd/pkg `envsubst` (a fork of drone/envsubst): `eval_test.go`
(TestExpand, TestExpandStrict), `funcs_test.go` (each function) and `parse/parse_test.go` (the
parse tree of each expression), with the same inputs and expected results. `FLUX_OBSERVED` adds
what those tables leave out (glob quirks, Go's integer parsing, every parser error, the
default operators on unset variables); its expected results are the output of
fluxcd/pkg/envsubst v1.9.0's `Eval` on the same input and variables, in strict mode.

One known difference: an empty pattern in `${v/#/x}` and `${v/%/x}` prepends or appends, as on
fluxcd/pkg's main branch (its TestExpand cases "replace prefix/suffix with empty pattern");
the v1.9.0 release still rejects it as "unable to parse substitution within function".
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from core.render.substitute import SubstitutionError, _Func, _lookup, _Parser, _Text, expand

# TestExpand: every variable lookup succeeds (unset ones read as ""), i.e. non-strict mode.
EXPAND = [
    ({}, "abcdEFGH28ij", "abcdEFGH28ij"),
    ({"var01": "abcdEFGH28ij"}, "${#var01}", "12"),
    ({"var01": "abcdEFGH28ij"}, "${var01^}", "AbcdEFGH28ij"),
    ({"var01": "abcdEFGH28ij"}, "${var01^^}", "ABCDEFGH28IJ"),
    ({"var01": "ABCDEFGH28IJ"}, "${var01,}", "aBCDEFGH28IJ"),
    ({"var01": "ABCDEFGH28IJ"}, "${var01,,}", "abcdefgh28ij"),
    (
        {"path_name": "/home/bozo/ideas/thoughts.for.today"},
        "${path_name:11}",
        "ideas/thoughts.for.today",
    ),
    ({"path_name": "/home/bozo/ideas/thoughts.for.today"}, "${path_name:11:5}", "ideas"),
    ({"var": "abc"}, "${var=xyz}", "abc"),
    ({}, "${var=xyz}", "xyz"),
    ({"default_var": "foo"}, "something ${var=${default_var}}", "something foo"),
    ({"default_var": "foo1"}, "foo: ${var=${default_var}-suffix}", "foo: foo1-suffix"),
    ({"default_var": "foo1"}, "foo: ${var=prefix${default_var}-suffix}", "foo: prefixfoo1-suffix"),
    ({}, "${var:=xyz}", "xyz"),
    ({"stringZ": "abcABC123ABCabc"}, "${stringZ/%abc/XYZ}", "abcABC123ABCXYZ"),
    ({"stringZ": "abcABC123ABCabc"}, "${stringZ/#abc/XYZ}", "XYZABC123ABCabc"),
    ({"stringZ": "somevalue"}, "${stringZ/#/prefix-}", "prefix-somevalue"),
    ({"stringZ": "somevalue"}, "${stringZ/%/-suffix}", "somevalue-suffix"),
    ({"stringZ": "abcABC123ABCabc"}, "${stringZ//abc/xyz}", "xyzABC123ABCxyz"),
    ({"stringZ": "abcABC123ABCabc"}, "${stringZ/abc/xyz}", "xyzABC123ABCabc"),
    ({"filename": "bash.string.txt"}, "${filename#*.}", "string.txt"),
    ({"filename": "path/to/file"}, "${filename#*/}", "to/file"),
    ({"filename": "/path/to/file"}, "${filename#*/}", "path/to/file"),
    ({"filename": "bash.string.txt"}, "${filename##*.}", "txt"),
    ({"filename": "path/to/file"}, "${filename##*/}", "file"),
    ({"filename": "/path/to/file"}, "${filename##*/}", "file"),
    ({"filename": "bash.string.txt"}, "${filename%.*}", "bash.string"),
    ({"filename": "bash.string.txt"}, "${filename%%.*}", "bash"),
    ({"var01": "abcdEFGH28ij"}, "${var=${var01^^}}", "ABCDEFGH28IJ"),
    ({"var01": "abcdEFGH28ij"}, "$${var01}", "${var01}"),
    (
        {"var01": "abcdEFGH28ij"},
        "some text ${var01}$${var$${var01}$var01${var01}",
        "some text abcdEFGH28ij${var${var01}$var01abcdEFGH28ij",
    ),
    ({"default_var": "foo"}, "something $${var=${default_var}}", "something ${var=foo}"),
    ({"stringZ": "foo/bar"}, r"${stringZ/\//-}", "foo-bar"),
    ({"stringZ": "foo/bar/baz"}, r"${stringZ//\//-}", "foo-bar-baz"),
    ({"default_var": "foo"}, "\\\\something ${var=${default_var}}", "\\\\something foo"),
    ({"stringZ": "foo.bar"}, "${stringZ/./}", "foobar"),
]

# TestExpandStrict: a lookup of an unset variable fails unless a default operator handles it.
NOT_SET = "variable not set (strict mode)"
EXPAND_STRICT: list[tuple[dict[str, str], str, str | None]] = [
    ({}, "abcdEFGH28ij", "abcdEFGH28ij"),
    ({"foo": "bar"}, "${foo}", "bar"),
    ({"foo": ""}, "${foo}", ""),
    ({}, "${missing}", None),
    ({"foo": "bar"}, "${missing:=default}", "default"),
    *[
        ({}, expression, None)
        for expression in (
            "${#missing}",
            "${missing^}",
            "${missing^^}",
            "${missing,}",
            "${missing,,}",
            "${missing:0}",
            "${missing:0:10}",
            "${missing/pattern/replacement}",
            "${missing//pattern/replacement}",
            "${missing/#pattern/replacement}",
            "${missing/%pattern/replacement}",
            "${missing#pattern}",
            "${missing##pattern}",
            "${missing%pattern}",
            "${missing%%pattern}",
        )
    ],
    ({}, "${missing:-fallback}", "fallback"),
    ({}, "${missing:=assigned}", "assigned"),
    ({}, "${missing=assigned}", "assigned"),
]

# funcs_test.go: (operator, argument count as parsed, value, arguments, expected).
FUNCS = [
    ("#", 0, "Hello World", (), "11"),
    (",,", 0, "Hello World", (), "hello world"),
    (",", 0, "HELLO WORLD", (), "hELLO WORLD"),
    (",", 0, "", (), ""),
    ("^^", 0, "Hello World", (), "HELLO WORLD"),
    ("^", 0, "hello world", (), "Hello world"),
    ("^", 0, "", (), ""),
    ("=", 1, "Hello World", ("Hola Mundo",), "Hello World"),
    ("=", 1, "", ("Hola Mundo",), "Hola Mundo"),
    (
        "=",
        3,
        "",
        ("Hola Mundo", "-Bonjour le monde", "-Halló heimur"),
        "Hola Mundo-Bonjour le monde-Halló heimur",
    ),
    (":", 2, "123456789123456789", ("0", "8"), "12345678"),
    (":", 2, "123456789123456789", ("1", "8"), "23456789"),
    (":", 1, "123456789123456789", ("9",), "123456789"),
    (":", 2, "123456789123456789", ("9", "50"), "123456789"),
    (":", 2, "123456789123456789", ("-3", "2"), "78"),
    (":", 2, "123456789123456789", ("-300", "3"), "123"),
    (":", 2, "12345678", ("9", "1"), ""),
    (":", 2, "hello world", ("2", "-1"), "llo worl"),
    (":", 2, "hello world", ("0", "-3"), "hello wo"),
    (":", 2, "hello world", ("8", "-8"), ""),
    (":", 2, "hello world", ("-4", "-1"), "orl"),
]


def _func(param: str, name: str = "", *args: Any) -> tuple[Any, ...]:
    return ("func", param, name, list(args))


def _text(value: str) -> tuple[str, str]:
    return ("text", value)


# parse_test.go: expression -> parse tree. Flux nests a text's neighbours in ListNodes; our parser
# returns the same nodes as one flat list, which is what a tree of lists flattens to.
PARSE: list[tuple[str, list[tuple[Any, ...]]]] = [
    ("text", [_text("text")]),
    ("}text", [_text("}text")]),
    ("http://github.com", [_text("http://github.com")]),
    ("$${string}", [_text("${string}")]),
    ("$$string", [_text("$string")]),
    (r"\\.\pipe\pipename", [_text(r"\\.\pipe\pipename")]),
    ("${string}", [_func("string")]),
    ("${string,}", [_func("string", ",")]),
    ("${string,,}", [_func("string", ",,")]),
    ("${string^}", [_func("string", "^")]),
    ("${string^^}", [_func("string", "^^")]),
    ("${string:position}", [_func("string", ":", _text("position"))]),
    ("${string:position:length}", [_func("string", ":", _text("position"), _text("length"))]),
    ("${string#substring}", [_func("string", "#", _text("substring"))]),
    ("${string##substring}", [_func("string", "##", _text("substring"))]),
    ("${string%substring}", [_func("string", "%", _text("substring"))]),
    ("${string%%substring}", [_func("string", "%%", _text("substring"))]),
    *[
        (
            f"${{string{op}substring/replacement}}",
            [_func("string", op, _text("substring"), _text("replacement"))],
        )
        for op in ("/", "//", "/#", "/%")
    ],
    ("${string/#/replacement}", [_func("string", "/#", _text(""), _text("replacement"))]),
    ("${string/%/replacement}", [_func("string", "/%", _text(""), _text("replacement"))]),
    *[
        (f"${{string{op}default}}", [_func("string", op, _text("default"))])
        for op in ("=", ":=", ":-", ":?", ":+")
    ],
    ("${#string}", [_func("string", "#")]),
    ("${string#$%:*{}", [_func("string", "#", _text("$%:*{"))]),
    ("hello ${#string} world", [_text("hello "), _func("string", "#"), _text(" world")]),
    (
        r"\\ hello ${#string} world \\",
        [_text(r"\\ hello "), _func("string", "#"), _text(r" world \\")],
    ),
    (r"${string/\/position/length}", [_func("string", "/", _text("/position"), _text("length"))]),
    (
        r"${string/\/position\\/length}",
        [_func("string", "/", _text("/position\\"), _text("length"))],
    ),
    (r"${string/position/\/length}", [_func("string", "/", _text("position"), _text("/length"))]),
    (
        r"${string/position/\/length\\}",
        [_func("string", "/", _text("position"), _text("/length\\"))],
    ),
    (
        r"${string/position/\/leng\\th}",
        [_func("string", "/", _text("position"), _text("/leng\\th"))],
    ),
    ("${string:${position}}", [_func("string", ":", _func("position"))]),
    (
        "${string:${stringy:position:length}:${stringz,,}}",
        [
            _func(
                "string",
                ":",
                _func("stringy", ":", _text("position"), _text("length")),
                _func("stringz", ",,"),
            )
        ],
    ),
    ("${string#${stringz}}", [_func("string", "#", _func("stringz"))]),
    ("${string=${stringz}}", [_func("string", "=", _func("stringz"))]),
    ("${string=prefix-${var}}", [_func("string", "=", _text("prefix-"), _func("var"))]),
    ("${string=${var}-suffix}", [_func("string", "=", _func("var"), _text("-suffix"))]),
    (
        "${string=prefix-${var}-suffix}",
        [_func("string", "=", _text("prefix-"), _func("var"), _text("-suffix"))],
    ),
    (
        "${string=prefix${var} suffix}",
        [_func("string", "=", _text("prefix"), _func("var"), _text(" suffix"))],
    ),
    (
        "${string//${stringy}/${stringz}}",
        [_func("string", "//", _func("stringy"), _func("stringz"))],
    ),
]

# Observed from fluxcd/pkg/envsubst v1.9.0 `Eval` in strict mode with OBSERVED_VARIABLES:
# (input, output or None on error, error message or None).
OBSERVED_VARIABLES = {
    "v": "abcABC123ABCabc",
    "p": "/path/to/file",
    "n": "a*b?c[d]e\\f",
    "s": "hello world",
}
FLUX_OBSERVED: list[tuple[str, str | None, str | None]] = [
    ("${v#[!a]*}", "bcABC123ABCabc", None),
    ("${v##[!a]*}", "", None),
    ("${v#[^a]*}", "abcABC123ABCabc", None),
    ("${v#[a-]*}", "abcABC123ABCabc", None),
    ("${v#[]a]*}", "abcABC123ABCabc", None),
    ("${v#[a-c]}", "bcABC123ABCabc", None),
    ("${v##[a-c]*}", "", None),
    ("${v#a?c}", "ABC123ABCabc", None),
    ("${v%%A*}", "abc", None),
    ("${v%A*}", "abcABC123", None),
    ("${v#*A*B}", "C123ABCabc", None),
    ("${v##*A*B}", "Cabc", None),
    ("${v#a*b*c}", "ABC123ABCabc", None),
    ("${v##a*b*c}", "", None),
    ("${p##*/}", "file", None),
    ("${p#/*}", "path/to/file", None),
    ("${p%/*}", "/path/to", None),
    ("${p%%/*}", "", None),
    ("${n#a\\*}", "b?c[d]e\\f", None),
    ("${n%\\*}", "a*b?c[d]e\\f", None),
    ("${n%%e\\*}", "a*b?c[d]", None),
    ("${n#*[}", "a*b?c[d]e\\f", None),
    ("${v#[}", "abcABC123ABCabc", None),
    ("${v#x}", "abcABC123ABCabc", None),
    ("${v%}", None, "unable to parse substitution within function"),
    ("${s: -3}", "hello world", None),
    ("${s:+2}", "hello world", None),
    ("${s:1_0}", "hello world", None),
    ("${s:2 }", "hello world", None),
    ("${s:x}", "hello world", None),
    ("${s:1:x}", "hello world", None),
    ("${s:9223372036854775808}", "hello world", None),
    ("${s:1:99999999999999999999}", "hello world", None),
    ("${s:99}", "", None),
    ("${s:99:1}", "", None),
    ("${s:٣}", None, "bad substitution"),
    ("${s:é}", None, "bad substitution"),
    ("${}", None, "unable to parse variable name"),
    ("${v", None, "missing closing brace"),
    ("${v-x}", None, "missing closing brace"),
    ("${v?x}", None, "missing closing brace"),
    ("${v:}", None, "unable to parse substitution within function"),
    ("${v:=", None, "unable to parse substitution within function"),
    ("${v^x}", None, "bad substitution"),
    ("${#}", None, "bad substitution"),
    ("${#v", None, "bad substitution"),
    ("${v/x}", None, "bad substitution"),
    ("${v/x/y", None, "bad substitution"),
    ("${v:1:2", None, "bad substitution"),
    ("${v,", None, "bad substitution"),
    ("${ v}", None, "unable to parse variable name"),
    ("${v }", None, "missing closing brace"),
    ("${1v}", None, 'variable not set (strict mode): "1v"'),
    ("${v:1:2:3}", "abcABC123ABCabc", None),
    ("${v:+x}", "abcABC123ABCabc", None),
    ("${v:?x}", "abcABC123ABCabc", None),
    ("${v+x}", None, "missing closing brace"),
    ("${unset:+x}", "x", None),
    ("${unset:?x}", "x", None),
    ("${unset+x}", None, "missing closing brace"),
    ("${unset-x}", None, "missing closing brace"),
    ("${e:=a:b}", "a:b", None),
    ("${v=a}b}", "abcABC123ABCabcb}", None),
    ("${v=}", "abcABC123ABCabc", None),
    ("${unset=}", "", None),
    ("${v//a}", None, "bad substitution"),
    ("${v/a}", None, "bad substitution"),
    ("${v:${n:0:0}1:2}", None, "bad substitution"),
    ("\\${v}", "\\abcABC123ABCabc", None),
    ("$$", "$", None),
    ("$${", "${", None),
    ("a$b", "a$b", None),
    ("$v", "$v", None),
    ("${p//\\//\\\\}", "\\path\\to\\file", None),
    ("${v/a/\\}", "\\bcABC123ABCabc", None),
]


def _tree(nodes: list[Any]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for node in nodes:
        if isinstance(node, _Text):
            out.append(_text(node.value))
        elif isinstance(node, _Func):
            out.append(_func(node.param, node.name, *_tree(node.args)))
        else:
            out.extend(_tree(node))
    return out


@pytest.mark.parametrize(("variables", "text", "expected"), EXPAND)
def test_expand(variables: dict[str, str], text: str, expected: str) -> None:
    assert expand(text, variables, strict=False).text == expected


@pytest.mark.parametrize(("variables", "text", "expected"), EXPAND_STRICT)
def test_expand_strict(variables: dict[str, str], text: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(SubstitutionError, match=r"^variable not set \(strict mode\)"):
            expand(text, variables, strict=True)
    else:
        assert expand(text, variables, strict=True).text == expected


@pytest.mark.parametrize(("name", "nargs", "value", "args", "expected"), FUNCS)
def test_function(name: str, nargs: int, value: str, args: tuple[str, ...], expected: str) -> None:
    assert _lookup(name, nargs)(value, *args) == expected


@pytest.mark.parametrize(("text", "tree"), PARSE)
def test_parse(text: str, tree: list[tuple[Any, ...]]) -> None:
    assert _tree(_Parser(text).parse_any()) == tree


@pytest.mark.parametrize(("text", "output", "error"), FLUX_OBSERVED)
def test_matches_flux_where_its_tables_are_silent(
    text: str, output: str | None, error: str | None
) -> None:
    if error is None:
        assert expand(text, OBSERVED_VARIABLES, strict=True).text == output
    else:
        with pytest.raises(SubstitutionError) as raised:
            expand(text, OBSERVED_VARIABLES, strict=True)
        assert str(raised.value) == error.replace('"', "'")


def test_strict_error_names_the_variable() -> None:
    with pytest.raises(SubstitutionError, match=re.escape(f"{NOT_SET}: 'missing'")):
        expand("${missing}", {}, strict=True)
