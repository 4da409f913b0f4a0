"""Webhook delivery against real local HTTP servers on 127.0.0.1 (one thread each)."""
from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest

from pipeline.io.webhook import failure_dead_letter, post_alert, post_alerts
from transforms.spike_rules import WebhookSpec
from transforms.records import Alert

ALERT = Alert(topic="raqqa-offensive", window_start="2017-10-15T13:00:00Z", window_end="2017-10-15T14:00:00Z",
              count=9, baseline=2.0, score=4.5, rule="ratio", articles=("a1", "a3"), at="2017-10-15T14:00:00Z")


class Server:
    """A local server answering each POST with the next status of `statuses` (the last repeats)."""

    def __init__(self, statuses: list[int], headers: dict[str, str] | None = None) -> None:
        self.statuses = statuses
        self.bodies: list[Any] = []
        self.request_headers: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                server.bodies.append(json.loads(body))
                server.request_headers.append(dict(self.headers))
                status = server.statuses[min(len(server.bodies) - 1, len(server.statuses) - 1)]
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook/SECRET-TOKEN"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> "Server":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def waits() -> Iterator[list[float]]:
    yield []


def test_delivers_alert_json(waits: list[float]) -> None:
    with Server([204]) as server:
        spec = WebhookSpec(url=server.url, headers=(("Authorization", "Bearer t"),))
        result = post_alert(ALERT, spec, sleep=waits.append)
    assert (result.ok, result.attempts, result.status, result.error) == (True, 1, 204, None)
    assert server.bodies == [ALERT.to_json()]
    assert server.request_headers[0]["Content-Type"].startswith("application/json")
    assert server.request_headers[0]["Authorization"] == "Bearer t"
    assert waits == []


def test_server_that_fails_twice_then_succeeds(waits: list[float]) -> None:
    with Server([500, 503, 200]) as server:
        result = post_alert(ALERT, WebhookSpec(url=server.url, retries=3, backoff=0.5), sleep=waits.append)
    assert (result.ok, result.attempts, result.status) == (True, 3, 200)
    assert len(server.bodies) == 3 and all(b == ALERT.to_json() for b in server.bodies)
    assert waits == [0.5, 1.0]                       # exponential backoff between attempts


def test_server_that_always_fails_gives_a_final_failure(waits: list[float]) -> None:
    with Server([500]) as server:
        spec = WebhookSpec(url=server.url, retries=2, backoff=0.1)
        result = post_alert(ALERT, spec, sleep=waits.append)
    assert (result.ok, result.attempts, result.status) == (False, 3, 500)
    assert result.error is not None and "HTTP 500" in result.error
    assert len(server.bodies) == 3 and len(waits) == 2
    letter = failure_dead_letter(ALERT, result, spec, at="2017-10-15T14:01:00Z")
    assert letter.stage == "webhook" and "after 3 attempts: HTTP 500" in letter.error
    assert letter.source == "http://127.0.0.1" and "SECRET-TOKEN" not in letter.to_json().values()
    assert json.loads(letter.raw) == ALERT.to_json()


def test_client_error_is_not_retried(waits: list[float]) -> None:
    with Server([400]) as server:
        result = post_alert(ALERT, WebhookSpec(url=server.url, retries=3), sleep=waits.append)
    assert (result.ok, result.attempts, result.status) == (False, 1, 400)
    assert waits == []


def test_retry_after_is_honoured(waits: list[float]) -> None:
    with Server([429, 200], headers={"Retry-After": "2"}) as server:
        result = post_alert(ALERT, WebhookSpec(url=server.url, retries=1, backoff=0.1), sleep=waits.append)
    assert result.ok and result.attempts == 2 and waits == [2.0]


def test_unreachable_server_is_a_result_not_an_exception(waits: list[float]) -> None:
    with socket.socket() as sock:                     # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = post_alert(ALERT, WebhookSpec(url=f"http://127.0.0.1:{port}/", retries=1, timeout=2.0),
                        sleep=waits.append)
    assert not result.ok and result.status is None and result.attempts == 2
    assert result.error is not None and "ConnectionError" in result.error


def test_post_alerts_gives_one_result_per_alert(waits: list[float]) -> None:
    other = Alert(**{**ALERT.to_json(), "topic": "other", "articles": ()})
    with Server([200]) as server:
        results = post_alerts([ALERT, other], WebhookSpec(url=server.url), sleep=waits.append)
    assert [(a.topic, r.ok) for a, r in results] == [("raqqa-offensive", True), ("other", True)]
    assert [b["topic"] for b in server.bodies] == ["raqqa-offensive", "other"]
