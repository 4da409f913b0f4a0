"""Every real feed and every feedparser test feed, served over local HTTP, through `mediamon run`.

For each file, every entry feedparser finds must end as an article, a duplicate or a dead
letter; a file that cannot be used at all counts as one item and one dead letter.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import feedparser
import pytest

from pipeline.cli import main
from tests.feedserver import FeedServer, Route

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
FOLDERS = ["feeds", "feedparser-tests"]


def corpus_files() -> list[Path]:
    files = []
    for folder in FOLDERS:
        root = CORPUS / folder
        files += [p for p in sorted(root.rglob("*")) if p.is_file() and p.suffix in (".xml", ".rss", ".atom", ".rdf")]
    return files


@pytest.mark.slow
def test_every_corpus_feed_is_accounted_for(tmp_path: Path, feed_server: FeedServer) -> None:
    if not CORPUS.exists():
        pytest.skip(f"corpus not present at {CORPUS}")
    files = corpus_files()
    assert len(files) > 2000
    expected: dict[str, int] = {}
    feeds = []
    for i, path in enumerate(files):
        name = str(path.relative_to(CORPUS))
        body = path.read_bytes()
        # no charset in the header: the document's own declaration decides, as for a file
        feed_server.route(f"/f{i}", Route(body=body, content_type="application/xml"))
        expected[name] = len(feedparser.parse(body).entries)
        feeds.append({"url": feed_server.url(f"/f{i}"), "name": name})
    cfg = tmp_path / "corpus.yaml"
    cfg.write_text(json.dumps({
        "name": "corpus",
        "sources": {"feeds": feeds},
        "fetch": {"per_host_delay": "0s", "concurrency": 16, "timeout": "20s"},
        "sinks": [{"type": "jsonl", "path": "articles.jsonl", "what": "articles"},
                  {"type": "jsonl", "path": "dead.jsonl", "what": "dead_letters"}],
    }), encoding="utf-8")
    summary_path = tmp_path / "summary.json"
    assert main(["run", str(cfg), "--quiet", "--summary", str(summary_path)]) == 0
    summary = json.loads(summary_path.read_text())
    assert summary["items_read"] == summary["articles"] + summary["duplicates"] + summary["dead_letters"]

    articles = Counter(json.loads(line)["source"] for line in (tmp_path / "articles.jsonl").open(encoding="utf-8"))
    dead_lines = [json.loads(line) for line in (tmp_path / "dead.jsonl").open(encoding="utf-8")]
    dead = Counter(d["source"] for d in dead_lines)
    unusable = {d["source"] for d in dead_lines if d["error"].startswith(("feed unusable", "HTTP", "fetch"))}
    assert len(unusable) < 0.01 * len(files), sorted(unusable)  # refusals are rare and named

    missing_total = 0
    for name, entries in expected.items():
        if name in unusable:
            assert articles[name] == 0 and dead[name] == 1, name     # one item, one dead letter
            continue
        accounted = articles[name] + dead[name]
        assert accounted <= entries, (name, accounted, entries)
        missing_total += entries - accounted                        # can only be duplicates
    assert missing_total == summary["duplicates"]
    assert summary["items_read"] == sum(v for k, v in expected.items() if k not in unusable) + len(unusable)
