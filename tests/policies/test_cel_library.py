"""The Kubernetes CEL library on our engine: results as Kubernetes documents them."""

from __future__ import annotations

from typing import Any

import pytest

from policies.cel.engine import CompileError, Engine, EvalError

ENGINE = Engine()
OBJECT = {
    "spec": {
        "memory": "1Gi",
        "numbers": [1, 2, 3],
        "url": "https://user@example.com:8443/a/b?x=1&x=2",
        "version": "v1.2",
    }
}


def _eval(expression: str) -> Any:
    return ENGINE.compile(expression).evaluate(ENGINE.activation({"object": OBJECT}))


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # lists
        ("object.spec.numbers.isSorted()", True),
        ("['b', 'a'].isSorted()", False),
        ("object.spec.numbers.sum()", 6),
        ("[1.5, 2.5].sum()", 4.0),
        ("object.spec.numbers.min()", 1),
        ("object.spec.numbers.max()", 3),
        ("[1, 2, 1].indexOf(1)", 0),
        ("[1, 2, 1].lastIndexOf(1)", 2),
        ("[1, 2].indexOf(3)", -1),
        ("'abcabc'.indexOf('c')", 2),
        # regex
        ("'123abc456'.find('[a-z]+')", "abc"),
        ("'123'.find('[a-z]+')", ""),
        ("'a1b2c3'.findAll('[0-9]')", ["1", "2", "3"]),
        ("'a1b2c3'.findAll('[0-9]', 2)", ["1", "2"]),
        # URLs
        ("url(object.spec.url).getScheme()", "https"),
        ("url(object.spec.url).getHost()", "example.com:8443"),
        ("url(object.spec.url).getHostname()", "example.com"),
        ("url(object.spec.url).getPort()", "8443"),
        ("url(object.spec.url).getEscapedPath()", "/a/b"),
        ("url(object.spec.url).getQuery()", {"x": ["1", "2"]}),
        ("url('https://[::1]:80/').getHostname()", "::1"),
        ("url('/just/a/path').getHost()", ""),
        ("isURL('not a url')", False),
        ("isURL('https://example.com')", True),
        # quantities
        ("quantity(object.spec.memory).isGreaterThan(quantity('512Mi'))", True),
        ("quantity('1Gi') == quantity('1024Mi')", True),
        ("quantity('500m').isLessThan(quantity('1'))", True),
        ("quantity('1').compareTo(quantity('1000m'))", 0),
        ("quantity('1k').add(24).asInteger()", 1024),
        ("quantity('1k').sub(quantity('1')).asInteger()", 999),
        ("quantity('1500m').isInteger()", False),
        ("quantity('1.5').asApproximateFloat()", 1.5),
        ("quantity('-2').sign()", -1),
        ("quantity('1e3').asInteger()", 1000),
        ("isQuantity('1Gi')", True),
        ("isQuantity('1 Gi')", False),
        # semantic versions
        ("semver('1.2.3').major()", 1),
        ("semver(object.spec.version, true).minor()", 2),
        ("semver('1.2.3-rc.1').isLessThan(semver('1.2.3'))", True),
        ("semver('1.10.0').compareTo(semver('1.9.0'))", 1),
        ("semver('1.2.3-alpha.2').isGreaterThan(semver('1.2.3-alpha.10'))", False),
        ("isSemver('1.2')", False),
        ("isSemver('v1.2', true)", True),
        # IP addresses and CIDRs
        ("ip('10.0.0.1').family()", 4),
        ("ip('::1').isLoopback()", True),
        ("ip('0.0.0.0').isUnspecified()", True),
        ("ip('8.8.8.8').isGlobalUnicast()", True),
        ("isIP('10.0.0.300')", False),
        ("cidr('10.0.0.0/8').containsIP('10.1.2.3')", True),
        ("cidr('10.0.0.0/8').containsIP(ip('11.0.0.1'))", False),
        ("cidr('10.0.0.0/8').containsCIDR('10.1.0.0/16')", True),
        ("cidr('10.1.2.3/8').masked() == cidr('10.0.0.0/8')", True),
        ("cidr('10.1.2.3/8').ip() == ip('10.1.2.3')", True),
        ("cidr('192.168.0.0/16').prefixLength()", 16),
        ("isCIDR('10.0.0.0')", False),
        # sets, strings, optionals, bindings
        ("sets.contains([1, 2, 3], [2, 3])", True),
        ("sets.equivalent([1, 2], [2, 1, 1])", True),
        ("sets.intersects([1], [2])", False),
        ("'%s has %d'.format(['x', 2])", "x has 2"),
        ("'Hello'.lowerAscii()", "hello"),
        ("object.?spec.?missing.orValue('default')", "default"),
        ("cel.bind(m, object.spec.memory, m + m)", "1Gi1Gi"),
    ],
)
def test_library(expression: str, expected: Any) -> None:
    assert _eval(expression) == expected


@pytest.mark.parametrize(
    "expression",
    [
        "quantity('one gig')",
        "semver('1.2')",
        "url('no scheme')",
        "ip('10.0.0.300')",
        "[].min()",
        "'x'.find('(a')",
        "'aa'.find('(a)\\\\1')",  # backreferences are not RE2
        "object.spec.missing",
        "object.spec.numbers.all(x, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].all(a, [0, 1, 2, 3, 4, 5, 6, 7, "
        "8, 9].all(b, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].all(c, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].all(d, "
        "true)))))",
    ],
)
def test_errors_are_values(expression: str) -> None:
    assert isinstance(_eval(expression), EvalError)


def test_regular_expressions_run_in_linear_time_on_hostile_text() -> None:
    # Catastrophic for a backtracking engine; RE2 answers at once.
    text = "a" * 50_000 + "!"
    result = ENGINE.compile("object.text.find('(a+)+$')").evaluate(
        ENGINE.activation({"object": {"text": text}})
    )
    assert result == ""


def test_the_comprehension_budget_bounds_evaluation() -> None:
    result = _eval("[0, 1, 2, 3, 4, 5, 6, 7, 8, 9].all(a, " * 5 + "true" + ")" * 5)
    assert isinstance(result, EvalError)
    assert "budget" in result.message


@pytest.mark.parametrize(
    "expression",
    [
        "authorizer.group('apps').resource('deployments').check('create').allowed()",
        "object.spec.memory.unknownFunction()",
        "object.spec.(",
        "x" * 10_001,
    ],
)
def test_unsupported_functions_and_syntax_fail_to_compile(expression: str) -> None:
    with pytest.raises(CompileError):
        ENGINE.compile(expression)


def test_each_expression_compiles_once() -> None:
    engine = Engine()
    assert engine.compile("1 + 1") is engine.compile("1 + 1")
