"""Issue 14: no input can crash, wedge or blow up a run (whole runs, in process)."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main
from transforms.parse import MAX_ITEM_BYTES
from transforms.timeutil import from_epoch

GOOD = {"title": "Raqqa battle enters its final week", "url": "https://example.org/good",
        "published": "2017-10-15T09:30:00Z"}


def hostile_lines() -> list[bytes]:
    """One good line and every JSONL line the issue reports as killing or wedging a run."""
    return [
        json.dumps(GOOD).encode(),
        json.dumps({"title": "far future", "url": "https://example.org/9999",
                    "published": "9999-12-31T23:59:59Z"}).encode(),
        json.dumps({"title": "year one", "url": "https://example.org/0001",
                    "published": "0001-01-01T00:00:00Z"}).encode(),
        b'{"title": "Raqqa \\ud800", "url": "https://example.org/surrogate"}',
        b"[" * 100_000,
        json.dumps({"title": "huge", "summary": "x" * (MAX_ITEM_BYTES + 10)}).encode(),
        json.dumps({"title": "ipv6 story", "url": "http://[2001:db8::1]/story",
                    "published": "2017-10-15T10:00:00Z"}).encode(),
    ]


def write_config(tmp: Path, lines: list[bytes], state: bool, extra: str = "") -> Path:
    (tmp / "items.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    cfg = tmp / "hostile.yaml"
    cfg.write_text(f"""
name: hostile
sources:
  jsonl: items.jsonl
{extra}
language: {{allowed: [en, ar]}}
topics:
  - {{id: raqqa, query: 'Raqqa'}}
keywords:
  - {{id: raqqa, forms: [Raqqa]}}
windows: {{size: 1h}}
{"state: {path: state/store.db}" if state else ""}
sinks:
  - {{type: jsonl, path: out/articles.jsonl, what: articles}}
  - {{type: jsonl, path: out/counts.jsonl, what: counts}}
  - {{type: jsonl, path: out/dead.jsonl, what: dead_letters}}
""", encoding="utf-8")
    return cfg


def run(cfg: Path, tmp: Path) -> dict[str, Any]:
    summary = tmp / "summary.json"
    assert main(["run", str(cfg), "--quiet", "--summary", str(summary)]) == 0
    data: dict[str, Any] = json.loads(summary.read_text(encoding="utf-8"))
    assert data["items_read"] == data["articles"] + data["duplicates"] + data["dead_letters"] + data["late"]
    return data


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_hostile_jsonl_lines_are_dead_letters_and_the_run_goes_on(tmp_path: Path) -> None:
    s = run(write_config(tmp_path, hostile_lines(), state=False), tmp_path)
    assert s["items_read"] == 7
    assert s["articles"] == 2                    # the good line and the IPv6 one
    assert s["dead_letters"] == 5
    assert s["dead_letters_by_stage"] == {"parse": 5}
    errors = sorted(d["error"] for d in read_jsonl(tmp_path / "out" / "dead.jsonl"))
    assert sum("out of range" in e for e in errors) == 2
    assert any("surrogate" in e for e in errors)
    assert any("nested too deeply" in e for e in errors)
    assert any("too large" in e for e in errors)
    urls = {a["url"] for a in read_jsonl(tmp_path / "out" / "articles.jsonl")}
    assert urls == {"https://example.org/good", "https://[2001:db8::1]/story"}


def test_out_of_range_dates_never_poison_the_state_store(tmp_path: Path) -> None:
    """Year 9999 / 0001 once made every later run fail in the recount, even after the input
    was removed; now they never reach the store, and runs after them work."""
    cfg = write_config(tmp_path, hostile_lines(), state=True)
    first = run(cfg, tmp_path)
    assert first["articles"] == 2 and first["dead_letters"] == 5
    second = run(cfg, tmp_path)                  # the same input again: all known
    assert second["articles"] == 0 and second["duplicates"] == 2
    db = sqlite3.connect(tmp_path / "state" / "store.db")
    try:
        published = [row[0] for row in db.execute("SELECT published FROM stored_articles")]
    finally:
        db.close()
    assert sorted(from_epoch(float(p)) for p in published) == ["2017-10-15T09:30:00Z",
                                                               "2017-10-15T10:00:00Z"]


def test_feed_entry_with_year_9999_falls_back_to_fetch_time(tmp_path: Path) -> None:
    feed = tmp_path / "feed.xml"
    feed.write_text('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>f'
                    '</title><item><title>Raqqa far future</title><link>https://example.org/f</link>'
                    '<pubDate>Fri, 31 Dec 9999 12:00:00 GMT</pubDate></item><item><title>Raqqa year '
                    'one</title><link>https://example.org/o</link><pubDate>Mon, 01 Jan 0001 00:00:00 '
                    'GMT</pubDate></item></channel></rss>', encoding="utf-8")
    cfg = write_config(tmp_path, [json.dumps(GOOD).encode()], state=True,
                       extra="  feeds:\n    - {url: feed.xml, name: f}")
    s = run(cfg, tmp_path)
    assert s["articles"] == 3 and s["dead_letters"] == 0
    arts = {a["url"]: a for a in read_jsonl(tmp_path / "out" / "articles.jsonl")}
    assert arts["https://example.org/f"]["published"] == arts["https://example.org/f"]["fetched"]
    assert arts["https://example.org/o"]["published"].startswith(("19", "20"))
    assert run(cfg, tmp_path)["duplicates"] == 3


def _boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("injected failure")


@pytest.mark.parametrize("target, stage", [
    ("transforms.langid.LanguageDetector.detect", "language"),
    ("transforms.topics.tag_article", "topics"),
])
def test_an_exception_in_a_later_stage_is_a_dead_letter_of_that_stage(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, stage: str) -> None:
    monkeypatch.setattr(target, _boom)
    s = run(write_config(tmp_path, [json.dumps(GOOD).encode()], state=False), tmp_path)
    assert (s["items_read"], s["articles"], s["dead_letters"]) == (1, 0, 1)
    assert s["dead_letters_by_stage"] == {stage: 1}
    dead = read_jsonl(tmp_path / "out" / "dead.jsonl")
    assert dead[0]["stage"] == stage and "injected failure" in dead[0]["error"]
    assert "Raqqa battle" in dead[0]["raw"]


def test_summary_text_lists_dead_letters_by_stage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path, hostile_lines()[:3], state=False)
    assert main(["run", str(cfg)]) == 0
    assert "dead letters  2 (parse 2)" in capsys.readouterr().out


def test_a_missing_opml_file_is_a_dead_letter_like_a_missing_jsonl(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [json.dumps(GOOD).encode()], state=False,
                       extra="  opml: [missing.opml, notopml.opml]")
    (tmp_path / "notopml.opml").write_text("<html><body>no</body></html>", encoding="utf-8")
    cfg.write_text(cfg.read_text(encoding="utf-8").replace("jsonl: items.jsonl", "jsonl: [gone.jsonl, items.jsonl]"),
                   encoding="utf-8")
    s = run(cfg, tmp_path)
    assert (s["items_read"], s["articles"], s["dead_letters"]) == (4, 1, 3)
    assert s["dead_letters_by_stage"] == {"read": 3}
    errors = sorted(d["error"] for d in read_jsonl(tmp_path / "out" / "dead.jsonl"))
    assert sum("OPML source unusable" in e for e in errors) == 2
    assert sum("JSONL source file not found" in e for e in errors) == 1
