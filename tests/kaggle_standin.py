"""A stand-in for Kaggle's API on 127.0.0.1, for the real `kaggle` client.

The client is told to talk to http://localhost (KAGGLE_API_ENVIRONMENT=LOCALHOST, read when the
kaggle package is imported: conftest sets it) and reaches it through HTTP_PROXY, which points
here; so every request arrives with its absolute URL, on a port of our choosing. It serves what
our commands use: the competition archive (redirect, Range requests, a broken-off transfer on
demand), the submission upload and list, dataset uploads and kernel pushes; and it refuses a
competition whose rules were not accepted."""
from __future__ import annotations

import json
import threading
from base64 import b64encode
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

USER, KEY, TOKEN = "tester", "0123456789abcdef", "KGAT_0123456789abcdef"  # the one account it knows


@dataclass
class Kaggle:
    archives: dict = field(default_factory=dict)   # slug -> the bytes of its data archive
    not_joined: set = field(default_factory=set)   # slugs whose rules this user has not accepted
    break_off: bool = False                          # send half of an archive, then hang up
    uploads: dict = field(default_factory=dict)     # upload token -> {"name": file name, "bytes": received}
    submissions: list = field(default_factory=list)
    datasets: dict = field(default_factory=dict)    # owner/slug -> [{file name: bytes} per version]
    kernels: list = field(default_factory=list)     # SaveKernel requests
    calls: list = field(default_factory=list)       # (method, path) of every request
    port: int = 0


def serve(state: Kaggle):
    """Start the server in a thread; returns (server, proxy URL)."""
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
            self.send_response(status)
            for k, v in {"Content-Length": str(len(body)), **(headers or {})}.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, obj: dict, status: int = 200) -> None:
            self._send(status, json.dumps(obj).encode(), {"Content-Type": "application/json"})

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_POST(self):
            path = urlsplit(self.path).path
            state.calls.append(("POST", path))
            request = json.loads(self._body() or b"{}")
            call, slug = path.rsplit("/", 1)[-1], request.get("competitionName")
            if self.headers.get("Authorization") not in (f"Bearer {TOKEN}", "Basic " + b64encode(
                    f"{USER}:{KEY}".encode()).decode()):
                return self._json({"code": 401, "message": "Unauthenticated"}, 401)
            if call == "IntrospectToken":
                return self._json({"active": request["token"] == TOKEN, "username": USER})
            if call == "GetDatasetStatus":
                ref = f"{request['ownerSlug']}/{request['datasetSlug']}"
                if ref not in state.datasets:
                    return self._json({"code": 404, "message": "Dataset not found"}, 404)
                return self._json({"status": "READY"})
            if call in ("StartBlobUpload", "StartSubmissionUpload"):
                token = f"upload{len(state.uploads)}"
                state.uploads[token] = {"name": request.get("name") or request.get("fileName"), "bytes": None}
                return self._json({"token": token, "createUrl": f"http://localhost/upload/{token}"})
            if call in ("CreateDataset", "CreateDatasetVersion"):
                ref = (f"{request['ownerSlug']}/{request['slug']}" if call == "CreateDataset"
                       else f"{request['ownerSlug']}/{request['datasetSlug']}")
                files = {state.uploads[f["token"]]["name"]: state.uploads[f["token"]]["bytes"]
                         for f in (request.get("files") or request.get("body", {}).get("files", []))}
                state.datasets.setdefault(ref, []).append(files)
                return self._json({"ref": ref, "url": f"http://localhost/datasets/{ref}", "status": "Ok"})
            if call == "SaveKernel":
                state.kernels.append(request)
                return self._json({"ref": request["slug"], "url": f"http://localhost/code/{request['slug']}",
                                   "versionNumber": len(state.kernels)})
            if slug in state.not_joined:
                return self._json({"code": 403, "message": "You must accept this competition's rules"}, 403)
            if call == "DownloadDataFiles":
                if slug not in state.archives:
                    return self._json({"code": 404, "message": "Competition not found"}, 404)
                return self._send(302, headers={"Location": f"http://localhost/files/{slug}.zip"})
            if call == "CreateSubmission":
                ref = 1000 + len(state.submissions)
                upload = state.uploads[request["blobFileTokens"]]
                state.submissions.append({"ref": ref, "file_name": upload["name"], "bytes": upload["bytes"],
                                          "description": request.get("submissionDescription", "")})
                return self._json({"message": "Successfully submitted", "ref": ref})
            if call == "ListSubmissions":
                rows = [{"ref": s["ref"], "date": "2026-11-24T10:00:00.000Z", "description": s["description"],
                         "fileName": s.get("file_name", "submission.csv"), "status": "COMPLETE",
                         "publicScore": s.get("public", ""), "privateScore": s.get("private", "")}
                        for s in reversed(state.submissions)]
                return self._json({"submissions": rows, "nextPageToken": ""})
            self._json({"code": 404, "message": f"no such call {call}"}, 404)

        def do_PUT(self):
            path = urlsplit(self.path).path
            state.calls.append(("PUT", path))
            state.uploads[path.rsplit("/", 1)[-1]]["bytes"] = self._body()
            self._json({})

        def do_GET(self):
            path = urlsplit(self.path).path
            state.calls.append(("GET", path))
            data = state.archives.get(path.removeprefix("/files/").removesuffix(".zip"))
            if data is None:
                return self._send(404)
            start = 0
            if self.headers.get("Range", "").startswith("bytes="):
                start = int(self.headers["Range"][6:].split("-")[0])
            headers = {"Content-Type": "application/zip", "Accept-Ranges": "bytes", "ETag": f'"{hash(data)}"',
                       "Last-Modified": formatdate(1700000000, usegmt=True)}
            self.send_response(206 if start else 200)
            for k, v in {**headers, "Content-Length": str(len(data) - start)}.items():
                self.send_header(k, v)
            self.end_headers()
            if state.break_off:
                self.wfile.write(data[start:start + (len(data) - start) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(data[start:])

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{state.port}"
