"""A GitLab REST server (API v4) on loopback for tests, used through python-gitlab.

It enforces what production meets: the `PRIVATE-TOKEN` header, GitLab's commit-status state
machine (re-posting the state a status already has is a 400 "Cannot transition status"), notes
listed in the order asked for, system notes among them, the pagination headers GitLab sends, and
direct group members (`GET /groups/:id/members/:user_id`, 404 for anyone else).
GitLab publishes no OpenAPI description on a package registry (its `openapi_v2.yaml` lives only
in the GitLab source tree), so unlike the fake GitHub this fake is not validated against a
machine-readable specification; its shapes follow GitLab's REST documentation.
"""

from __future__ import annotations

import itertools
import threading
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server

__all__ = ["FakeGitLab", "serve_gitlab"]

_VERBS = {
    "running": "run",
    "success": "succeed",
    "failed": "drop",
    "pending": "enqueue",
    "canceled": "cancel",
}


@dataclass
class FakeProject:
    """The state of one project."""

    id: int
    path: str
    merge_requests: dict[int, dict[str, Any]] = field(default_factory=dict)
    notes: dict[int, dict[str, Any]] = field(default_factory=dict)
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    commit_comments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    members: dict[int, int] = field(default_factory=dict)


class FakeGitLab:
    """State and routes; `url` is what python-gitlab is given."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.projects: dict[int, FakeProject] = {}
        self.users: dict[str, int] = {}
        self.groups: dict[str, dict[int, int]] = {}
        """Groups by full path: their direct members' ids and access levels."""
        self.requests: list[tuple[str, str]] = []
        self.fail_next: list[int] = []
        self.url = ""
        self._ids = itertools.count(500)
        self._lock = threading.Lock()

    def add_merge_request(self, project: int, path: str, iid: int, *, head: str) -> None:
        """Create (or move) a merge request."""
        state = self.projects.setdefault(project, FakeProject(project, path))
        state.merge_requests[iid] = {"sha": head}

    def approve(self, project: int, iid: int, user: str) -> None:
        """Record an approval of the merge request (GitLab keeps no commit with it)."""
        self.projects[project].merge_requests[iid].setdefault("approved_by", []).append(user)

    def note_bodies(self, project: int) -> list[str]:
        """Bodies of the non-system notes, oldest first."""
        return [n["body"] for n in self.projects[project].notes.values() if not n["system"]]

    def app(self) -> Flask:
        """The WSGI app."""
        flask = Flask("fake-gitlab")
        flask.add_url_rule(
            "/api/v4/<path:path>", "api", self._dispatch, methods=["GET", "POST", "PUT", "DELETE"]
        )
        return flask

    def _dispatch(self, path: str) -> Response | tuple[Response, int]:
        with self._lock:
            self.requests.append((request.method, "/" + path))
            if request.headers.get("PRIVATE-TOKEN") != self.token:
                return jsonify(message="401 Unauthorized"), 401
            if self.fail_next:
                return jsonify(message="502 Bad Gateway"), self.fail_next.pop(0)
            parts = _raw_parts(path)
            if parts[0] == "users":
                found = self.users.get(request.args.get("username", ""))
                return _page(
                    [] if found is None else [{"id": found, "username": request.args["username"]}]
                )
            if parts[0] == "groups" and len(parts) == 4 and parts[2] == "members":
                return self._group_member(parts[1], parts[3])
            if parts[0] != "projects" or len(parts) < 3:
                return jsonify(message="404 Not Found"), 404
            project = self._find_project(parts[1])
            if project is None:
                return jsonify(message="404 Project Not Found"), 404
            return self._project(project, request.method, parts[2:])

    def _group_member(self, key: str, user: str) -> Any:
        """A direct member of a group, as `GET /groups/:id/members/:user_id` answers."""
        members = self.groups.get(urllib.parse.unquote(key))
        if members is None:
            return jsonify(message="404 Group Not Found"), 404
        if not user.isdigit() or int(user) not in members:
            return jsonify(message="404 Not found"), 404
        name = next((n for n, i in self.users.items() if i == int(user)), "")
        return jsonify(id=int(user), username=name, access_level=members[int(user)], state="active")

    def _find_project(self, key: str) -> FakeProject | None:
        """A project by numeric id or by its URL-encoded path (`group%2Fproject`)."""
        if key.isdigit():
            return self.projects.get(int(key))
        path = urllib.parse.unquote(key)
        return next((p for p in self.projects.values() if p.path == path), None)

    def _project(self, project: FakeProject, method: str, rest: list[str]) -> Any:
        body = request.get_json(silent=True) or dict(request.form) or dict(request.args)
        if method == "POST" and rest[0] == "statuses":
            return self._status(project, rest[1], body)
        if rest[:2] == ["repository", "commits"] and len(rest) == 4:
            return self._commit(project, method, rest[2], rest[3], body)
        if rest[:2] == ["members", "all"] and method == "GET":
            level = project.members.get(int(rest[2]))
            if level is None:
                return jsonify(message="404 Not found"), 404
            return jsonify(id=int(rest[2]), access_level=level, username="u")
        if rest[0] != "merge_requests":
            return jsonify(message="404 Not Found"), 404
        iid = int(rest[1])
        mr = project.merge_requests.get(iid)
        if mr is None:
            return jsonify(message="404 Not found"), 404
        if len(rest) == 2 and method == "GET":
            return jsonify(
                iid=iid,
                sha=mr["sha"],
                target_branch="main",
                state="opened",
                source_project_id=mr.get("source", project.id),
                target_project_id=project.id,
            )
        if rest[2] == "approvals" and method == "GET":
            approved = [{"user": {"username": user}} for user in mr.get("approved_by", [])]
            return jsonify(iid=iid, approved=bool(approved), approved_by=approved)
        if rest[2] != "notes":
            return jsonify(message="404 Not Found"), 404
        if len(rest) == 3 and method == "GET":
            notes = [n for n in project.notes.values() if n["iid"] == iid]
            if request.args.get("sort", "desc") == "desc":
                notes.reverse()
            return _page([_note(n) for n in notes])
        if len(rest) == 3 and method == "POST":
            note = {"id": next(self._ids), "iid": iid, "body": body["body"], "system": False}
            project.notes[note["id"]] = note
            return jsonify(_note(note)), 201
        note = project.notes.get(int(rest[3]))
        if note is None or note["iid"] != iid:
            return jsonify(message="404 Not found"), 404
        if method == "PUT":
            note["body"] = body["body"]
            return jsonify(_note(note))
        if method == "DELETE":
            del project.notes[note["id"]]
            return Response(status=204)
        return jsonify(_note(note))

    def _status(self, project: FakeProject, sha: str, body: dict[str, Any]) -> Any:
        state, name = body.get("state"), body.get("name", "default")
        if state not in _VERBS:
            return jsonify(message="400 Bad request - state does not have a valid value"), 400
        history = project.statuses.setdefault(sha, [])
        current = next((s for s in reversed(history) if s["name"] == name), None)
        if current is not None and current["status"] == state:
            return jsonify(
                message=f"Cannot transition status via :{_VERBS[state]} from :{state}"
            ), 400
        status = {
            "id": next(self._ids),
            "sha": sha,
            "status": state,
            "name": name,
            "description": body.get("description"),
        }
        history.append(status)
        return jsonify(status), 201

    def _commit(
        self, project: FakeProject, method: str, sha: str, what: str, body: dict[str, Any]
    ) -> Any:
        if what == "statuses" and method == "GET":
            name = request.args.get("name")
            found = [s for s in project.statuses.get(sha, []) if name in (None, s["name"])]
            return _page(found)
        if what == "comments" and method == "POST":
            if not body.get("note"):
                return jsonify(message="400 Bad request - note is missing"), 400
            comment = {"note": body["note"], "author": {"username": "tidegate-bot"}}
            project.commit_comments.setdefault(sha, []).append(comment)
            return jsonify(comment), 201
        return jsonify(message="404 Not Found"), 404


def _raw_parts(path: str) -> list[str]:
    """The path's segments as sent, so an encoded project path stays one segment."""
    raw = str(request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or "")
    raw = raw.partition("?")[0]
    if raw.startswith("/api/v4/"):
        return raw.removeprefix("/api/v4/").strip("/").split("/")
    return path.strip("/").split("/")


def _note(note: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": note["id"],
        "body": note["body"],
        "system": note["system"],
        "author": {"username": "tidegate-bot"},
        "noteable_type": "MergeRequest",
    }


def _page(items: list[Any]) -> Response:
    response = jsonify(items)
    response.headers.update(
        {"X-Page": "1", "X-Per-Page": "100", "X-Total": str(len(items)), "X-Total-Pages": "1"}
    )
    return response


class serve_gitlab:  # noqa: N801 - used like a function in a `with`
    """Run a fake on an ephemeral loopback port for the duration of a `with` block."""

    def __init__(self, fake: FakeGitLab) -> None:
        self.fake = fake
        self._server = make_server("127.0.0.1", 0, fake.app(), threaded=True)
        fake.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeGitLab:
        self._thread.start()
        return self.fake

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._thread.join()
