"""A GitHub REST server on loopback for tests and the demo, checked against GitHub's OpenAPI.

Real HTTP, used through PyGithub with a GHES-style base URL exactly as production uses it. Every
request body and every response the fake sends is validated against GitHub's published
description (`devenv.openapi`); any mismatch is recorded in `violations`, which the fixture
asserts empty. Responses are built from the schema's smallest valid document plus the fields the
fake tracks. Semantics enforced as GitHub has them: check runs only with an App installation
token, App endpoints only with a valid RS256 JWT, installation tokens that expire.
"""

from __future__ import annotations

import datetime
import itertools
import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
from flask import Flask, Response, request
from werkzeug.serving import make_server

from devenv import openapi

__all__ = ["FakeGitHub", "serve_github"]

_STATUS_STATES = {"error", "failure", "pending", "success"}


@dataclass(frozen=True)
class Gate:
    """A held request: `reached` once it arrived, answered once the test sets `release`."""

    reached: threading.Event
    release: threading.Event


@dataclass
class FakeRepo:
    """The state of one repository."""

    full_name: str
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    commit_comments: list[dict[str, Any]] = field(default_factory=list)
    check_runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    permissions: dict[str, str] = field(default_factory=dict)
    reviews: dict[int, list[dict[str, Any]]] = field(default_factory=dict)


class FakeGitHub:
    """State and routes of the fake; `base_url` is what PyGithub is given."""

    def __init__(self, *, token: str, app_id: str = "", public_key: str = "") -> None:
        self.token = token
        self.app_id = app_id
        self.public_key = public_key
        self.installation_id = 7
        self.installation_tokens: dict[str, datetime.datetime] = {}
        self.token_lifetime = datetime.timedelta(hours=1)
        self.repos: dict[str, FakeRepo] = {}
        self.teams: dict[str, dict[str, str]] = {}
        """Teams by `org/slug`: each member's login and membership state (active, pending)."""
        self.members_readable = True
        """Whether the App may read team memberships (organization permission Members: read)."""
        self.requests: list[tuple[str, str]] = []
        self.violations: list[str] = []
        self.fail_next: list[int] = []
        self.base_url = ""
        self._ids = itertools.count(1000)
        self._lock = threading.Lock()
        self._gates: dict[tuple[str, str], Gate] = {}
        self.fixed_token = ""
        """Issue this installation token every time (so a git server can accept it)."""
        self.spec = openapi.github()

    # Test set-up and read-back

    def add_pull(self, full_name: str, number: int, *, head: str, base: str = "main") -> None:
        """Create (or move) a pull request."""
        repo = self.repos.setdefault(full_name, FakeRepo(full_name))
        repo.pulls[number] = {"head": head, "base": base}

    def add_review(self, full_name: str, number: int, user: str, state: str, commit: str) -> None:
        """Submit a review (`APPROVED`, `CHANGES_REQUESTED`, `COMMENTED`, `DISMISSED`)."""
        reviews = self.repos[full_name].reviews.setdefault(number, [])
        reviews.append({"user": user, "state": state, "commit_id": commit})

    def add_team_member(self, team: str, user: str, state: str = "active") -> None:
        """Make `user` a member of the organization's team `org/slug`."""
        self.teams.setdefault(team, {})[user] = state

    def comment_bodies(self, full_name: str) -> list[str]:
        """Bodies of every comment, oldest first."""
        return [c["body"] for c in self.repos[full_name].comments.values()]

    # Routing

    def app(self) -> Flask:
        """The WSGI app."""
        flask = Flask("fake-github")
        flask.add_url_rule(
            "/api/v3/<path:path>", "api", self._dispatch, methods=["GET", "POST", "PATCH", "DELETE"]
        )
        return flask

    def hold(self, method: str, route: str) -> Gate:
        """Hold the next `method route` request until the test releases it (crash tests)."""
        gate = Gate(threading.Event(), threading.Event())
        self._gates[(method, route)] = gate
        return gate

    def _dispatch(self, path: str) -> Response:
        gate = self._gates.pop((request.method, "/" + path), None)
        if gate is not None:
            gate.reached.set()
            gate.release.wait(600)
        with self._lock:
            method, route = request.method, "/" + path
            self.requests.append((method, route))
            body = request.get_json(silent=True) if request.data else None
            try:
                self.violations += [
                    f"request {method} {route}: {e}"
                    for e in self.spec.check_request(method, route, body)
                ]
            except AssertionError as exc:
                self.violations.append(str(exc))
                return self._reply(404, {"message": "Not Found"}, check=False)
            if self.fail_next:
                return self._reply(self.fail_next.pop(0), {"message": "Server Error"}, check=False)
            status, payload = self._handle(method, route.strip("/").split("/"), body or {})
            return self._reply(status, payload, method=method, route=route)

    def _reply(
        self, status: int, payload: Any, *, check: bool = True, method: str = "", route: str = ""
    ) -> Response:
        if check and status < 500:
            self.violations += [
                f"response {method} {route} {status}: {e}"
                for e in self.spec.check_response(method, route, status, payload)
            ]
        data = b"" if payload is None else json.dumps(payload).encode()
        return Response(
            data,
            status=status,
            content_type="application/json",
            headers={"X-RateLimit-Remaining": "4999", "X-RateLimit-Limit": "5000"},
        )

    def _handle(self, method: str, parts: list[str], body: dict[str, Any]) -> tuple[int, Any]:
        if parts[:2] == ["app", "installations"]:
            return self._access_token(parts)
        auth = self._caller()
        if auth is None:
            return 401, {
                "message": "Bad credentials",
                "documentation_url": "https://docs.github.com",
            }
        if method == "GET" and len(parts) == 6 and parts[0] == "orgs" and parts[4] == "memberships":
            return self.team_membership(parts[1], parts[3], parts[5])
        if parts[0] != "repos" or len(parts) < 3:
            return 404, {"message": "Not Found"}
        name = f"{parts[1]}/{parts[2]}"
        if name not in self.repos:
            return 404, {"message": "Not Found"}
        repo, rest = self.repos[name], parts[3:]
        key = (method, tuple(_shape(rest)))
        handler = _ROUTES.get(key)
        if handler is None:
            return 404, {"message": "Not Found"}
        answer: tuple[int, Any] = handler(self, repo, rest, body, auth)
        return answer

    def _caller(self) -> str | None:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "token":
            return None
        if value == self.token and self.token:
            return "token"
        expiry = self.installation_tokens.get(value)
        if expiry is not None and expiry > _now():
            return "installation"
        return None

    def _access_token(self, parts: list[str]) -> tuple[int, Any]:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return 401, {"message": "A JSON web token could not be decoded"}
        try:
            claims = jwt.decode(header[7:], self.public_key, algorithms=["RS256"])
        except jwt.PyJWTError:
            return 401, {"message": "A JSON web token could not be decoded"}
        if str(claims.get("iss")) != self.app_id or parts[2] != str(self.installation_id):
            return 404, {"message": "Not Found"}
        token = self.fixed_token or "ghs_" + secrets.token_hex(16)
        expires = _now() + self.token_lifetime
        self.installation_tokens[token] = expires
        return 201, {
            "token": token,
            "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "permissions": {"checks": "write", "pull_requests": "write"},
            "repository_selection": "all",
        }

    # Objects

    def _example(self, schema: str, **fields: Any) -> dict[str, Any]:
        document: dict[str, Any] = self.spec.example_of(
            self.spec.resolve(f"#/components/schemas/{schema}")
        )
        document.update(fields)
        return document

    def team_membership(self, org: str, slug: str, user: str) -> tuple[int, Any]:
        if not self.members_readable:
            return 403, {"message": "Resource not accessible by integration"}
        # GitHub compares organization, team and login without regard to case.
        teams = {name.lower(): members for name, members in self.teams.items()}
        members = {
            login.lower(): state for login, state in teams.get(f"{org}/{slug}".lower(), {}).items()
        }
        state = members.get(user.lower())
        if state is None:
            return 404, None  # GitHub documents this answer without a body

        url = f"{self.base_url}/orgs/{org}/teams/{slug}/memberships/{user}"
        return 200, self._example("team-membership", url=url, role="member", state=state)

    def _repo_url(self, repo: FakeRepo) -> str:
        return f"{self.base_url}/repos/{repo.full_name}"

    def repository(self, repo: FakeRepo, *_: Any) -> tuple[int, Any]:
        return 200, self._example(
            "full-repository",
            full_name=repo.full_name,
            name=repo.full_name.split("/")[1],
            url=self._repo_url(repo),
        )

    def issue(self, repo: FakeRepo, rest: list[str], *_: Any) -> tuple[int, Any]:
        number = int(rest[1])
        if number not in repo.pulls:
            return 404, {"message": "Not Found"}
        return 200, self._example(
            "issue", number=number, url=f"{self._repo_url(repo)}/issues/{number}"
        )

    def _comment(self, repo: FakeRepo, comment: dict[str, Any]) -> dict[str, Any]:
        user = self._example("simple-user", login=comment["user"])
        return self._example(
            "issue-comment",
            id=comment["id"],
            body=comment["body"],
            user=user,
            url=f"{self._repo_url(repo)}/issues/comments/{comment['id']}",
        )

    def list_comments(self, repo: FakeRepo, rest: list[str], *_: Any) -> tuple[int, Any]:
        number = int(rest[1])
        return 200, [self._comment(repo, c) for c in repo.comments.values() if c["issue"] == number]

    def create_comment(
        self, repo: FakeRepo, rest: list[str], body: dict[str, Any], auth: str
    ) -> tuple[int, Any]:
        comment = {
            "id": next(self._ids),
            "issue": int(rest[1]),
            "body": body["body"],
            "user": "tidegate[bot]" if auth == "installation" else "tidegate-token",
        }
        repo.comments[comment["id"]] = comment
        return 201, self._comment(repo, comment)

    def get_comment(self, repo: FakeRepo, rest: list[str], *_: Any) -> tuple[int, Any]:
        comment = repo.comments.get(int(rest[2]))
        return (200, self._comment(repo, comment)) if comment else (404, {"message": "Not Found"})

    def edit_comment(
        self, repo: FakeRepo, rest: list[str], body: dict[str, Any], *_: Any
    ) -> tuple[int, Any]:
        comment = repo.comments.get(int(rest[2]))
        if comment is None:
            return 404, {"message": "Not Found"}
        comment["body"] = body["body"]
        return 200, self._comment(repo, comment)

    def delete_comment(self, repo: FakeRepo, rest: list[str], *_: Any) -> tuple[int, Any]:
        if repo.comments.pop(int(rest[2]), None) is None:
            return 404, {"message": "Not Found"}
        return 204, None

    def commit(self, repo: FakeRepo, rest: list[str], *_: Any) -> tuple[int, Any]:
        sha = rest[1]
        return 200, self._example("commit", sha=sha, url=f"{self._repo_url(repo)}/commits/{sha}")

    def create_status(
        self, repo: FakeRepo, rest: list[str], body: dict[str, Any], *_: Any
    ) -> tuple[int, Any]:
        if body.get("state") not in _STATUS_STATES or len(body.get("description", "")) > 140:
            return 422, {"message": "Validation Failed"}
        status = {"id": next(self._ids), **body}
        repo.statuses.setdefault(rest[1], []).append(status)
        return 201, self._example(
            "status",
            id=status["id"],
            state=body["state"],
            context=body.get("context", "default"),
            description=body.get("description"),
            url=f"{self._repo_url(repo)}/statuses/{rest[1]}",
        )

    def list_statuses(self, repo: FakeRepo, rest: list[str], *_: Any) -> tuple[int, Any]:
        """Newest first, as GitHub lists a reference's statuses."""
        return 200, [
            self._example(
                "status",
                id=status["id"],
                state=status["state"],
                context=status.get("context", "default"),
                description=status.get("description"),
                url=f"{self._repo_url(repo)}/statuses/{rest[1]}",
            )
            for status in reversed(repo.statuses.get(rest[1], []))
        ]

    def create_commit_comment(
        self, repo: FakeRepo, rest: list[str], body: dict[str, Any], *_: Any
    ) -> tuple[int, Any]:
        comment = {"id": next(self._ids), "commit_id": rest[1], "body": body["body"]}
        repo.commit_comments.append(comment)
        return 201, self._example(
            "commit-comment",
            id=comment["id"],
            commit_id=rest[1],
            body=body["body"],
            url=f"{self._repo_url(repo)}/comments/{comment['id']}",
        )

    def _check(self, repo: FakeRepo, run: dict[str, Any]) -> dict[str, Any]:
        return self._example(
            "check-run",
            id=run["id"],
            name=run["name"],
            head_sha=run["head_sha"],
            status=run["status"],
            conclusion=run.get("conclusion"),
            check_suite={"id": 1},
            url=f"{self._repo_url(repo)}/check-runs/{run['id']}",
            output={
                "title": run.get("output", {}).get("title"),
                "summary": run.get("output", {}).get("summary"),
                "text": run.get("output", {}).get("text"),
                "annotations_count": len(run["annotations"]),
                "annotations_url": f"{self._repo_url(repo)}/check-runs/{run['id']}/annotations",
            },
        )

    def create_check(
        self, repo: FakeRepo, rest: list[str], body: dict[str, Any], auth: str
    ) -> tuple[int, Any]:
        if auth != "installation":
            return 403, {"message": "You must authenticate via a GitHub App."}
        run = {"id": next(self._ids), "status": "queued", "annotations": [], **body}
        run["annotations"] = list(body.get("output", {}).get("annotations", []))
        repo.check_runs[run["id"]] = run
        return 201, self._check(repo, run)

    def edit_check(
        self, repo: FakeRepo, rest: list[str], body: dict[str, Any], auth: str
    ) -> tuple[int, Any]:
        if auth != "installation":
            return 403, {"message": "You must authenticate via a GitHub App."}
        run = repo.check_runs.get(int(rest[1]))
        if run is None:
            return 404, {"message": "Not Found"}
        added = body.get("output", {}).get("annotations", [])
        run.update({k: v for k, v in body.items()})
        run["annotations"] = [*run["annotations"], *added]  # GitHub appends annotations
        return 200, self._check(repo, run)

    def list_checks(self, repo: FakeRepo, rest: list[str], *_: Any) -> tuple[int, Any]:
        name = request.args.get("check_name")
        runs = [
            self._check(repo, r)
            for r in reversed(repo.check_runs.values())
            if r["head_sha"] == rest[1] and (name is None or r["name"] == name)
        ]
        return 200, {"total_count": len(runs), "check_runs": runs}

    def pull(self, repo: FakeRepo, rest: list[str], *_: Any) -> tuple[int, Any]:
        number = int(rest[1])
        pull = repo.pulls.get(number)
        if pull is None:
            return 404, {"message": "Not Found"}
        head_name = pull.get("head_repo", repo.full_name)
        document = self._example(
            "pull-request",
            number=number,
            state="open",
            url=f"{self._repo_url(repo)}/pulls/{number}",
        )
        document["head"].update(
            ref="feature",
            sha=pull["head"],
            repo=self._example("repository", full_name=head_name, url=self._repo_url(repo)),
        )
        document["base"].update(
            ref=pull["base"],
            sha="b" * 40,
            repo=self._example("repository", full_name=repo.full_name, url=self._repo_url(repo)),
        )
        return 200, document

    def list_reviews(self, repo: FakeRepo, rest: list[str], *_: Any) -> tuple[int, Any]:
        number = int(rest[1])
        if number not in repo.pulls:
            return 404, {"message": "Not Found"}
        # Oldest first, as GitHub lists them.
        return 200, [
            self._example(
                "pull-request-review",
                id=index + 1,
                user=self._example("simple-user", login=review["user"]),
                state=review["state"],
                commit_id=review["commit_id"],
                pull_request_url=f"{self._repo_url(repo)}/pulls/{number}",
            )
            for index, review in enumerate(repo.reviews.get(number, []))
        ]

    def permission(self, repo: FakeRepo, rest: list[str], *_: Any) -> tuple[int, Any]:
        user = rest[1]
        level = repo.permissions.get(user)
        if level is None:
            return 404, {"message": "Not Found"}
        return 200, self._example(
            "repository-collaborator-permission",
            permission=level,
            role_name=level,
            user=self._example("collaborator", login=user),
        )


def _shape(rest: list[str]) -> Iterator[str]:
    """The route shape of a path below a repository: literals kept, ids replaced by `*`."""
    for part in rest:
        yield part if part in _LITERALS else "*"


_LITERALS = frozenset(
    {
        "pulls",
        "issues",
        "comments",
        "commits",
        "check-runs",
        "statuses",
        "collaborators",
        "permission",
        "reviews",
    }
)


_ROUTES: dict[tuple[str, tuple[str, ...]], Any] = {
    ("GET", ()): FakeGitHub.repository,
    ("GET", ("issues", "*")): FakeGitHub.issue,
    ("GET", ("issues", "*", "comments")): FakeGitHub.list_comments,
    ("POST", ("issues", "*", "comments")): FakeGitHub.create_comment,
    ("GET", ("issues", "comments", "*")): FakeGitHub.get_comment,
    ("PATCH", ("issues", "comments", "*")): FakeGitHub.edit_comment,
    ("DELETE", ("issues", "comments", "*")): FakeGitHub.delete_comment,
    ("GET", ("commits", "*")): FakeGitHub.commit,
    ("GET", ("commits", "*", "check-runs")): FakeGitHub.list_checks,
    ("GET", ("commits", "*", "statuses")): FakeGitHub.list_statuses,
    ("POST", ("commits", "*", "comments")): FakeGitHub.create_commit_comment,
    ("POST", ("statuses", "*")): FakeGitHub.create_status,
    ("POST", ("check-runs",)): FakeGitHub.create_check,
    ("PATCH", ("check-runs", "*")): FakeGitHub.edit_check,
    ("GET", ("collaborators", "*", "permission")): FakeGitHub.permission,
    ("GET", ("pulls", "*")): FakeGitHub.pull,
    ("GET", ("pulls", "*", "reviews")): FakeGitHub.list_reviews,
}


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class serve_github:  # noqa: N801 - used like a function in a `with`
    """Run a fake on an ephemeral loopback port for the duration of a `with` block."""

    def __init__(self, fake: FakeGitHub) -> None:
        self.fake = fake
        self._server = make_server("127.0.0.1", 0, fake.app(), threaded=True)
        fake.base_url = f"http://127.0.0.1:{self._server.server_port}/api/v3"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeGitHub:
        self._thread.start()
        return self.fake

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._thread.join()
