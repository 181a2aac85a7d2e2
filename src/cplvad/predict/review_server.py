"""``cplvad report OUT --serve``: the review page over HTTP on 127.0.0.1, saving the verdicts as they are made.

The folder is served as it is (the page, its clips, the timelines); ``GET /verdicts`` returns
``OUT/verdicts.json`` and ``POST /verdicts`` replaces it (atomically) with the page's verdicts, which the page
sends after every click. Only a JSON document of schema ``cplvad-verdicts/1`` is accepted, of at most
``MAX_BODY`` bytes. The static page works the same without the server (local storage and export).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cplvad.io import write_text
from cplvad.predict.review_page import VERDICTS_FILE, VERDICTS_SCHEMA

MAX_BODY = 16 * 2**20


class _Handler(SimpleHTTPRequestHandler):
    log: Callable[[str], None] = print

    def _verdicts_path(self) -> Path:
        return Path(self.directory) / VERDICTS_FILE

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.split("?")[0] != "/verdicts":
            super().do_GET()
            return
        path = self._verdicts_path()
        if not path.is_file():
            self.send_error(HTTPStatus.NOT_FOUND, "no verdicts saved yet")
            return
        self._reply(HTTPStatus.OK, path.read_bytes())

    def do_POST(self) -> None:  # noqa: N802
        if self.path.split("?")[0] != "/verdicts":
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY:
            self.send_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE if length else HTTPStatus.LENGTH_REQUIRED)
            return
        try:
            doc = json.loads(self.rfile.read(length))
        except (ValueError, UnicodeDecodeError):
            self.send_error(HTTPStatus.BAD_REQUEST, "not JSON")
            return
        if not isinstance(doc, dict) or doc.get("schema") != VERDICTS_SCHEMA:
            self.send_error(HTTPStatus.BAD_REQUEST, f"not a {VERDICTS_SCHEMA} document")
            return
        write_text(self._verdicts_path(), json.dumps(doc, indent=2) + "\n")
        self.log(f"saved {len(doc.get('videos') or [])} video(s) of verdicts to {self._verdicts_path()}")
        self._reply(HTTPStatus.OK, b'{"saved": true}\n')

    def _reply(self, status: HTTPStatus, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass  # one line per saved document (above), not per request


def review_server(
    folder: str | Path, port: int = 0, log: Callable[[str], None] = print
) -> ThreadingHTTPServer:
    """A server for ``folder`` on 127.0.0.1:``port`` (0: any free port), not yet serving: call
    ``serve_forever`` (and ``shutdown``); its address is ``server_address``."""
    handler = type("ReviewHandler", (_Handler,), {"log": staticmethod(log)})
    return ThreadingHTTPServer(("127.0.0.1", port), partial(handler, directory=str(Path(folder).resolve())))
