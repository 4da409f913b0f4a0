"""A local HTTP server (127.0.0.1, free port, own thread) that serves feeds with each behaviour a
feed fetcher must survive: files, 304 with ETag/Last-Modified, lying ETags, redirects of each
kind, 410, 429/503 with Retry-After, slow drip, endless body, wrong charset header, gzip, bombs.

    server = FeedServer().start()
    server.route("/a.xml", Route(body=b"<rss ...>", etag='"v1"'))
    server.route("/moved", Route(status=301, location="/a.xml"))
    server.route("/busy", Route(status=429, headers={"Retry-After": "120"}), Route(body=b"..."))
    fetch(server.url("/a.xml")); server.requests  # what the client sent
    server.stop()

A path may have several routes: each request takes the next, the last one repeats.
"""
from __future__ import annotations

import gzip as gzip_module
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "application/rss+xml; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None                 # sent as ETag
    last_modified: str | None = None        # sent as Last-Modified
    honour_conditional: bool = True         # answer 304 when If-None-Match / -Modified-Since match
    location: str | None = None             # for 3xx: a path on this server or an absolute URL
    gzip: bool = False                      # Content-Encoding: gzip
    drip: float = 0.0                       # seconds between single bytes of the body
    endless: bool = False                   # body never ends (until the client hangs up)
    stall_after: int | None = None          # send this many bytes, no Content-Length, then stall
    stall: float = 0.0                      # ... for this long (or until the client hangs up)

    def encoded(self) -> bytes:
        if self.gzip:
            cached = getattr(self, "_gzipped", None)
            if cached is None:
                cached = gzip_module.compress(self.body, compresslevel=9)
                object.__setattr__(self, "_gzipped", cached)
            return cached
        return self.body


@dataclass(frozen=True)
class SeenRequest:
    path: str
    headers: dict[str, str]


class FeedServer:
    def __init__(self) -> None:
        self._routes: dict[str, list[Route]] = {}
        self._served: dict[str, int] = {}
        self._lock = threading.Lock()
        self.requests: list[SeenRequest] = []
        self.stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- configuration ----------------------------------------------------------------------
    def route(self, path: str, *routes: Route) -> str:
        """Serve `routes` at `path` (in turn; the last repeats). Returns the full URL."""
        with self._lock:
            self._routes[path] = list(routes) or [Route()]
            self._served[path] = 0
        return self.url(path)

    def file(self, path: str, source: Path, **options: object) -> str:
        """Serve a file's bytes at `path`; options as for Route."""
        return self.route(path, Route(body=source.read_bytes(), **options))  # type: ignore[arg-type]

    def url(self, path: str) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{path}"

    def seen(self, path: str) -> list[SeenRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> "FeedServer":
        server = self

        class Handler(_Handler):
            feed_server = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        name="feedserver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> "FeedServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next_route(self, path: str) -> Route | None:
        with self._lock:
            routes = self._routes.get(path)
            if routes is None:
                return None
            index = min(self._served[path], len(routes) - 1)
            self._served[path] += 1
            return routes[index]


class _Handler(BaseHTTPRequestHandler):
    feed_server: FeedServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass                                                     # keep test output quiet

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        server = self.feed_server
        path = self.path.split("?", 1)[0]
        with server._lock:
            server.requests.append(SeenRequest(path, {k: v for k, v in self.headers.items()}))
        route = server._next_route(path)
        if route is None:
            self._simple(404, b"not found")
            return
        if route.location is not None:
            location = route.location
            if location.startswith("/"):
                location = server.url(location)
            self.send_response(route.status)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if route.status == 200 and route.honour_conditional and self._not_modified(route):
            self.send_response(304)
            self._validators(route)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = route.encoded()
        self.send_response(route.status)
        self.send_header("Content-Type", route.content_type)
        self._validators(route)
        for name, value in route.headers.items():
            self.send_header(name, value)
        if route.gzip:
            self.send_header("Content-Encoding", "gzip")
        if route.endless:
            self.send_header("Connection", "close")
            self.end_headers()
            self._endless(body or b"<item><title>x</title></item>\n")
            return
        if route.stall_after is not None:
            self.send_header("Connection", "close")
            self.end_headers()
            self._stall(body, route.stall_after, route.stall)
            return
        self.send_header("Content-Length", str(len(body)))
        if route.drip:
            self.send_header("Connection", "close")
        self.end_headers()
        if route.drip:
            self._drip(body, route.drip)
        else:
            self.wfile.write(body)

    def _not_modified(self, route: Route) -> bool:
        if_none_match = self.headers.get("If-None-Match")
        if route.etag is not None and if_none_match is not None:
            return if_none_match == route.etag
        since = self.headers.get("If-Modified-Since")
        return route.last_modified is not None and since == route.last_modified

    def _validators(self, route: Route) -> None:
        if route.etag is not None:
            self.send_header("ETag", route.etag)
        if route.last_modified is not None:
            self.send_header("Last-Modified", route.last_modified)

    def _simple(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _endless(self, chunk: bytes) -> None:
        block = chunk * max(1, 65536 // len(chunk))
        try:
            while not self.feed_server.stopping.is_set():
                self.wfile.write(block)
        except (BrokenPipeError, ConnectionResetError):
            pass                                  # the client hung up: what we expect
        self.close_connection = True

    def _stall(self, body: bytes, after: int, seconds: float) -> None:
        """Part of a body without Content-Length, then silence: only the client's deadline
        ends it, and the end of the connection must not look like the end of the body."""
        try:
            self.wfile.write(body[:after])
            self.wfile.flush()
            ends = time.monotonic() + seconds
            while time.monotonic() < ends and not self.feed_server.stopping.is_set():
                time.sleep(0.05)
            self.wfile.write(body[after:])
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def _drip(self, body: bytes, delay: float) -> None:
        try:
            for i in range(len(body)):
                if self.feed_server.stopping.is_set():
                    break
                self.wfile.write(body[i:i + 1])
                self.wfile.flush()
                time.sleep(delay)
        except (BrokenPipeError, ConnectionResetError):
            pass                                  # the client gave up: what we expect
        self.close_connection = True
