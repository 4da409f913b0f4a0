"""Spike alerts inside the batch job: alert records with evidence, webhook, dead letters."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from pipeline.cli import main


@pytest.fixture
def hook() -> Iterator[tuple[str, list[dict]]]:
    received: list[dict] = []
    failures = {"left": 2}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if failures["left"] > 0:
                failures["left"] -= 1
                self.send_response(503)
            else:
                received.append(json.loads(body))
                self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()


def spike_items(path: Path) -> None:
    with path.open("w", encoding="utf-8") as out:
        n = 0
        for hour in range(8):
            for minute in range(1 if hour < 6 else 6):
                n += 1
                out.write(json.dumps({"title": f"Battle for Raqqa, update {n}", "source": "wire",
                                      "published": f"2017-10-15T{hour:02d}:{minute:02d}:00Z"}) + "\n")


def config(tmp_path: Path, webhook: str, state: bool) -> Path:
    spike_items(tmp_path / "items.jsonl")
    path = tmp_path / "alerts.yaml"
    path.write_text(f"""
sources: {{jsonl: items.jsonl}}
topics: [{{id: raqqa, query: 'Raqqa AND battle'}}]
windows: {{size: 1h}}
{"state: {path: state.db}" if state else ""}
alerts:
  rules: [{{type: ratio, previous: 4, margin: 2, min_count: 3, cooldown: 2h}}]
  webhook: {{url: "{webhook}", retries: 3, timeout: 5s, backoff: 0s}}
sinks:
  - {{type: jsonl, path: alerts.jsonl, what: alerts}}
  - {{type: jsonl, path: dead.jsonl, what: dead_letters}}
""", encoding="utf-8")
    return path


@pytest.mark.parametrize("state", [False, True], ids=["stateless", "with-state"])
def test_a_step_raises_one_alert_with_its_articles_and_posts_it(
        tmp_path: Path, hook: tuple[str, list[dict]], state: bool) -> None:
    url, received = hook
    cfg = config(tmp_path, url, state)
    assert main(["run", str(cfg), "--quiet"]) == 0
    alerts = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert len(alerts) == 1  # the 07:00 window is inside the 2h cool-down
    [alert] = alerts
    assert (alert["topic"], alert["window_start"], alert["count"], alert["rule"]) == \
        ("raqqa", "2017-10-15T06:00:00Z", 6, "ratio")
    assert alert["baseline"] == 1.0 and len(alert["articles"]) == 6
    assert received == alerts  # delivered on the third attempt, after two 503s
    assert (tmp_path / "dead.jsonl").read_text() == ""


@pytest.mark.parametrize("state", [False, True], ids=["stateless", "with-state"])
def test_undeliverable_alert_becomes_a_dead_letter(tmp_path: Path, state: bool) -> None:
    cfg = config(tmp_path, "http://127.0.0.1:9/closed", state=state)
    assert main(["run", str(cfg), "--quiet"]) == 0
    [dead] = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert dead["stage"] == "webhook" and dead["source"] == "http://127.0.0.1"
    assert json.loads(dead["raw"])["window_start"] == "2017-10-15T06:00:00Z"
