"""A local, stdlib-only stand-in for the Hugging Face Hub: the part of the Hub's HTTP API that the real clients use
(huggingface_hub 2.4, datasets 5.2, transformers 5.25, Xet disabled), with repos stored on disk. tests/hub/README.md
says how a test uses it; in short::

    def test_roundtrip(local_hub, hub_token):               # fixtures of tests/conftest.py
        repo_id = local_hub.new_repo_id("student")           # "w2s-tester/student-1": unique within the session
        HfApi().upload_file(path_or_fileobj=b"hi", path_in_repo="a.txt", repo_id=repo_id)   # HF_ENDPOINT is this server
        assert local_hub.file_bytes(repo_id, "a.txt") == b"hi"

What it keeps faithful:

* every commit gets a 40-hex sha and keeps its full file tree, so `revision=<old sha>` works; branches (`main` is
  created with an initial `.gitattributes` commit, like on the Hub) and tags are refs to commits;
* `preupload` answers `lfs` the way the Hub does: paths matched by the repo's `.gitattributes` LFS rules (the Hub's
  default list: `*.safetensors`, `*.parquet`, `*.bin`, images in dataset repos, ...), binary samples and files of
  10 MB or more; `regular` for small text.  LFS blobs go through the LFS batch API and a PUT that checks sha256;
* downloads carry `X-Repo-Commit`, `ETag` (git blob sha1, or sha256 for LFS with `X-Linked-Etag`/`X-Linked-Size`)
  and honour `Range`; 404s carry `X-Error-Code: RepoNotFound | RevisionNotFound | EntryNotFound`;
* a bearer token maps to a user (`whoami-v2`); a wrong token gets 401 on every route, writes need a valid token
  for the user's own namespace or one of its orgs, private repos are hidden (404) from everyone else;
* an unknown route is answered 404 and logged to stderr as ``[local-hub] UNHANDLED GET /path`` and kept in
  `LocalHub.unhandled`, so a new client flow shows at once what it is missing.

Server-side inspection without HTTP: `head(repo_id, repo_type="model")`, `commits(...)` (newest first; the last is
the Hub-style initial commit), `files(..., revision=)` (`{path: {size, sha256, lfs, oid}}`), `file_bytes(repo_id,
path, ...)`, `requests` (recent `(method, path, status)`), `unhandled`, `add_user(token, name, orgs)`, `fail(method,
path, status)` (fault injection); `url`, `token` (`hf_localhub_test_token`), `user` (`w2s-tester`, who also writes
to `w2s-org`).

A fresh interpreter wired to the server (only where the point of a test is what a process reads when it starts):
`run_python(code)` runs source with `emit(obj)` defined and returns a `ClientRun` (`returncode`, `stdout`, `stderr`,
`results`: the emitted objects, `result`: the last); `run_command(argv)` any command; `env()` the environment itself.

Standalone (a server in its own process): ``python tests/hub/server.py --root DIR [--port N] [--token T] [--user U]
[--orgs a,b] [--verbose]`` prints ``LOCAL_HUB_URL=http://127.0.0.1:PORT`` once it listens (port 0, the default,
picks a free one); repos persist under DIR across restarts.

Not supported: pull requests (`create_pr=True`), Xet storage, LFS multipart uploads, the dataset viewer /
`refs/convert/parquet` conversion, spaces runtime, discussions, squash/super-squash, pagination (every listing fits
one page), gated repos.
"""

from __future__ import annotations

import argparse
import base64
import collections
import fnmatch
import hashlib
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_TOKEN = "hf_localhub_test_token"
DEFAULT_USER = "w2s-tester"
DEFAULT_ORGS = ("w2s-org",)
REPO_TYPES = ("model", "dataset", "space")
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024  # the Hub sends text files of 10 MB or more to LFS
EMIT_MARKER = "<<LOCAL-HUB-JSON>>"
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"

# The LFS rules the Hub writes into the `.gitattributes` of a new repo (dataset repos also get media files).
_LFS_PATTERNS = (
    "*.7z *.arrow *.bin *.bz2 *.ckpt *.ftz *.gz *.h5 *.joblib *.lfs.* *.mlmodel *.model *.msgpack *.npy *.npz "
    "*.onnx *.ot *.parquet *.pb *.pickle *.pkl *.pt *.pth *.rar *.safetensors saved_model/**/* *.tar.* *.tar "
    "*.tflite *.tgz *.wasm *.xz *.zip *.zst *tfevents*"
).split()
_DATASET_LFS_PATTERNS = (
    "*.mds *.mp3 *.ogg *.wav *.flac *.jpg *.jpeg *.png *.webp *.gif *.bmp *.tif *.tiff *.mp4"
).split()
_ENV_TO_DROP = (
    "HF_HUB_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "HF_DATASETS_CACHE",
    "HF_XET_CACHE",
    "HF_ASSETS_CACHE",
    "HF_TOKEN_PATH",
    "HF_STORED_TOKENS_PATH",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_HUB_ENABLE_HF_TRANSFER",
)


def default_gitattributes(repo_type: str) -> str:
    patterns = list(_LFS_PATTERNS) + (list(_DATASET_LFS_PATTERNS) if repo_type == "dataset" else [])
    return "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in patterns)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _lfs_patterns_from_gitattributes(text: str) -> list[str]:
    patterns = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and not parts[0].startswith("#") and "filter=lfs" in parts[1:]:
            patterns.append(parts[0])
    return patterns


def _matches_gitattributes(path: str, pattern: str) -> bool:
    if "/" in pattern.strip("/"):
        return fnmatch.fnmatchcase(path, pattern.lstrip("/"))
    return fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], pattern)


class HubError(Exception):
    """An HTTP error answer, with the Hub's `X-Error-Code` where the clients rely on it."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.extra_headers: dict[str, str] = {}


def _repo_not_found(repo_type: str, repo_id: str) -> HubError:
    return HubError(404, f"Repository not found: {repo_type} {repo_id}", "RepoNotFound")


Response = tuple[int, bytes, dict, str]  # status, body, headers, content type


def _raw(status: int, data: bytes, headers: dict | None = None, content_type: str = "application/json") -> Response:
    return status, data, dict(headers or {}), content_type


def _json(obj, status: int = 200, headers: dict | None = None) -> Response:
    return _raw(status, json.dumps(obj).encode(), headers)


def _error(err: HubError) -> Response:
    headers = {"X-Error-Message": err.message.replace("\n", " ")}
    if err.code:
        headers["X-Error-Code"] = err.code
    headers.update(err.extra_headers)
    return _json({"error": err.message}, err.status, headers)


# --------------------------------------------------------------------------------------------------------------------
# Storage: blobs by sha256, one JSON document per repo holding refs and every commit's full file tree.
# --------------------------------------------------------------------------------------------------------------------
class HubStorage:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        (self.root / "repos").mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._cache: dict[tuple[str, str], dict] = {}
        self._counter = itertools.count()

    # -- blobs
    def blob_path(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256[:2] / sha256

    def has_blob(self, sha256: str) -> bool:
        return self.blob_path(sha256).is_file()

    def put_blob(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        path = self.blob_path(sha256)
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{sha256}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return sha256

    def read_blob(self, sha256: str) -> bytes:
        return self.blob_path(sha256).read_bytes()

    # -- repos
    def _repo_file(self, repo_type: str, repo_id: str) -> Path:
        return self.root / "repos" / f"{repo_type}s" / repo_id / "repo.json"

    def get_repo(self, repo_type: str, repo_id: str) -> dict | None:
        with self.lock:
            key = (repo_type, repo_id)
            if key not in self._cache:
                path = self._repo_file(repo_type, repo_id)
                if not path.is_file():
                    return None
                self._cache[key] = json.loads(path.read_text())
            return self._cache[key]

    def save_repo(self, repo: dict) -> None:
        with self.lock:
            path = self._repo_file(repo["type"], repo["id"])
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(repo))
            os.replace(tmp, path)
            self._cache[(repo["type"], repo["id"])] = repo

    def delete_repo(self, repo_type: str, repo_id: str) -> None:
        with self.lock:
            path = self._repo_file(repo_type, repo_id)
            if path.is_file():
                path.unlink()
            self._cache.pop((repo_type, repo_id), None)

    def create_repo(self, repo_type: str, repo_id: str, private: bool, author: str) -> dict:
        with self.lock:
            if self.get_repo(repo_type, repo_id) is not None:
                raise HubError(409, "You already created this repo")
            date = _now()
            repo = {
                "id": repo_id,
                "type": repo_type,
                "private": private,
                "createdAt": date,
                "branches": {},
                "tags": {},
                "commits": {},
            }
            sha = self._new_commit(repo, None, {}, "initial commit", "", author)
            gitattributes = default_gitattributes(repo_type).encode()
            entry = self._entry(self.put_blob(gitattributes), len(gitattributes), False, gitattributes)
            repo["commits"][sha]["files"][".gitattributes"] = entry
            repo["branches"]["main"] = sha
            self.save_repo(repo)
            return repo

    @staticmethod
    def _entry(sha256: str, size: int, lfs: bool, data: bytes | None = None) -> dict:
        oid = git_blob_sha1(lfs_pointer(sha256, size)) if lfs else git_blob_sha1(data)
        return {"sha256": sha256, "size": size, "lfs": lfs, "oid": oid}

    def _new_commit(self, repo: dict, parent: str | None, files: dict, title: str, message: str, author: str) -> str:
        date = _now()
        seed = json.dumps([repo["type"], repo["id"], parent, title, date, next(self._counter), time.time_ns()])
        sha = hashlib.sha1(seed.encode()).hexdigest()
        repo["commits"][sha] = {
            "parents": [parent] if parent else [],
            "title": title,
            "message": message,
            "date": date,
            "author": author,
            "files": files,
        }
        return sha

    # -- revisions
    @staticmethod
    def resolve_revision(repo: dict, revision: str) -> str:
        rev = revision
        for prefix, table in (("refs/heads/", "branches"), ("refs/tags/", "tags")):
            if rev.startswith(prefix) and rev[len(prefix) :] in repo[table]:
                return repo[table][rev[len(prefix) :]]
        if rev in repo["branches"]:
            return repo["branches"][rev]
        if rev in repo["tags"]:
            return repo["tags"][rev]
        if re.fullmatch(r"[0-9a-f]{40}", rev) and rev in repo["commits"]:
            return rev
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def ancestry(self, repo: dict, sha: str) -> list[str]:
        chain = []
        while sha:
            chain.append(sha)
            parents = repo["commits"][sha]["parents"]
            sha = parents[0] if parents else None
        return chain

    def commit(
        self, repo: dict, branch: str, operations: list[tuple[str, dict]], header: dict, author: str
    ) -> str:
        """Apply NDJSON commit operations on top of `branch`; returns the new commit sha."""
        with self.lock:
            if branch.startswith("refs/heads/"):
                branch = branch[len("refs/heads/") :]
            if branch not in repo["branches"]:
                raise HubError(404, f"Invalid rev id: {branch} (commits need an existing branch)", "RevisionNotFound")
            head = repo["branches"][branch]
            parent_commit = header.get("parentCommit")
            if parent_commit and parent_commit != head:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(repo["commits"][head]["files"])
            for key, value in operations:
                path = value.get("path", "")
                path = _validate_repo_path(path.rstrip("/") if key == "deletedFolder" else path)
                if key == "file":
                    if value.get("encoding", "base64") != "base64":
                        raise HubError(400, f"Unsupported encoding {value.get('encoding')!r} for {path}")
                    data = base64.b64decode(value["content"])
                    if len(data) >= LFS_SIZE_THRESHOLD or b"\0" in data[:512]:  # the rule `preupload` applies
                        raise HubError(400, f"Your push was rejected: {path} is binary or large and must go to LFS")
                    files[path] = self._entry(self.put_blob(data), len(data), False, data)
                elif key == "lfsFile":
                    oid = value.get("oid", "")
                    if value.get("algo", "sha256") != "sha256" or not self.has_blob(oid):
                        raise HubError(422, f"LFS object {oid} for {path} was not uploaded")
                    size = self.blob_path(oid).stat().st_size
                    if value.get("size") is not None and int(value["size"]) != size:
                        raise HubError(422, f"LFS object {oid} has size {size}, not {value['size']}")
                    files[path] = self._entry(oid, size, True)
                elif key == "deletedFile":
                    if path not in files:
                        raise HubError(404, f"File to delete not found: {path}", "EntryNotFound")
                    del files[path]
                elif key == "deletedFolder":
                    prefix = path + "/"
                    doomed = [p for p in files if p.startswith(prefix)]
                    if not doomed:
                        raise HubError(404, f"Folder to delete not found: {path}", "EntryNotFound")
                    for p in doomed:
                        del files[p]
                else:
                    raise HubError(400, f"Unsupported commit operation {key!r}")
            clashes = _folders(files) & files.keys()
            if clashes:
                raise HubError(400, f"A path cannot be both a file and a folder: {sorted(clashes)}")
            title = header.get("summary") or "Upload files"
            sha = self._new_commit(repo, head, files, title, header.get("description") or "", author)
            repo["branches"][branch] = sha
            self.save_repo(repo)
            return sha


def _validate_repo_path(path: str) -> str:
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts) or parts[0] == ".git":
        raise HubError(400, f"Invalid path in repo: {path!r}")
    return path


# --------------------------------------------------------------------------------------------------------------------
# Tree helpers
# --------------------------------------------------------------------------------------------------------------------
def _folder_oid(files: dict, folder: str) -> str:
    prefix = folder + "/" if folder else ""
    items = sorted((p, e["oid"]) for p, e in files.items() if p.startswith(prefix))
    return hashlib.sha1(json.dumps(items).encode()).hexdigest()


def _folders(files: dict) -> set[str]:
    out = set()
    for path in files:
        parts = path.split("/")[:-1]
        out.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return out


def _signature(files: dict, path: str) -> str | None:
    if path in files:
        return files[path]["oid"]
    if path in _folders(files):
        return _folder_oid(files, path)
    return None


def _card_data(storage: HubStorage, readme: dict | None) -> dict | None:
    """The YAML header of README.md as `cardData`, like the Hub; needs PyYAML (else, like an empty header: None)."""
    if readme is None or readme["lfs"]:
        return None
    text = storage.read_blob(readme["sha256"]).decode(errors="replace")
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", text, re.DOTALL)
    try:
        import yaml  # optional: the server itself is stdlib-only
    except ImportError:
        return None
    try:
        data = yaml.safe_load(match.group(1)) if match else None
    except yaml.YAMLError:
        return None
    return json.loads(json.dumps(data, default=str)) if isinstance(data, dict) else None


# --------------------------------------------------------------------------------------------------------------------
# HTTP layer
# --------------------------------------------------------------------------------------------------------------------
_API = r"^/api/(?P<type>models|datasets|spaces)/(?P<repo>[^/]+/[^/]+)"
_WEB = r"^/(?:(?P<prefix>datasets|spaces)/)?(?P<repo>[^/]+/[^/]+)"
ROUTES: list[tuple[str, re.Pattern, str]] = [
    (m, re.compile(p), h)
    for m, p, h in [
        ("GET", r"^/api/whoami-v2$", "whoami"),
        ("POST", r"^/api/repos/create$", "create_repo"),
        ("DELETE", r"^/api/repos/delete$", "delete_repo"),
        ("POST", r"^/api/validate-yaml$", "validate_yaml"),
        ("GET", _API + r"$", "repo_info"),
        ("GET", _API + r"/revision/(?P<rev>.+)$", "repo_info"),
        ("GET", _API + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$", "tree"),
        ("POST", _API + r"/paths-info/(?P<rev>.+)$", "paths_info"),
        ("GET", _API + r"/refs$", "refs"),
        ("GET", _API + r"/commits/(?P<rev>.+)$", "commits"),
        ("POST", _API + r"/preupload/(?P<rev>.+)$", "preupload"),
        ("POST", _API + r"/commit/(?P<rev>.+)$", "commit"),
        ("POST", _API + r"/branch/(?P<branch>.+)$", "create_branch"),
        ("DELETE", _API + r"/branch/(?P<branch>.+)$", "delete_branch"),
        ("POST", _API + r"/tag/(?P<rev>.+)$", "create_tag"),
        ("DELETE", _API + r"/tag/(?P<tag>.+)$", "delete_tag"),
        ("PUT", _API + r"/settings$", "settings"),
        ("GET", _WEB + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)$", "resolve"),
        ("HEAD", _WEB + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)$", "resolve"),
        ("POST", _WEB + r"\.git/info/lfs/objects/batch$", "lfs_batch"),
        ("PUT", r"^/lfs-upload/(?P<oid>[0-9a-f]{64})$", "lfs_upload"),
    ]
]


class HubRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_HubHTTPServer"

    # -- plumbing
    def log_message(self, format, *args):  # noqa: A002 - signature from BaseHTTPRequestHandler
        if self.server.hub.verbose:
            sys.stderr.write(f"[local-hub] {self.address_string()} {format % args}\n")

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        self.query = parse_qs(split.query, keep_blank_values=True)
        self._body: bytes | None = None
        hub = self.server.hub
        try:
            self.read_body()  # before taking the lock: a slow upload must not stall other requests
            fault = hub._injected_fault(method, split.path)
            if fault is not None:
                raise fault
            for route_method, pattern, name in ROUTES:
                match = pattern.match(split.path)
                if match and route_method == method:
                    params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                    # One request at a time touches the storage: handlers build the whole answer under the lock,
                    # which is sent after it is released.
                    with hub.storage.lock:
                        self._check_token()
                        response = getattr(self, "h_" + name)(**params)
                    break
            else:
                line = f"UNHANDLED {method} {self.path}"
                hub.unhandled.append(line)
                sys.stderr.write(f"[local-hub] {line}\n")
                response = _error(HubError(404, f"Route not implemented by the local hub: {method} {split.path}"))
        except HubError as err:
            response = _error(err)
        except Exception as err:  # noqa: BLE001 - report any server bug to the client and to stderr
            sys.stderr.write(f"[local-hub] ERROR {method} {self.path}\n{traceback.format_exc()}")
            response = _error(HubError(500, f"Local hub error: {err!r}"))
        status, data, headers, content_type = response
        hub.requests.append((method, self.path, status))
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            if "Content-Length" not in headers:
                self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def read_body(self) -> bytes:
        if self._body is None:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self._body = b"".join(chunks)
            else:
                self._body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        return self._body

    def json_body(self) -> dict:
        body = self.read_body()
        try:
            return json.loads(body or b"{}")
        except json.JSONDecodeError as err:
            raise HubError(400, f"Body is not valid JSON: {err}") from err

    @property
    def base_url(self) -> str:
        return f"http://{self.headers.get('Host') or '%s:%d' % self.server.server_address[:2]}"

    # -- auth
    def _check_token(self) -> None:
        auth = self.headers.get("Authorization", "")
        self.user: dict | None = None
        if auth:
            token = auth.split(" ", 1)[1] if auth.lower().startswith("bearer ") else auth
            self.user = self.server.hub.users.get(token.strip())
            if self.user is None:
                raise HubError(401, INVALID_CREDENTIALS)

    def _require_user(self) -> dict:
        if self.user is None:
            raise HubError(401, "You must be authenticated (a token in the Authorization header) to do this")
        return self.user

    def _can_write(self, namespace: str) -> bool:
        return self.user is not None and (namespace == self.user["name"] or namespace in self.user.get("orgs", ()))

    def _repo(self, repo_type: str, repo_id: str, write: bool = False) -> dict:
        storage = self.server.hub.storage
        repo = storage.get_repo(repo_type, repo_id)
        namespace = repo_id.split("/")[0]
        if repo is None or (repo["private"] and not self._can_write(namespace)):
            if write:
                self._require_user()
            raise _repo_not_found(repo_type, repo_id)
        if write:
            self._require_user()
            if not self._can_write(namespace):
                raise HubError(403, f"You don't have the rights to write to {repo_type} {repo_id}")
        return repo

    @staticmethod
    def _type(plural_or_prefix: str | None) -> str:
        return {"models": "model", "datasets": "dataset", "spaces": "space", None: "model"}[plural_or_prefix]

    def _web_repo_url(self, repo_type: str, repo_id: str) -> str:
        return f"{self.base_url}/{'' if repo_type == 'model' else repo_type + 's/'}{repo_id}"

    # -- account and repos
    def h_whoami(self):
        user = self._require_user()
        orgs = [{"type": "org", "name": org, "fullname": org} for org in user.get("orgs", ())]
        return _json(
            {
                "type": "user",
                "id": hashlib.sha1(user["name"].encode()).hexdigest()[:24],
                "name": user["name"],
                "fullname": user["name"],
                "email": f"{user['name']}@localhost",
                "emailVerified": True,
                "canPay": False,
                "isPro": False,
                "orgs": orgs,
                "auth": {"type": "access_token", "accessToken": {"displayName": "local-hub", "role": "write"}},
            }
        )

    def h_create_repo(self):
        user = self._require_user()
        payload = self.json_body()
        repo_type = payload.get("type") or "model"
        if repo_type not in REPO_TYPES:
            raise HubError(400, f"Invalid repo type {repo_type!r}")
        name = payload.get("name") or ""
        namespace = payload.get("organization") or user["name"]
        valid_name = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}", name)
        if not valid_name or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", namespace):
            raise HubError(400, f"Invalid repo name {namespace}/{name}")
        if not self._can_write(namespace):
            raise HubError(403, f"You don't have the rights to create a {repo_type} under the namespace {namespace}")
        repo_id = f"{namespace}/{name}"
        url = self._web_repo_url(repo_type, repo_id)
        private = payload.get("private")
        if payload.get("visibility") is not None:
            private = payload["visibility"] == "private"
        try:
            self.server.hub.storage.create_repo(repo_type, repo_id, bool(private), user["name"])
        except HubError as err:
            if err.status == 409:
                return _json({"error": err.message, "url": url}, 409, {"X-Error-Message": err.message})
            raise
        return _json({"url": url, "name": repo_id, "id": repo_id})

    def h_delete_repo(self):
        payload = self.json_body()
        repo_type = payload.get("type") or "model"
        namespace = payload.get("organization") or self._require_user()["name"]
        repo_id = f"{namespace}/{payload.get('name')}"
        self._repo(repo_type, repo_id, write=True)
        self.server.hub.storage.delete_repo(repo_type, repo_id)
        return _json({})

    def h_settings(self, type, repo):  # noqa: A002
        repo_obj = self._repo(self._type(type), repo, write=True)
        payload = self.json_body()
        if "private" in payload:
            repo_obj["private"] = bool(payload["private"])
        if "visibility" in payload:
            repo_obj["private"] = payload["visibility"] == "private"
        self.server.hub.storage.save_repo(repo_obj)
        return _json({})

    def h_validate_yaml(self):
        self.json_body()
        return _json({"errors": [], "warnings": []})

    def h_repo_info(self, type, repo, rev="main"):  # noqa: A002
        repo_type = self._type(type)
        repo_obj = self._repo(repo_type, repo)
        storage = self.server.hub.storage
        sha = storage.resolve_revision(repo_obj, rev)
        commit = repo_obj["commits"][sha]
        with_blobs = self.query.get("blobs", ["false"])[0].lower() in ("1", "true")
        siblings = []
        for path, entry in sorted(commit["files"].items()):
            sibling = {"rfilename": path}
            if with_blobs:
                sibling.update(size=entry["size"], blobId=entry["oid"])
                if entry["lfs"]:
                    sibling["lfs"] = {
                        "size": entry["size"],
                        "sha256": entry["sha256"],
                        "pointerSize": len(lfs_pointer(entry["sha256"], entry["size"])),
                    }
            siblings.append(sibling)
        info = {
            "_id": hashlib.sha1(f"{repo_type}/{repo}".encode()).hexdigest()[:24],
            "id": repo,
            "author": repo.split("/")[0],
            "sha": sha,
            "lastModified": commit["date"],
            "createdAt": repo_obj["createdAt"],
            "private": repo_obj["private"],
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "usedStorage": sum(e["size"] for e in commit["files"].values()),
        }
        if repo_type == "model":
            info["modelId"] = repo
        card_data = _card_data(storage, commit["files"].get("README.md"))
        if card_data is not None:
            info["cardData"] = card_data
            info["tags"] = [str(t) for t in card_data.get("tags") or []]
        return _json(info)

    def h_refs(self, type, repo):  # noqa: A002
        repo_obj = self._repo(self._type(type), repo)

        def refs(table, prefix):
            return [{"name": n, "ref": f"{prefix}{n}", "targetCommit": s} for n, s in sorted(repo_obj[table].items())]

        return _json(
            {
                "branches": refs("branches", "refs/heads/"),
                "converts": [],
                "tags": refs("tags", "refs/tags/"),
                "pullRequests": [],
            }
        )

    def h_commits(self, type, repo, rev):  # noqa: A002
        repo_obj = self._repo(self._type(type), repo)
        storage = self.server.hub.storage
        sha = storage.resolve_revision(repo_obj, rev)
        out = []
        for commit_sha in storage.ancestry(repo_obj, sha):
            c = repo_obj["commits"][commit_sha]
            out.append(
                {
                    "id": commit_sha,
                    "title": c["title"],
                    "message": c["message"],
                    "date": c["date"],
                    "authors": [{"user": c["author"]}],
                    "parents": c["parents"],
                }
            )
        return _json(out)

    # -- tree
    def _path_json(self, repo_obj: dict, sha: str, files: dict, path: str, expand: bool) -> dict:
        if path in files:
            entry = files[path]
            out = {"type": "file", "oid": entry["oid"], "size": entry["size"], "path": path}
            if entry["lfs"]:
                pointer_size = len(lfs_pointer(entry["sha256"], entry["size"]))
                out["lfs"] = {"oid": entry["sha256"], "size": entry["size"], "pointerSize": pointer_size}
        else:
            out = {"type": "directory", "oid": _folder_oid(files, path), "size": 0, "path": path}
        if expand:
            out["lastCommit"] = self._last_commit(repo_obj, sha, path)
        return out

    def _last_commit(self, repo_obj: dict, sha: str, path: str) -> dict:
        storage = self.server.hub.storage
        chain = storage.ancestry(repo_obj, sha)
        last = chain[0]
        signature = _signature(repo_obj["commits"][last]["files"], path)
        for older in chain[1:]:
            if _signature(repo_obj["commits"][older]["files"], path) != signature:
                break
            last = older
        c = repo_obj["commits"][last]
        return {"id": last, "title": c["title"], "date": c["date"]}

    def h_tree(self, type, repo, rev, path=""):  # noqa: A002
        repo_obj = self._repo(self._type(type), repo)
        sha = self.server.hub.storage.resolve_revision(repo_obj, rev)
        files = repo_obj["commits"][sha]["files"]
        path = path.strip("/")
        folders = _folders(files)
        if path and path not in folders:
            raise HubError(404, f"Entry not found: {path} is not a folder at {rev}", "EntryNotFound")
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        expand = self.query.get("expand", ["false"])[0].lower() in ("1", "true")
        prefix = path + "/" if path else ""
        children = []
        for candidate in sorted(folders) + sorted(files):
            if not candidate.startswith(prefix):
                continue
            rest = candidate[len(prefix) :]
            if recursive or "/" not in rest:
                children.append(self._path_json(repo_obj, sha, files, candidate, expand))
        return _json(children)

    def h_paths_info(self, type, repo, rev):  # noqa: A002
        repo_obj = self._repo(self._type(type), repo)
        sha = self.server.hub.storage.resolve_revision(repo_obj, rev)
        files = repo_obj["commits"][sha]["files"]
        body = self.read_body()
        if self.headers.get("Content-Type", "").startswith("application/json"):
            payload = json.loads(body or b"{}")
            paths, expand = payload.get("paths", []), bool(payload.get("expand"))
        else:
            form = parse_qs(body.decode(), keep_blank_values=True)
            paths = form.get("paths", [])
            expand = form.get("expand", ["false"])[0].lower() in ("1", "true")
        folders = _folders(files)
        out = []
        for path in dict.fromkeys(p.strip("/") for p in paths):
            if path in files or path in folders:
                out.append(self._path_json(repo_obj, sha, files, path, expand))
        return _json(out)

    # -- uploads
    def h_preupload(self, type, repo, rev):  # noqa: A002
        repo_type = self._type(type)
        repo_obj = self._repo(repo_type, repo, write=True)
        if self.query.get("create_pr"):
            raise HubError(400, "Pull requests are not supported by the local hub")
        storage = self.server.hub.storage
        sha = storage.resolve_revision(repo_obj, rev)
        files = repo_obj["commits"][sha]["files"]
        payload = self.json_body()
        gitattributes = payload.get("gitAttributes")
        if gitattributes is None and ".gitattributes" in files:
            gitattributes = storage.read_blob(files[".gitattributes"]["sha256"]).decode(errors="replace")
        patterns = _lfs_patterns_from_gitattributes(gitattributes or default_gitattributes(repo_type))
        out = []
        for item in payload.get("files", []):
            path = item["path"]
            sample = base64.b64decode(item.get("sample") or "")
            size = int(item.get("size") or 0)
            lfs = size >= LFS_SIZE_THRESHOLD or b"\0" in sample
            lfs = lfs or any(_matches_gitattributes(path, pattern) for pattern in patterns)
            existing = files.get(path)
            oid = None
            if existing is not None:
                oid = existing["sha256"] if existing["lfs"] else existing["oid"]
            out.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        return _json({"files": out, "commitOid": sha})

    def h_lfs_batch(self, repo, prefix=None):
        repo_type = self._type(prefix)
        self._repo(repo_type, repo, write=True)
        payload = self.json_body()
        if payload.get("operation") != "upload":
            raise HubError(400, f"Only LFS uploads are supported, not {payload.get('operation')!r}")
        storage = self.server.hub.storage
        objects = []
        for obj in payload.get("objects", []):
            oid, size = obj.get("oid", ""), int(obj.get("size", 0))
            entry = {"oid": oid, "size": size, "authenticated": True}
            if not re.fullmatch(r"[0-9a-f]{64}", oid):
                entry["error"] = {"code": 422, "message": f"Invalid oid {oid!r}"}
            elif not storage.has_blob(oid):
                href = f"{self.base_url}/lfs-upload/{oid}?size={size}"
                entry["actions"] = {"upload": {"href": href, "header": {}, "expires_in": 3600}}
            objects.append(entry)
        body = json.dumps({"transfer": "basic", "objects": objects}).encode()
        return _raw(200, body, content_type="application/vnd.git-lfs+json")

    def h_lfs_upload(self, oid):
        data = self.read_body()
        actual = hashlib.sha256(data).hexdigest()
        if actual != oid:
            raise HubError(400, f"sha256 mismatch: URL says {oid}, body is {actual}")
        expected = self.query.get("size", [None])[0]
        if expected is not None and int(expected) != len(data):
            raise HubError(400, f"size mismatch: expected {expected} bytes, got {len(data)}")
        self.server.hub.storage.put_blob(data)
        return _raw(200, b"", {"ETag": f'"{oid}"'})

    def h_commit(self, type, repo, rev):  # noqa: A002
        repo_type = self._type(type)
        repo_obj = self._repo(repo_type, repo, write=True)
        if self.query.get("create_pr", ["0"])[0] not in ("0", "false", ""):
            raise HubError(400, "Pull requests (create_pr=True) are not supported by the local hub")
        header, operations = {}, []
        for line in self.read_body().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            if item.get("key") == "header":
                header = item.get("value", {})
            else:
                operations.append((item.get("key"), item.get("value", {})))
        sha = self.server.hub.storage.commit(repo_obj, rev, operations, header, self.user["name"])
        return _json(
            {
                "success": True,
                "commitOid": sha,
                "commitUrl": f"{self._web_repo_url(repo_type, repo)}/commit/{sha}",
                "commitMessage": header.get("summary", ""),
                "hookOutput": "",
                "pullRequestUrl": None,
            }
        )

    # -- refs
    def _create_ref(self, type_: str, repo: str, table: str, name: str, target: str):
        """Point a new branch or tag (`table`) at the commit `target` resolves to (dispatch holds the lock)."""
        repo_obj = self._repo(self._type(type_), repo, write=True)
        if name.startswith("refs/") or not re.fullmatch(r"[A-Za-z0-9._/-]+", name):
            raise HubError(400, f"Invalid {table[:-1]} name {name!r}")
        if name in repo_obj[table]:
            raise HubError(409, f"{table[:-1].capitalize()} {name} already exists")
        repo_obj[table][name] = self.server.hub.storage.resolve_revision(repo_obj, target)
        self.server.hub.storage.save_repo(repo_obj)
        return _json({})

    def _delete_ref(self, type_: str, repo: str, table: str, name: str):
        repo_obj = self._repo(self._type(type_), repo, write=True)
        if (table, name) == ("branches", "main"):
            raise HubError(400, "Cannot delete the main branch")
        if name not in repo_obj[table]:
            raise HubError(404, f"{table[:-1].capitalize()} {name} not found", "RevisionNotFound")
        del repo_obj[table][name]
        self.server.hub.storage.save_repo(repo_obj)
        return _json({})

    def h_create_branch(self, type, repo, branch):  # noqa: A002
        return self._create_ref(type, repo, "branches", branch, self.json_body().get("startingPoint") or "main")

    def h_delete_branch(self, type, repo, branch):  # noqa: A002
        return self._delete_ref(type, repo, "branches", branch)

    def h_create_tag(self, type, repo, rev):  # noqa: A002
        return self._create_ref(type, repo, "tags", self.json_body().get("tag") or "", rev)

    def h_delete_tag(self, type, repo, tag):  # noqa: A002
        return self._delete_ref(type, repo, "tags", tag)

    # -- downloads
    def h_resolve(self, repo, rev, path, prefix=None):
        repo_type = self._type(prefix)
        repo_obj = self._repo(repo_type, repo)
        storage = self.server.hub.storage
        sha = storage.resolve_revision(repo_obj, rev)
        entry = repo_obj["commits"][sha]["files"].get(path)
        if entry is None:
            err = HubError(404, f"Entry not found: {path} at {rev}", "EntryNotFound")
            err.extra_headers = {"X-Repo-Commit": sha}
            raise err
        size = entry["size"]
        headers = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes"}
        if entry["lfs"]:
            etag = f'"{entry["sha256"]}"'
            headers.update({"ETag": etag, "X-Linked-Etag": etag, "X-Linked-Size": str(size)})
        else:
            headers["ETag"] = f'"{entry["oid"]}"'
        start, end, status = 0, size - 1, 200
        range_header = self.headers.get("Range")
        if range_header:
            match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", range_header)
            if not match or match.groups() == ("", ""):
                raise HubError(416, f"Unsupported Range header {range_header!r}")
            first, last = match.groups()
            if first == "":
                start = max(size - int(last), 0)
            else:
                start, end = int(first), min(int(last), size - 1) if last else size - 1
            if start >= size or start > end:
                err = HubError(416, f"Range {range_header!r} not satisfiable for {size} bytes")
                err.extra_headers = {"Content-Range": f"bytes */{size}"}
                raise err
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            status = 206
        headers["Content-Length"] = str(end + 1 - start)
        data = b""
        if self.command != "HEAD":  # blobs are immutable: reading one needs no lock, but it is cheap here anyway
            with open(storage.blob_path(entry["sha256"]), "rb") as f:
                f.seek(start)
                data = f.read(end + 1 - start)
        return _raw(status, data, headers, "application/octet-stream")


class _HubHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    hub: "LocalHub"


# --------------------------------------------------------------------------------------------------------------------
# Server object + client-process helpers
# --------------------------------------------------------------------------------------------------------------------
@dataclass
class ClientRun:
    """What a client snippet run by `LocalHub.run_python` produced."""

    returncode: int
    stdout: str
    stderr: str
    results: list = field(default_factory=list)

    @property
    def result(self):
        """The last object the snippet passed to `emit(...)`."""
        if not self.results:
            raise AssertionError(f"the client snippet emitted nothing; stdout:\n{self.stdout}\nstderr:\n{self.stderr}")
        return self.results[-1]


_CLIENT_PRELUDE = f"""\
import builtins as _local_hub_builtins, json as _local_hub_json, sys as _local_hub_sys
def emit(obj):
    _local_hub_sys.stdout.write("\\n{EMIT_MARKER}" + _local_hub_json.dumps(obj) + "\\n")
    _local_hub_sys.stdout.flush()
_local_hub_builtins.emit = emit
"""


class LocalHub:
    """The local Hub: storage under `root`, an HTTP server on 127.0.0.1 in a daemon thread once `start()`ed."""

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str = DEFAULT_TOKEN,
        user: str = DEFAULT_USER,
        orgs: tuple[str, ...] = DEFAULT_ORGS,
        verbose: bool = False,
    ):
        self.root = Path(root)
        self.storage = HubStorage(self.root / "storage")
        self.host, self.port = host, port
        self.token, self.user = token, user
        self.users: dict[str, dict] = {token: {"name": user, "orgs": list(orgs)}}
        self.verbose = verbose
        self.unhandled: list[str] = []
        self.requests: collections.deque[tuple[str, str, int]] = collections.deque(maxlen=10_000)
        self._server: _HubHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._ids = itertools.count(1)
        self.faults: list[dict] = []

    # -- lifecycle
    def start(self) -> "LocalHub":
        if self._server is None:
            self._server = _HubHTTPServer((self.host, self.port), HubRequestHandler)
            self._server.hub = self
            self.port = self._server.server_address[1]
            self._thread = threading.Thread(target=self._server.serve_forever, name="local-hub", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def serve_forever(self) -> None:
        self.start()
        self._thread.join()

    def __enter__(self) -> "LocalHub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def add_user(self, token: str, name: str, orgs: tuple[str, ...] = ()) -> None:
        self.users[token] = {"name": name, "orgs": list(orgs)}

    def fail(self, method: str, path: str, status: int = 503, message: str = "the local hub is down",
             after: int = 0, times: int | None = None) -> dict:
        """Fault injection: answer `status` to `method` requests whose URL path equals `path`, once `after` such
        requests have gone through normally, `times` times (`None`: every one after that; 1: a single failed
        request, e.g. one commit of several). Returns the rule (its "seen" counts matching requests, "failed" the
        failures it caused); remove it with `self.faults.remove(rule)`."""
        rule = {"method": method, "path": path, "status": status, "message": message, "after": after, "seen": 0,
                "times": times, "failed": 0}
        self.faults.append(rule)
        return rule

    def _injected_fault(self, method: str, path: str) -> "HubError | None":
        for rule in self.faults:
            if rule["method"] == method and rule["path"] == path:
                rule["seen"] += 1
                if rule["seen"] > rule["after"] and (rule["times"] is None or rule["failed"] < rule["times"]):
                    rule["failed"] += 1
                    return HubError(rule["status"], rule["message"])
        return None

    # -- server-side inspection (no HTTP)
    def new_repo_id(self, name: str, namespace: str | None = None) -> str:
        """A repo id not used before in this server's lifetime: '<user>/<name>-<n>'."""
        return f"{namespace or self.user}/{name}-{next(self._ids)}"

    def _repo_or_fail(self, repo_id: str, repo_type: str) -> dict:
        repo = self.storage.get_repo(repo_type, repo_id)
        if repo is None:
            raise KeyError(f"no {repo_type} repo {repo_id} on the local hub")
        return repo

    def head(self, repo_id: str, repo_type: str = "model", branch: str = "main") -> str:
        with self.storage.lock:
            return self._repo_or_fail(repo_id, repo_type)["branches"][branch]

    def commits(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> list[str]:
        """Commit shas reachable from `revision`, newest first (the last one is the initial commit)."""
        with self.storage.lock:
            repo = self._repo_or_fail(repo_id, repo_type)
            return self.storage.ancestry(repo, self.storage.resolve_revision(repo, revision))

    def files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> dict[str, dict]:
        """{path: {"size", "sha256", "lfs", "oid"}} at `revision`."""
        with self.storage.lock:
            repo = self._repo_or_fail(repo_id, repo_type)
            files = repo["commits"][self.storage.resolve_revision(repo, revision)]["files"]
            return {path: dict(entry) for path, entry in files.items()}

    def file_bytes(self, repo_id: str, path: str, repo_type: str = "model", revision: str = "main") -> bytes:
        return self.storage.read_blob(self.files(repo_id, repo_type, revision)[path]["sha256"])

    # -- copying repos between servers (e.g. published once, shared by several test processes)
    def export_repos(self, repos: dict[str, str], folder: str | os.PathLike) -> None:
        """Copy `repos` (`{repo_id: repo_type}`), every commit and blob of them, into `folder`."""
        out = HubStorage(folder)
        with self.storage.lock:
            for repo_id, repo_type in repos.items():
                repo = self._repo_or_fail(repo_id, repo_type)
                for commit in repo["commits"].values():
                    for entry in commit["files"].values():
                        out.put_blob(self.storage.read_blob(entry["sha256"]))
                out.save_repo(repo)

    def import_repos(self, folder: str | os.PathLike) -> None:
        """Serve the repos `export_repos` wrote into `folder` (as they are: same commits, same shas)."""
        source = HubStorage(folder)
        with self.storage.lock:
            for blob in (source.root / "blobs").glob("*/*"):
                self.storage.put_blob(blob.read_bytes())
            for path in (source.root / "repos").glob("*/**/repo.json"):
                self.storage.save_repo(json.loads(path.read_text()))

    # -- client processes
    def env(self, hf_home: str | os.PathLike | None = None, token: str | None = None, **extra: str) -> dict[str, str]:
        """Environment for a fresh client process that talks to this server (set before any HF import)."""
        env = {k: v for k, v in os.environ.items() if k not in _ENV_TO_DROP}
        if hf_home is None:
            hf_home = tempfile.mkdtemp(prefix="hf_home_", dir=self.root)
        repo_root = str(Path(__file__).resolve().parents[2])
        env.update(
            HF_ENDPOINT=self.url,
            HF_TOKEN=self.token if token is None else token,
            HF_HOME=str(hf_home),
            HF_HUB_DISABLE_XET="1",
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_DISABLE_PROGRESS_BARS="1",
            HF_HUB_DISABLE_IMPLICIT_TOKEN="0",
            HF_DATASETS_DISABLE_PROGRESS_BARS="1",
            DISABLE_TELEMETRY="1",
            TOKENIZERS_PARALLELISM="false",
            PYTHONPATH=os.pathsep.join(p for p in (repo_root, env.get("PYTHONPATH")) if p),
        )
        env.setdefault("OMP_NUM_THREADS", "1")
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def run_python(self, code: str | os.PathLike, *, args=(), **run_kwargs) -> ClientRun:
        """Run Python in a fresh interpreter wired to this server; `emit(obj)` is defined (also as a builtin).

        `code` is source text (dedented) or the path of a script (run as `__main__` with `sys.argv = [path, *args]`).
        `run_kwargs` (`hf_home`, `token`, `env`, `timeout`, `check`, `cwd`) go to `run_command`.
        """
        return self.spawn_python(code, args=args, **run_kwargs).wait()

    def run_command(self, argv: list[str], **run_kwargs) -> ClientRun:
        """Run any command (`[sys.executable, "-m", "hf_w2s.cli", ...]`) with `self.env()`; see `spawn_command`."""
        return self.spawn_command(argv, **run_kwargs).wait()

    def spawn_python(self, code: str | os.PathLike, *, args=(), **run_kwargs) -> "PendingRun":
        """`run_python` without waiting: start the process now, collect it with `.wait()` (runs side by side)."""
        if isinstance(code, os.PathLike):
            script = _CLIENT_PRELUDE + (
                f"import runpy\n_local_hub_sys.argv = [{os.fspath(code)!r}] + _local_hub_sys.argv[1:]\n"
                f"runpy.run_path({os.fspath(code)!r}, run_name='__main__')\n"
            )
        else:
            script = _CLIENT_PRELUDE + textwrap.dedent(code)
        return self.spawn_command([sys.executable, "-c", script, *args], **run_kwargs)

    def spawn_command(
        self,
        argv: list[str],
        *,
        hf_home: str | os.PathLike | None = None,
        token: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 300,
        check: bool = True,
        cwd: str | os.PathLike | None = None,
    ) -> "PendingRun":
        """Start `argv` with `self.env(hf_home, token)` updated by `env`; `.wait()` gives the `ClientRun`."""
        full_env = self.env(hf_home=hf_home, token=token)
        full_env.update(env or {})
        proc = subprocess.Popen(argv, env=full_env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return PendingRun(self, proc, timeout, check)


@dataclass
class PendingRun:
    """A client process started by `LocalHub.spawn_*`."""

    hub: LocalHub
    proc: subprocess.Popen
    timeout: float
    check: bool

    def wait(self) -> ClientRun:
        try:
            stdout, stderr = self.proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            stdout, stderr = self.proc.communicate()
            stderr += f"\n[local-hub] client process killed after {self.timeout} s\n"
        lines = stdout.splitlines()
        results = [json.loads(line[len(EMIT_MARKER) :]) for line in lines if line.startswith(EMIT_MARKER)]
        run = ClientRun(self.proc.returncode, stdout, stderr, results)
        if self.check and self.proc.returncode != 0:
            unhandled = "\n".join(self.hub.unhandled) or "(none)"
            raise AssertionError(
                f"client process failed with exit code {self.proc.returncode}\n"
                f"--- stderr (tail) ---\n{stderr[-6000:]}\n--- stdout (tail) ---\n{stdout[-2000:]}\n"
                f"--- routes the local hub did not handle ---\n{unhandled}"
            )
        return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local Hugging Face Hub test server (stdlib only).")
    parser.add_argument("--root", required=True, help="Directory where repos and blobs are stored.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port.")
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--user", default=DEFAULT_USER)
    parser.add_argument("--orgs", default=",".join(DEFAULT_ORGS), help="Comma-separated orgs the user can write to.")
    parser.add_argument("--verbose", action="store_true", help="Log every request to stderr.")
    args = parser.parse_args(argv)
    orgs = tuple(o for o in args.orgs.split(",") if o)
    hub = LocalHub(
        args.root, host=args.host, port=args.port, token=args.token, user=args.user, orgs=orgs, verbose=args.verbose
    )
    hub.start()
    print(f"LOCAL_HUB_URL={hub.url}", flush=True)
    try:
        hub.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        hub.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
