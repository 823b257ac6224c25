"""Chart downloads from HTTP chart repositories served on loopback, attacks included.

The archives here are real gzipped tarballs but are not rendered: the puller's job ends at a
verified local file (rendering them is covered in tests/render and tests/preview).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from core.errors import TidegateError
from core.fetch import FetchPolicy
from core.sources.helmrepo import ChartLimits, ChartPuller, SourceUnavailableError
from tests.fetch.servers import LEAKY_BODY, Handler, Route, Server, serve


def archive(version: str, name: str = "webapp") -> bytes:
    """The same bytes every time: an index's digest and a later download must agree, so the
    gzip header carries no time (it would be the current second)."""
    data = f"apiVersion: v2\nname: {name}\nversion: {version}\n".encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo(f"{name}/Chart.yaml")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return gzip.compress(out.getvalue(), mtime=0)


def index(entries: dict[str, list[dict[str, object]]]) -> bytes:
    return yaml.safe_dump({"apiVersion": "v1", "entries": entries}).encode()


def _bytes(body: bytes) -> Route:
    return lambda h: h.reply(200, body)


def repository(versions: tuple[str, ...]) -> dict[str, Route]:
    routes: dict[str, Route] = {}
    entries: list[dict[str, object]] = []
    for version in versions:
        body = archive(version)
        routes[f"/charts/webapp-{version}.tgz"] = _bytes(body)
        entries.append(
            {
                "version": version,
                "urls": [f"charts/webapp-{version}.tgz"],
                "digest": hashlib.sha256(body).hexdigest(),
            }
        )
    routes["/index.yaml"] = _bytes(index({"webapp": entries}))
    return routes


@pytest.fixture
def repo() -> Iterator[Server]:
    with serve(repository(("1.0.0", "1.1.0", "2.0.0"))) as server:
        yield server


def loopback(*servers: Server, **kwargs: object) -> FetchPolicy:
    hosts = frozenset(f"127.0.0.1:{s.port}" for s in servers)
    return FetchPolicy(allowed_hosts=hosts, allow_loopback=True, **kwargs)  # type: ignore[arg-type]


def chart_version(path: Path) -> str:
    with tarfile.open(path) as tar:
        member = tar.extractfile("webapp/Chart.yaml")
        assert member is not None
        return str(yaml.safe_load(member.read())["version"])


def test_a_constraint_resolves_to_the_highest_match(repo: Server, tmp_path: Path) -> None:
    puller = ChartPuller(tmp_path / "cache")
    chart = puller.pull(repo.url, "webapp", ">=1.0.0 <2.0.0", loopback(repo))
    assert chart_version(chart) == "1.1.0"
    assert chart_version(puller.pull(repo.url + "/", "webapp", None, loopback(repo))) == "2.0.0"
    # The file name is ours: a hash, nothing taken from the repository.
    assert "webapp" not in chart.name
    assert chart.is_relative_to(tmp_path / "cache")


def test_an_exact_version_is_served_from_the_cache_without_network(tmp_path: Path) -> None:
    with serve(repository(("1.0.0",))) as server:
        first = ChartPuller(tmp_path / "c").pull(server.url, "webapp", "1.0.0", loopback(server))
    # The server is gone; a new puller (a new run) finds the archive on disk.
    again = ChartPuller(tmp_path / "c").pull(server.url, "webapp", "1.0.0", loopback(server))
    assert again == first
    # Still checked against the asking side's allow-list.
    with pytest.raises(TidegateError, match="not on the allow-list"):
        ChartPuller(tmp_path / "c").pull(server.url, "webapp", "1.0.0", FetchPolicy())


@pytest.mark.parametrize("name", ["../../../etc/passwd", "..", "a/b", "web app", "", ".hidden"])
def test_chart_names_that_are_not_names_are_refused(
    repo: Server, tmp_path: Path, name: str
) -> None:
    with pytest.raises(TidegateError, match="invalid chart name"):
        ChartPuller(tmp_path / "cache").pull(repo.url, name, "1.0.0", loopback(repo))
    assert repo.seen == []


def test_traversal_in_the_index_cannot_place_files(tmp_path: Path) -> None:
    body = archive("1.0.0", name="evil")
    routes = {
        "/index.yaml": _bytes(
            index({"evil": [{"version": "1.0.0", "urls": ["../../../../evil-1.0.0.tgz"]}]})
        ),
        "/evil-1.0.0.tgz": _bytes(body),
    }
    with serve(routes) as server:
        chart = ChartPuller(tmp_path / "cache").pull(server.url, "evil", "*", loopback(server))
    assert chart.read_bytes() == body
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert written == [Path("cache/archives") / chart.name]


def test_an_oversized_index_is_refused(repo: Server, tmp_path: Path) -> None:
    puller = ChartPuller(tmp_path / "c", limits=ChartLimits(max_index_bytes=100))
    with pytest.raises(TidegateError) as caught:
        puller.pull(repo.url, "webapp", "*", loopback(repo))
    assert str(caught.value) == f"{repo.url}/index.yaml: refused: response larger than 100 bytes"


def test_an_oversized_archive_is_refused(repo: Server, tmp_path: Path) -> None:
    puller = ChartPuller(tmp_path / "c", limits=ChartLimits(max_chart_bytes=64))
    with pytest.raises(TidegateError, match=r"webapp-2\.0\.0\.tgz: refused: response larger"):
        puller.pull(repo.url, "webapp", "*", loopback(repo))
    assert not (tmp_path / "c" / "archives").exists()


def test_an_archive_that_does_not_match_its_digest_is_refused(tmp_path: Path) -> None:
    routes = {
        "/index.yaml": _bytes(
            index({"webapp": [{"version": "1.0.0", "urls": ["w.tgz"], "digest": "0" * 64}]})
        ),
        "/w.tgz": _bytes(archive("1.0.0")),
    }
    with serve(routes) as server, pytest.raises(TidegateError, match="does not match"):
        ChartPuller(tmp_path / "c").pull(server.url, "webapp", "1.0.0", loopback(server))


def test_a_chart_url_on_another_host_needs_that_host_allowed(tmp_path: Path) -> None:
    body = archive("1.0.0")
    with serve({"/w.tgz": _bytes(body)}) as store:
        routes = {
            "/index.yaml": _bytes(
                index({"webapp": [{"version": "1.0.0", "urls": [f"{store.url}/w.tgz"]}]})
            )
        }
        with serve(routes) as repo:
            puller = ChartPuller(tmp_path / "c")
            with pytest.raises(TidegateError) as caught:
                puller.pull(repo.url, "webapp", "1.0.0", loopback(repo))
            assert f"host 127.0.0.1:{store.port} is not on the allow-list" in str(caught.value)
            assert store.seen == []
            chart = puller.pull(repo.url, "webapp", "1.0.0", loopback(repo, store))
    assert chart.read_bytes() == body


def test_a_chart_url_at_the_metadata_address_is_refused(tmp_path: Path) -> None:
    url = "http://169.254.169.254/latest/meta-data/iam.tgz"
    routes = {"/index.yaml": _bytes(index({"webapp": [{"version": "1.0.0", "urls": [url]}]}))}
    with serve(routes) as repo:
        policy = loopback(repo).allowing(["169.254.169.254"])
        with pytest.raises(TidegateError) as caught:
            ChartPuller(tmp_path / "c").pull(repo.url, "webapp", "1.0.0", policy)
    assert str(caught.value) == (
        "http://169.254.169.254:80/latest/meta-data/iam.tgz: "
        "refused: 169.254.169.254 is a link-local address"
    )


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"entries: [", "the index is not valid YAML"),
        (b"apiVersion: v1\n", "the index has no entries mapping"),
        (index({"other": [{"version": "1.0.0", "urls": ["x.tgz"]}]}), "no chart named 'webapp'"),
        (index({"webapp": [{"version": "1.0.0"}]}), "has no urls"),
        (index({"webapp": [{"urls": ["x.tgz"]}]}), "entries.webapp[0].version is missing"),
        (index({"webapp": [{"version": "0.1.0", "urls": ["x.tgz"]}]}), "no version of chart"),
    ],
)
def test_bad_indexes_are_errors_naming_the_cause(
    tmp_path: Path, document: bytes, message: str
) -> None:
    with serve({"/index.yaml": _bytes(document)}) as repo, pytest.raises(TidegateError) as caught:
        ChartPuller(tmp_path / "c").pull(repo.url, "webapp", "1.x", loopback(repo))
    assert message in str(caught.value)


def test_an_unreachable_repository_is_unavailable_and_remembered(tmp_path: Path) -> None:
    def failing(h: Handler) -> None:
        h.reply(503, LEAKY_BODY)

    now = [1000.0]
    puller = ChartPuller(tmp_path / "c", failure_ttl=60.0, clock=lambda: now[0])
    with serve({"/index.yaml": failing}) as repo:
        with pytest.raises(SourceUnavailableError) as first:
            puller.pull(repo.url, "webapp", "1.x", loopback(repo))
        assert str(first.value) == f"source unavailable: {repo.url}/index.yaml: HTTP 503"
        with pytest.raises(SourceUnavailableError) as second:
            puller.pull(repo.url, "webapp", "1.x", loopback(repo))
        assert "remembered from an earlier attempt" in str(second.value)
        assert len(repo.seen) == 1
        now[0] += 61
        with pytest.raises(SourceUnavailableError):
            puller.pull(repo.url, "webapp", "1.x", loopback(repo))
        assert len(repo.seen) == 2
    assert LEAKY_BODY.decode() not in str(first.value) + str(second.value)


def test_a_refused_host_is_not_remembered_as_unavailable(repo: Server, tmp_path: Path) -> None:
    puller = ChartPuller(tmp_path / "c")
    with pytest.raises(TidegateError, match="not on the allow-list"):
        puller.pull(repo.url, "webapp", "1.x", FetchPolicy())
    assert chart_version(puller.pull(repo.url, "webapp", "1.x", loopback(repo))) == "1.1.0"


def test_the_index_is_downloaded_once_for_both_sides(repo: Server, tmp_path: Path) -> None:
    puller = ChartPuller(tmp_path / "c")
    puller.pull(repo.url, "webapp", "1.x", loopback(repo))
    puller.pull(repo.url, "webapp", "2.x", loopback(repo))
    assert [path for path, _ in repo.seen].count("/index.yaml") == 1


def test_only_a_trusted_pull_records_the_hosts_it_used(repo: Server, tmp_path: Path) -> None:
    puller = ChartPuller(tmp_path / "c")
    puller.pull(repo.url, "webapp", "1.x", loopback(repo))
    assert puller.hosts_used == set()
    trusted = FetchPolicy(allowed_hosts=None, allow_loopback=True)
    puller.pull(repo.url, "webapp", "1.x", trusted)
    assert puller.hosts_used == {f"127.0.0.1:{repo.port}"}


def test_oci_repositories_are_left_to_the_registry_client(tmp_path: Path) -> None:
    with pytest.raises(TidegateError, match="OCI chart repositories are not supported"):
        ChartPuller(tmp_path / "c").pull("oci://ghcr.io/x", "webapp", "1.0.0", FetchPolicy())


def test_the_documented_size_limits_and_failure_memory(tmp_path: Path) -> None:
    assert ChartLimits() == ChartLimits(max_index_bytes=50 * 2**20, max_chart_bytes=10 * 2**20)
    assert ChartPuller(tmp_path).failure_ttl == 60.0


def test_an_archive_that_is_not_gzip_is_refused(tmp_path: Path) -> None:
    routes = {
        "/index.yaml": _bytes(index({"webapp": [{"version": "1.0.0", "urls": ["w.tgz"]}]})),
        "/w.tgz": _bytes(b"<html>not a chart</html>"),
    }
    with serve(routes) as server, pytest.raises(TidegateError) as caught:
        ChartPuller(tmp_path / "c").pull(server.url, "webapp", "1.0.0", loopback(server))
    assert str(caught.value) == f"{server.url}/w.tgz: not a chart archive (.tgz)"


def test_a_trusted_pull_records_where_redirects_ended(tmp_path: Path) -> None:
    body = archive("1.0.0")
    with serve({"/w.tgz": _bytes(body)}) as cdn:
        routes = {
            "/index.yaml": _bytes(index({"webapp": [{"version": "1.0.0", "urls": ["r.tgz"]}]})),
            "/r.tgz": lambda h: h.redirect(f"{cdn.url}/w.tgz"),
        }
        with serve(routes) as repo:
            puller = ChartPuller(tmp_path / "c")
            trusted = FetchPolicy(allowed_hosts=None, allow_loopback=True)
            assert puller.pull(repo.url, "webapp", "1.0.0", trusted).read_bytes() == body
    assert puller.hosts_used == {f"127.0.0.1:{repo.port}", f"127.0.0.1:{cdn.port}"}


VERSIONS = ("0.1.0", "0.2.5", "1.0.0", "1.1.0", "1.2.3", "1.2.9", "1.3.0-rc.1", "2.0.0", "v2.1.0")


@pytest.fixture(scope="module")
def many() -> Iterator[Server]:
    with serve(repository(VERSIONS)) as server:
        yield server


@pytest.mark.parametrize(
    ("constraint", "expected"),
    [
        (None, "v2.1.0"),
        ("*", "v2.1.0"),
        ("1.2.3", "1.2.3"),
        (">=1.0.0 <2.0.0", "1.2.9"),
        (">=1.0.0, <2.0.0", "1.2.9"),
        ("~1.2", "1.2.9"),
        ("^0", "0.2.5"),
        ("1.x", "1.2.9"),
        ("1.0.0 - 1.2.3", "1.2.3"),
        ("<1.0.0 || >=2.0.0 <2.1.0", "2.0.0"),
        (">=1.3.0-rc.0 <1.4.0-0", "1.3.0-rc.1"),
    ],
)
def test_chart_versions_resolve_as_source_controller_resolves_them(
    many: Server, tmp_path: Path, constraint: str | None, expected: str
) -> None:
    chart = ChartPuller(tmp_path / "c").pull(many.url, "webapp", constraint, loopback(many))
    assert chart_version(chart) == expected


@pytest.mark.parametrize("constraint", [">>1.0", "abc", ">=3.0.0"])
def test_invalid_or_unmatched_constraints_are_errors(
    many: Server, tmp_path: Path, constraint: str
) -> None:
    with pytest.raises(TidegateError, match=r"invalid chart version|no version of chart"):
        ChartPuller(tmp_path / "c").pull(many.url, "webapp", constraint, loopback(many))


def test_while_held_a_failure_and_an_index_do_not_expire(tmp_path: Path) -> None:
    # A clock that jumps past every time-to-live between two calls: a very slow preview.
    now = [1000.0]

    def clock() -> float:
        now[0] += 3600
        return now[0]

    calls = {"archive": 0}

    def flaky_archive(h: Handler) -> None:
        calls["archive"] += 1
        h.reply(503, b"") if calls["archive"] == 1 else h.reply(200, archive("1.0.0"))

    routes = repository(("1.0.0",))
    routes["/charts/webapp-1.0.0.tgz"] = flaky_archive
    puller = ChartPuller(tmp_path / "c", clock=clock)
    with serve(routes) as repo:
        with puller.held():
            for _side in ("base", "head"):
                with pytest.raises(SourceUnavailableError):
                    puller.pull(repo.url, "webapp", "1.x", loopback(repo))
            # One index download and one archive attempt: both sides saw the same answers.
            assert [path for path, _ in repo.seen].count("/index.yaml") == 1
            assert calls["archive"] == 1
        # Outside a hold the time-to-live applies again: the next pull asks anew.
        assert chart_version(puller.pull(repo.url, "webapp", "1.x", loopback(repo))) == "1.0.0"
        assert [path for path, _ in repo.seen].count("/index.yaml") == 2
