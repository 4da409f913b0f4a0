"""The HTML report and the outputs loader, from a small hand-made set of stored outputs.

The same records are stored as JSONL files and as a SQLite file (lists as JSON text), read
back, and rendered; the browser test opens the report in headless Chromium and checks that the
charts were drawn and no script failed.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from pipeline.tools.backtest import backtest, topic_series
from pipeline.store.outputs import StoredOutputs, load_outputs
from pipeline.tools.report import write_report
from transforms.spike_rules import AlertRule
from transforms.records import RECORD_FIELDS

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def _article(i: int, hour: int, lang: str, title: str, topics: list[str], url: str | None = None) -> dict[str, Any]:
    published = f"2017-10-15T{hour:02d}:{10 + i % 40:02d}:00Z"
    return {"id": f"a{i}", "url": url or f"https://news.example.org/{i}", "title": title,
            "summary": "", "source": "example-arabic" if lang == "ar" else "example-en",
            "published": published, "fetched": published, "language": lang,
            "language_confidence": 0.99, "topics": topics, "keywords": ["raqqa"]}


def _records() -> dict[str, list[dict[str, Any]]]:
    articles = [_article(i, 8 + i // 3, "ar" if i % 2 else "en",
                         "معركة الرقة: تقدم جديد" if i % 2 else f"Battle for Raqqa, day {i}", ["raqqa-offensive"])
                for i in range(12)]
    articles.append(_article(50, 12, "en", EVIL, ["raqqa-offensive"], url="javascript:alert(1)"))
    articles[-1]["source"] = "<b>evil</b> source"
    articles.append(_article(51, 9, "fr", "Sans sujet", []))
    topics: list[dict[str, Any]] = [{"window_start": f"2017-10-15T{h:02d}:00:00Z", "window_end": f"2017-10-15T{h + 1:02d}:00:00Z",
               "topic": "raqqa-offensive", "language": lang, "articles": n}
              for h, lang, n in [(8, "ar", 1), (8, "en", 2), (9, "ar", 2), (9, "en", 1), (10, "ar", 2),
                                 (10, "en", 1), (11, "ar", 1), (11, "en", 2), (12, "en", 1), (13, "ar", 9)]]
    counts = [{"window_start": t["window_start"], "window_end": t["window_end"], "keyword": "raqqa",
               "language": t["language"], "articles": t["articles"], "mentions": t["articles"] * 2}
              for t in topics]
    alerts = [{"topic": "raqqa-offensive", "window_start": "2017-10-15T13:00:00Z",
               "window_end": "2017-10-15T14:00:00Z", "count": 9, "baseline": 2.0, "score": 4.5,
               "rule": "ratio", "articles": ["a1", "a3", "missing-id"], "at": "2017-10-15T14:00:00Z"}]
    dead = [{"stage": "parse", "error": "bad xml", "source": "feed", "raw": "<rss", "at": "2017-10-15T09:00:00Z"}]
    return {"articles": articles, "topics": topics, "counts": counts, "alerts": alerts, "dead_letters": dead}


def _write_jsonl(folder: Path) -> list[tuple[str, str, Path]]:
    sinks = []
    for what, records in _records().items():
        path = folder / f"{what}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
        sinks.append((what, "jsonl", path))
    return sinks


def _write_sqlite(folder: Path) -> list[tuple[str, str, Path]]:
    path = folder / "store.db"
    conn = sqlite3.connect(path)
    for what, records in _records().items():
        cols = RECORD_FIELDS[what]
        conn.execute(f"CREATE TABLE {what} ({', '.join(cols)})")
        conn.executemany(f"INSERT INTO {what} VALUES ({', '.join('?' for _ in cols)})",
                         [[json.dumps(r[c], ensure_ascii=False) if isinstance(r.get(c), list) else r.get(c)
                           for c in cols] for r in records])
    conn.commit()
    conn.close()
    return [(what, "sqlite", path) for what in _records()]


RULES = (AlertRule(name="ratio", type="ratio", previous=4, margin=2.0, min_count=3, cooldown=10800.0),)


@pytest.fixture(params=["jsonl", "sqlite"])
def outputs(request: pytest.FixtureRequest, tmp_path: Path) -> StoredOutputs:
    sinks = _write_jsonl(tmp_path) if request.param == "jsonl" else _write_sqlite(tmp_path)
    return load_outputs(sinks)


def test_loader_reads_both_stores_alike(tmp_path: Path) -> None:
    (tmp_path / "j").mkdir()
    (tmp_path / "s").mkdir()
    from_jsonl = load_outputs(_write_jsonl(tmp_path / "j"))
    from_sqlite = load_outputs(_write_sqlite(tmp_path / "s"))
    for what in ("articles", "counts", "topics", "alerts", "dead_letters"):
        assert from_jsonl.records(what) == from_sqlite.records(what), what
    assert from_sqlite.alerts[0]["articles"] == ["a1", "a3", "missing-id"]
    assert from_sqlite.articles[0]["topics"] == ["raqqa-offensive"]


def test_loader_filters_period_dedups_and_reads_shards(tmp_path: Path) -> None:
    sinks = _write_jsonl(tmp_path)
    period = load_outputs(sinks, since="2017-10-15T09:00:00Z", until="2017-10-15T11:00:00Z")
    assert {t["window_start"] for t in period.topics} == {"2017-10-15T09:00:00Z", "2017-10-15T10:00:00Z"}
    assert all("2017-10-15T09" <= a["published"] < "2017-10-15T11" for a in period.articles)
    assert period.alerts == []
    # A JSONL file appended twice still counts each record once; shards are read.
    topics = tmp_path / "topics.jsonl"
    text = topics.read_text(encoding="utf-8")
    topics.rename(tmp_path / "topics.jsonl-00000-of-00002")
    (tmp_path / "topics.jsonl-00001-of-00002").write_text(text, encoding="utf-8")
    again = load_outputs(sinks + [("alerts", "pubsub", None)])  # type: ignore[list-item]
    assert len(again.topics) == 10
    assert again.skipped == ["alerts (pubsub): a pubsub sink cannot be read back"]


def test_report_content(outputs: StoredOutputs, tmp_path: Path) -> None:
    out = write_report(outputs, RULES, tmp_path / "r" / "report.html", "Raqqa <monitor>",
                       topic_names={"raqqa-offensive": "Raqqa offensive"})
    page = out.read_text(encoding="utf-8")
    assert "<title>Raqqa &lt;monitor&gt;</title>" in page
    for heading in ("Topics over time", "Tracked keywords", "Top sources", "Language mix",
                    "Alerts of the period", "Latest tagged articles per topic", "Alert rules"):
        assert f"<h2>{heading}</h2>" in page
    assert page.count('class="plotly-graph-div"') == 4      # one topic, keywords, sources, languages
    # Chart titles live in the figures' JSON (non-ASCII as \u escapes).
    assert "Topic \\u201cRaqqa offensive\\u201d: articles per window by language" in page
    assert "Window start (UTC)" in page
    # Offline: plotly.js is inlined and nothing is loaded from elsewhere.
    assert "Plotly" in page and len(page) > 3_000_000
    assert not re.search(r"<(script|img|iframe)[^>]+src=|<link[^>]+href=", page)
    assert "content=\"default-src 'none';" in page             # the browser may fetch nothing
    # Untrusted text is escaped and a javascript: URL is not a link.
    assert EVIL not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert 'href="javascript:' not in page
    assert "<b>evil</b>" not in page
    # Right-to-left titles are marked for the browser to lay out, links kept.
    assert '<span dir="auto">معركة الرقة: تقدم جديد</span>' in page
    assert '<a href="https://news.example.org/1" rel="noopener noreferrer" target="_blank">' in page
    # The alert with its evidence; an id without a stored article is still listed.
    alerts = page.split('<section id="alerts">')[1].split("</section>")[0]
    assert "2017-10-15T13:00:00Z" in alerts and "4.5" in alerts and "3 articles" in alerts
    assert "<code>missing-id</code>" in alerts
    assert "ratio (ratio; all topics): count &gt;= 2 x mean of the 4 previous windows" in page


def test_backtest_replays_stored_counts_with_history_before_since(outputs: StoredOutputs) -> None:
    series = topic_series(outputs)["raqqa-offensive"]
    assert [(w.window_start[11:16], w.n_articles) for w in series] == \
        [("08:00", 3), ("09:00", 3), ("10:00", 3), ("11:00", 3), ("12:00", 1), ("13:00", 9)]
    assert series[0].article_ids == ("a0", "a1", "a2")
    rules = RULES + (AlertRule(name="dev", type="deviation", baseline=4 * 3600.0, k=2.0, min_count=3),)
    text = backtest(outputs, rules, "2017-10-15T12:00:00Z", None, window_size=3600.0)
    lines = text.splitlines()
    assert "1 topic" in lines[0] and "window step 1h" in lines[0]
    assert "Rule ratio (ratio; all topics): count >= 2 x mean of the 4 previous windows, " \
           "at least 3 articles, cool-down 3h" in lines
    assert "  2017-10-15T13:00:00Z  raqqa-offensive  count 9  baseline 2.5  score 3.6  articles []" in lines
    assert "  2017-10-15T13:00:00Z  raqqa-offensive  count 9  baseline 2.5  score 4.111  articles []" in lines
    assert text.count("1 alert would have been raised:") == 2
    # A period that ends before the spike: nothing.
    assert text.count("0 alerts") == 0
    quiet = backtest(outputs, rules, None, "2017-10-15T13:00:00Z", window_size=3600.0)
    assert quiet.count("  0 alerts") == 2


def test_report_of_nothing(tmp_path: Path) -> None:
    page = write_report(StoredOutputs(), (), tmp_path / "empty.html", "Empty").read_text(encoding="utf-8")
    assert "No topic counts in this period." in page and "No alerts in this period." in page
    assert 'class="plotly-graph-div"' not in page


def _chromium(args: list[str], profile: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage",
         f"--user-data-dir={profile}", "--window-size=1280,2400", "--virtual-time-budget=15000",
         "--run-all-compositor-stages-before-draw", *args],
        capture_output=True, text=True, timeout=180, check=False)


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    if CHROMIUM is None:
        if os.environ.get("MEDIAMON_REQUIRE_BROWSER") == "1":
            pytest.fail("MEDIAMON_REQUIRE_BROWSER=1 but chromium is not installed "
                        "(apt-get install -y chromium chromium-driver)")
        pytest.skip("chromium not installed (apt-get install -y chromium chromium-driver); "
                    "set MEDIAMON_REQUIRE_BROWSER=1 to make this a failure")
    report = write_report(load_outputs(_write_sqlite(tmp_path)), RULES, tmp_path / "report.html",
                          "Raqqa monitor — تقرير")
    url = report.resolve().as_uri()
    with tempfile.TemporaryDirectory() as profile:
        dom = _chromium(["--dump-dom", url], profile)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html_tag = re.search(r"<html[^>]*>", dom.stdout)
    assert html_tag is not None, dom.stdout[:500]
    assert 'data-script-errors="0"' in html_tag.group(0), re.findall(r'id="report-errors"[^>]*>[^<]*', dom.stdout)
    # every chart (one topic, keywords, sources, languages) drew its plotly svg
    assert 'data-charts="4"' in html_tag.group(0) and 'data-charts-drawn="4"' in html_tag.group(0)
    assert dom.stdout.count('class="main-svg"') >= 4
    assert "Uncaught" not in dom.stderr
    # Bars and axis labels were actually drawn.
    assert 'class="point"' in dom.stdout or "class='point'" in dom.stdout
    assert "Window start (UTC)" in dom.stdout and "Language mix" in dom.stdout

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        taken = _chromium([f"--screenshot={shot}", url], profile)
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert shot.exists() and shot.stat().st_size > 20_000
