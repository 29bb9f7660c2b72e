"""A loopback stand-in for the Hugging Face Hub's HTTP API, for `safer-toolkit push` tests.

It answers the endpoints `huggingface_hub` calls to create a dataset repo and a branch, list a
tree, validate a card's YAML, pre-upload and commit: the real wire protocol for those, with the
files kept in memory. Every file is answered `uploadMode: regular`, so contents travel inline
(base64 in the commit's ndjson); the LFS/Xet upload paths are not exercised here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml


@dataclass
class Commit:
    repo_id: str
    revision: str
    summary: str
    added: dict[str, bytes]
    deleted: list[str]


@dataclass
class FakeHub:
    repos: dict[str, dict[str, dict[str, bytes]]] = field(default_factory=dict)
    commits: list[Commit] = field(default_factory=list)
    private: dict[str, bool] = field(default_factory=dict)
    authorizations: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        return self.repos[repo_id][revision]


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_GET(self) -> None:
            path = unquote(urlsplit(self.path).path)
            m = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/revision/([^/]+)", path)
            if m and m.group(2) in hub.repos.get(m.group(1), {}):
                done = [c for c in hub.commits if (c.repo_id, c.revision) == m.groups()]
                self._send(200, {"id": m.group(1), "sha": f"{len(done):040x}",
                                 "private": hub.private[m.group(1)]})
                return
            m = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/tree/([^/]+)", path)
            if not m or m.group(1) not in hub.repos:
                self._send(404, {"error": f"not found: {path}"})
                return
            files = hub.repos[m.group(1)].get(m.group(2))
            if files is None:
                self._send(404, {"error": "revision not found"})
                return
            self._send(200, [{"type": "file", "path": p, "size": len(d), "oid": _git_oid(d)}
                             for p, d in sorted(files.items())])

        def do_POST(self) -> None:
            path = unquote(urlsplit(self.path).path)
            body = self._body()
            if "authorization" in {k.lower() for k in self.headers}:
                hub.authorizations.add(self.headers["Authorization"])
            with hub.lock:
                self._route(path, body)

        def _route(self, path: str, body: bytes) -> None:
            if path == "/api/repos/create":
                payload = json.loads(body)
                repo_id = f"{payload['organization'] or 'me'}/{payload['name']}"
                url = f"http://{self.headers['Host']}/datasets/{repo_id}"
                if payload.get("type") != "dataset":
                    self._send(400, {"error": "expected a dataset repo"})
                elif repo_id in hub.repos:  # the Hub names the existing repo in its 409
                    self._send(409, {"error": "You already created this dataset repo",
                                     "url": url})
                else:
                    hub.repos[repo_id] = {"main": {}}
                    hub.private[repo_id] = payload.get("visibility") == "private"
                    self._send(200, {"url": url})
                return
            if path == "/api/validate-yaml":
                content = json.loads(body)["content"]
                header = content.split("---")[1] if content.startswith("---") else ""
                try:
                    yaml.safe_load(header)
                except yaml.YAMLError as exc:
                    self._send(400, {"error": f"invalid YAML: {exc}"})
                    return
                self._send(200, {"warnings": []})
                return
            m = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/(branch|preupload|commit)/(.+)", path)
            if not m or m.group(1) not in hub.repos:
                self._send(404, {"error": f"not found: {path}"})
                return
            repo_id, action, revision = m.groups()
            branches = hub.repos[repo_id]
            if action == "branch":
                if revision in branches:
                    self._send(409, {"error": "branch exists"})
                else:
                    branches[revision] = dict(branches["main"])
                    self._send(200, {})
                return
            if revision not in branches:
                self._send(404, {"error": "revision not found"})
                return
            files = branches[revision]
            if action == "preupload":
                wanted = json.loads(body)["files"]
                self._send(200, {"files": [
                    {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                     "oid": _git_oid(files[f["path"]]) if f["path"] in files else None}
                    for f in wanted]})
                return
            lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
            added = {v["value"]["path"]: base64.b64decode(v["value"]["content"])
                     for v in lines if v["key"] == "file"}
            deleted = [v["value"]["path"] for v in lines if v["key"] == "deletedFile"]
            if any(v["key"] not in ("header", "file", "deletedFile") for v in lines):
                self._send(400, {"error": "this fake only takes inline files and deletions"})
                return
            files.update(added)
            for p in deleted:
                files.pop(p, None)
            summary = next(v["value"]["summary"] for v in lines if v["key"] == "header")
            hub.commits.append(Commit(repo_id, revision, summary, added, deleted))
            oid = f"{len(hub.commits):040x}"
            host = self.headers["Host"]
            self._send(200, {"commitUrl": f"http://{host}/datasets/{repo_id}/commit/{oid}",
                             "commitOid": oid})

    return Handler


class FakeHubServer:
    """Serve a `FakeHub` on 127.0.0.1 (a free port) from a background thread."""

    def __init__(self) -> None:
        self.hub = FakeHub()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.hub))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeHubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
