"""Feeds through the CLI: OPML + feeds fetched once, `feeds status`, 410 and errors accounted."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.cli import main
from tests.feedserver import FeedServer, Route

RSS = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
       b'<item><title>Raqqa battle</title><link>https://x.example/1</link></item>'
       b'<item><title>Market prices</title><link>https://x.example/2</link></item></channel></rss>')


def test_opml_and_feeds_share_urls_fetched_once_and_status_reports_health(
        tmp_path: Path, feed_server: FeedServer, capsys: pytest.CaptureFixture[str]) -> None:
    feed_server.route("/a.xml", Route(body=RSS, etag='"1"'))
    feed_server.route("/gone.xml", Route(status=410))
    feed_server.route("/broken.xml", Route(status=500))
    (tmp_path / "list.opml").write_text(f"""<?xml version="1.0"?>
<opml version="2.0"><head><title>x</title></head><body>
  <outline text="Syria"><outline text="Wire A" type="rss" xmlUrl="{feed_server.url('/a.xml')}"/>
    <outline text="Nested"><outline text="Gone" type="rss" xmlUrl="{feed_server.url('/gone.xml')}"/></outline>
  </outline></body></opml>""", encoding="utf-8")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"""
sources:
  feeds:
    - {{url: "{feed_server.url('/a.xml')}", name: wire-a}}
    - {{url: "{feed_server.url('/broken.xml')}", name: broken}}
  opml: list.opml
fetch: {{per_host_delay: 0s}}
state: {{path: state.db}}
sinks: [{{type: jsonl, path: dead.jsonl, what: dead_letters}}]
""", encoding="utf-8")
    assert main(["run", str(cfg), "--quiet", "--summary", str(tmp_path / "s.json")]) == 0
    assert len(feed_server.seen("/a.xml")) == 1                    # listed twice, fetched once
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["articles"] == 2
    assert summary["dead_letters"] == 2                            # the 500 and the 410
    assert summary["items_read"] == 4
    dead = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert sorted(d["stage"] for d in dead) == ["fetch", "fetch"]
    assert any("410" in d["error"] for d in dead) and any("500" in d["error"] for d in dead)
    capsys.readouterr()
    assert main(["feeds", "status", str(cfg)]) == 0
    status = capsys.readouterr().out
    lines = {line.split()[0]: line for line in status.splitlines()[1:] if line.strip()}
    assert "retired" in lines["Gone"] and "410" in lines["Gone"], status
    assert "500" in lines["broken"], status
    # second run: the 410 feed is retired (skipped, no new dead letter), a.xml answers 304
    assert main(["run", str(cfg), "--quiet", "--summary", str(tmp_path / "s2.json")]) == 0
    second = json.loads((tmp_path / "s2.json").read_text())
    assert second["articles"] == 0 and second["items_read"] == second["dead_letters"]
    assert feed_server.seen("/a.xml")[-1].headers.get("If-None-Match") == '"1"'
    assert len(feed_server.seen("/gone.xml")) == 1
