"""The guarded GET against real HTTP servers on loopback: allow-list, addresses, redirects, caps.

Every refusal asserts the reason names the cause and that nothing the server sent (body, reason
phrase) appears in the error.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from core.fetch import FetchError, FetchPolicy, fetch, parse_url
from devenv.ports import refusing_port
from tests.fetch.servers import LEAKY_BODY, Handler, Route, Server, serve

SECRET_QUERY = "X-Amz-Signature=5ecret"


def _ok(body: bytes) -> Route:
    return lambda h: h.reply(200, body, {"Content-Type": "text/plain"})


@pytest.fixture
def server() -> Iterator[Server]:
    with serve(
        {
            "/ok": _ok(b"hello"),
            "/big": _ok(b"x" * 5000),
            "/fail": lambda h: h.reply(503, LEAKY_BODY),
        }
    ) as s:
        yield s


def _policy(*hosts: str, loopback: bool = True, **kwargs: object) -> FetchPolicy:
    return FetchPolicy(allowed_hosts=frozenset(hosts), allow_loopback=loopback, **kwargs)  # type: ignore[arg-type]


def _refused(url: str, policy: FetchPolicy, **kwargs: object) -> FetchError:
    with pytest.raises(FetchError) as caught:
        fetch(url, policy=policy, max_bytes=kwargs.pop("max_bytes", 1000), **kwargs)  # type: ignore[arg-type]
    message = str(caught.value)
    assert LEAKY_BODY.decode() not in message
    assert "Leaky" not in message
    assert SECRET_QUERY not in message
    return caught.value


def test_fetch_returns_the_body_of_an_allowed_loopback_server(server: Server) -> None:
    got = fetch(f"{server.url}/ok", policy=_policy(f"127.0.0.1:{server.port}"), max_bytes=100)
    assert (got.status, got.body, got.headers["content-type"]) == (200, b"hello", "text/plain")


def test_loopback_is_refused_unless_the_policy_opts_in(server: Server) -> None:
    error = _refused(f"{server.url}/ok", _policy(f"127.0.0.1:{server.port}", loopback=False))
    assert error.reason == "refused: 127.0.0.1 is a loopback address"
    assert not error.unavailable
    assert server.seen == []


@pytest.mark.parametrize("host", ["127.1", "0x7f.1", "2130706433", "localhost"])
def test_numeric_and_named_loopback_forms_are_judged_by_the_resolved_address(
    server: Server, host: str
) -> None:
    error = _refused(
        f"http://{host}:{server.port}/ok", _policy(f"{host}:{server.port}", loopback=False)
    )
    assert error.reason.startswith("refused: ")
    assert "is a loopback address" in error.reason
    assert server.seen == []


def test_a_host_not_on_the_allow_list_is_refused_before_any_lookup(server: Server) -> None:
    def resolver(host: str, port: int) -> list[str]:
        raise AssertionError("resolved a host that is not allowed")

    error = _refused(f"{server.url}/ok", _policy("127.0.0.1:1", resolver=resolver))
    assert error.reason == f"refused: host 127.0.0.1:{server.port} is not on the allow-list"
    assert server.seen == []


def test_a_bare_allowed_host_opens_only_the_default_ports() -> None:
    policy = FetchPolicy(allowed_hosts=frozenset({"Charts.Example.com"}))
    policy.check_host(parse_url("https://charts.example.com/index.yaml"))
    policy.check_host(parse_url("http://charts.example.com/index.yaml"))
    with pytest.raises(FetchError, match=r"charts\.example\.com:22 is not on the allow-list"):
        policy.check_host(parse_url("http://charts.example.com:22/"))


def test_every_resolved_address_is_checked() -> None:
    seen: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        seen.append(host)
        return ["93.184.216.34", "169.254.169.254"]

    error = _refused(
        "https://mirror.example.com/index.yaml", _policy("mirror.example.com", resolver=resolver)
    )
    assert error.reason == "refused: 169.254.169.254 is a link-local address"
    assert seen == ["mirror.example.com"]


def test_the_connection_goes_to_the_checked_address_with_the_name_as_host(server: Server) -> None:
    answers = iter([["127.0.0.1"], ["10.9.9.9"]])

    def resolver(host: str, port: int) -> list[str]:
        # A rebinding server would answer differently the second time; there is no second time.
        return next(answers)

    got = fetch(
        f"http://charts.test:{server.port}/ok",
        policy=_policy(f"charts.test:{server.port}", resolver=resolver),
        max_bytes=100,
    )
    assert got.body == b"hello"
    assert server.seen[0][1]["host"] == f"charts.test:{server.port}"


def test_redirect_to_the_metadata_address_is_refused_even_when_allowed_by_name() -> None:
    with serve({"/r": lambda h: h.redirect("http://169.254.169.254/latest/meta-data/")}) as s:
        error = _refused(f"{s.url}/r", _policy(f"127.0.0.1:{s.port}", "169.254.169.254"))
    assert error.reason == "refused: 169.254.169.254 is a link-local address"


def test_redirect_to_an_ipv4_mapped_metadata_address_is_refused() -> None:
    with serve({"/r": lambda h: h.redirect("http://[::ffff:169.254.169.254]/")}) as s:
        error = _refused(f"{s.url}/r", _policy(f"127.0.0.1:{s.port}", "[::ffff:169.254.169.254]"))
    assert (
        error.reason == "refused: ::ffff:a9fe:a9fe (IPv4 169.254.169.254) is a link-local address"
    )


def test_redirect_to_a_host_the_policy_does_not_allow_is_refused() -> None:
    with serve({}) as target:
        location = f"http://localhost:{target.port}/ok"
        with serve({"/r": lambda h: h.redirect(location)}) as s:
            error = _refused(f"{s.url}/r", _policy(f"127.0.0.1:{s.port}"))
    assert error.reason == f"refused: host localhost:{target.port} is not on the allow-list"
    assert target.seen == []


def test_redirects_are_followed_at_most_the_limit() -> None:
    routes = {f"/{i}": (lambda n: lambda h: h.redirect(f"/{n + 1}"))(i) for i in range(5)}
    routes["/3"] = _ok(b"arrived")
    with serve(routes) as s:
        policy = _policy(f"127.0.0.1:{s.port}")
        assert fetch(f"{s.url}/0", policy=policy, max_bytes=100).body == b"arrived"
        assert fetch(f"{s.url}/0", policy=policy, max_bytes=100).url == f"{s.url}/3"
        routes["/3"] = routes["/2"]
        error = _refused(f"{s.url}/0", policy)
        assert error.reason == "refused: more than 3 redirects"
        error = _refused(f"{s.url}/0", _policy(f"127.0.0.1:{s.port}", max_redirects=0))
        assert error.reason == "refused: redirects are not followed"


def test_credentials_do_not_follow_a_redirect_to_another_origin() -> None:
    redirect_to: list[str] = []
    with (
        serve({"/blob": _ok(b"blob")}) as store,
        serve({"/v2/x": lambda h: h.redirect(redirect_to[0])}) as registry,
    ):
        redirect_to.append(f"{store.url}/blob?{SECRET_QUERY}")
        policy = _policy(f"127.0.0.1:{registry.port}", f"127.0.0.1:{store.port}")
        got = fetch(
            f"{registry.url}/v2/x",
            policy=policy,
            max_bytes=100,
            headers={"Authorization": "Bearer t0ken"},
            accept="application/octet-stream",
        )
    assert got.body == b"blob"
    assert registry.seen[0][1]["authorization"] == "Bearer t0ken"
    assert "authorization" not in store.seen[0][1]
    assert store.seen[0][1]["accept"] == "application/octet-stream"


def test_http_errors_are_a_status_only(server: Server) -> None:
    policy = _policy(f"127.0.0.1:{server.port}")
    missing = _refused(f"{server.url}/missing?{SECRET_QUERY}", policy)
    assert str(missing) == f"{server.url}/missing: HTTP 404"
    assert not missing.unavailable
    failing = _refused(f"{server.url}/fail", policy)
    assert (failing.reason, failing.unavailable) == ("HTTP 503", True)


def test_ok_statuses_are_returned_instead_of_raised() -> None:
    with serve(
        {"/v2/": lambda h: h.reply(401, b"{}", {"WWW-Authenticate": 'Bearer realm="x"'})}
    ) as s:
        got = fetch(
            f"{s.url}/v2/", policy=_policy(f"127.0.0.1:{s.port}"), max_bytes=10, ok_statuses={401}
        )
    assert (got.status, got.headers["www-authenticate"]) == (401, 'Bearer realm="x"')


def test_bodies_over_the_cap_are_refused(server: Server) -> None:
    error = _refused(f"{server.url}/big", _policy(f"127.0.0.1:{server.port}"), max_bytes=4999)
    assert error.reason == "refused: response larger than 4999 bytes"


def test_a_body_without_length_is_capped_while_read() -> None:
    def stream(h: Handler) -> None:
        h.send_response(200)
        h.end_headers()
        for _ in range(100):
            h.wfile.write(b"y" * 1000)

    with serve({"/s": stream}) as s:
        error = _refused(f"{s.url}/s", _policy(f"127.0.0.1:{s.port}"), max_bytes=10_000)
    assert error.reason == "refused: response larger than 10000 bytes"


def test_connection_refused_is_unavailable() -> None:
    with refusing_port() as port:
        error = _refused(f"http://127.0.0.1:{port}/", _policy(f"127.0.0.1:{port}"))
    assert (error.reason, error.unavailable) == ("connection refused", True)


def test_a_server_that_never_answers_times_out() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    release = threading.Event()
    accepted: list[socket.socket] = []

    def accept() -> None:
        conn, _ = listener.accept()
        accepted.append(conn)
        release.wait()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        error = _refused(
            f"http://127.0.0.1:{port}/", _policy(f"127.0.0.1:{port}", total_timeout=0.5)
        )
    finally:
        release.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()
    assert (error.reason, error.unavailable) == ("timed out waiting for the response", True)


def test_unresolvable_names_are_unavailable() -> None:
    error = _refused("http://no-such-host.invalid/index.yaml", _policy("no-such-host.invalid"))
    assert (error.reason, error.unavailable) == ("could not resolve the host", True)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "refused: scheme must be one of http, https"),
        ("gopher://example.com/", "refused: scheme must be one of http, https"),
        ("http://user:pw@example.com/", "refused: credentials in the URL are not accepted"),
        ("http://exa mple.com/", "refused: the URL contains spaces or control characters"),
        ("http://example.com\r\nX: y/", "refused: the URL contains spaces or control characters"),
        ("http://ex%61mple.com/", "refused: malformed host name"),
        ("http://exämple.com/", "refused: malformed host name"),
        ("http:///path", "refused: malformed host name"),
        ("http://[fe80::1%25eth0]/", "refused: malformed IPv6 host"),
        ("http://example.com:99999/", "refused: malformed port"),
        ("http://example.com:0/", "refused: malformed port"),
        (
            "http://example.com\\@evil.com/",
            "refused: the URL contains spaces or control characters",
        ),
    ],
)
def test_malformed_urls_are_refused(url: str, reason: str) -> None:
    error = _refused(url, FetchPolicy(allowed_hosts=None))
    assert error.reason == reason


def test_oci_urls_parse_with_the_same_rules() -> None:
    parsed = parse_url("oci://ghcr.io/stefanprodan/charts", schemes=("oci",))
    assert (parsed.host, parsed.port, parsed.target) == ("ghcr.io", 443, "/stefanprodan/charts")
    with pytest.raises(FetchError, match="scheme must be one of oci"):
        parse_url("https://ghcr.io/x", schemes=("oci",))
