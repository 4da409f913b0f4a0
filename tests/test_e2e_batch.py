"""`mediamon run` end to end: the demo config, the seed article, the summary balance."""
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import main

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("demo")
    summary = out / "summary.json"
    sets = []
    for i, what in enumerate(["articles", "counts", "topics", "dead_letters"]):
        sets += ["--set", f"sinks.{i}.path={out / (what + '.jsonl')}"]
    sets += ["--set", f"sinks.4.path={out / 'counts.csv'}"]
    for i in range(5, 10):
        sets += ["--set", f"sinks.{i}.path={out / 'mediamon.db'}"]
    sets += ["--set", f"sinks.10.path={out / 'alerts.jsonl'}"]
    proc = subprocess.run([sys.executable, "-m", "pipeline", "run", str(ROOT / "configs" / "demo.yaml"),
                           "--quiet", "--summary", str(summary), *sets],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "articles" in proc.stdout and "dead letters" in proc.stdout
    return out, json.loads(summary.read_text())


def test_demo_summary_balances_and_counts_every_kind(demo_run: tuple[Path, dict]) -> None:
    out, s = demo_run
    assert s["items_read"] == s["articles"] + s["duplicates"] + s["dead_letters"] + s["late"]
    # 6 + 5 + 3 + 4 Arabic/English/English/French entries, 1 broken feed, 6 + 15 JSONL lines
    assert s["items_read"] == 6 + 5 + 3 + 4 + 1 + 6 + 15
    assert s["dead_letters"] == 3           # the broken feed + two bad JSONL lines
    assert s["duplicates"] == 4             # ar repeat, 2 syndicated wire stories, tr repeat
    assert s["articles"] == len(read_jsonl(out / "articles.jsonl"))
    assert set(s["by_language"]) >= {"ar", "en", "fr", "ku", "tr"}
    assert s["by_topic"]["raqqa-offensive"] >= 8


def test_demo_articles_records(demo_run: tuple[Path, dict]) -> None:
    out, _ = demo_run
    articles = {a["title"]: a for a in read_jsonl(out / "articles.jsonl")}
    assert set(next(iter(articles.values()))) >= {"id", "url", "title", "summary", "source", "published",
                                                  "fetched", "language", "language_confidence", "topics",
                                                  "keywords"}
    ar = articles["قوات سوريا الديمقراطية تبدأ الهجوم الأخير على مدينة الرقة"]
    assert ar["language"] == "ar" and "raqqa-offensive" in ar["topics"] and "raqqa" in ar["keywords"]
    assert ar["url"] == "https://demo.mediamon.invalid/ar/2017/10/15/raqqa-final-assault"
    assert ar["published"] == "2017-10-15T09:30:00Z"
    assert "<" not in ar["summary"]  # HTML stripped
    fr = articles["Syrie : les FDS lancent l'offensive finale sur Rakka"]
    assert fr["language"] == "fr" and fr["published"] == "2017-10-15T09:00:00Z"  # +02:00 -> UTC
    wire = articles["US-backed forces launch final assault on Raqqa"]
    assert wire["source"] == "demo-wire"  # the syndicated copy (fetched later or equal) is the duplicate
    assert "Central bank holds rates steady as inflation eases" in articles
    assert articles["Central bank holds rates steady as inflation eases"]["topics"] == []


def test_demo_counts_and_sqlite_agree(demo_run: tuple[Path, dict]) -> None:
    out, _ = demo_run
    counts = read_jsonl(out / "counts.jsonl")
    day15_ar = [c for c in counts if c["keyword"] == "raqqa" and c["language"] == "ar"
                and c["window_start"] == "2017-10-15T00:00:00Z"]
    assert day15_ar and day15_ar[0]["articles"] == 2 and day15_ar[0]["window_end"] == "2017-10-16T00:00:00Z"
    db = sqlite3.connect(out / "mediamon.db")
    assert db.execute("select count(*) from counts").fetchone()[0] == len(counts)
    assert db.execute("select count(*) from articles").fetchone()[0] == len(read_jsonl(out / "articles.jsonl"))
    dead = read_jsonl(out / "dead_letters.jsonl")
    assert {d["source"] for d in dead} == {"demo-broken", "items.jsonl"}
    assert all(set(d) == {"stage", "error", "source", "raw", "at"} for d in dead)
    csv_lines = (out / "counts.csv").read_text(encoding="utf-8").splitlines()
    assert csv_lines[0] == "window_start,window_end,keyword,language,articles,mentions,stories"
    assert len(csv_lines) == len(counts) + 1


def test_demo_raises_the_spike_alert_in_five_languages(demo_run: tuple[Path, dict]) -> None:
    out, _ = demo_run
    alerts = read_jsonl(out / "alerts.jsonl")
    # demo/burst.jsonl: one Raqqa-offensive article a day on 10-14 October, then 10 on the 18th (two of them rewrites that join an earlier story)
    assert [(a["topic"], a["window_start"], a["rule"]) for a in alerts] == \
        [("raqqa-offensive", "2017-10-18T00:00:00Z", "raqqa-spike")]
    assert alerts[0]["count"] == 10 and alerts[0]["baseline"] == 2.4 and len(alerts[0]["articles"]) == 10
    db = sqlite3.connect(out / "mediamon.db")
    assert db.execute("select count(*) from alerts").fetchone()[0] == 1
    langs = {r[0] for r in db.execute("select language from topics where topic = 'raqqa-offensive'")}
    assert langs == {"ar", "en", "fr", "ku", "tr"}


def test_rerun_into_sqlite_changes_nothing(demo_run: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = demo_run
    db = out / "mediamon.db"
    before = sqlite3.connect(db).execute("select * from counts order by 1,2,3,4").fetchall()
    sets = []
    for i in range(0, 5):
        sets += ["--set", f"sinks.{i}.path={tmp_path / f'{i}.out'}"]
    for i in range(5, 10):
        sets += ["--set", f"sinks.{i}.path={db}"]
    sets += ["--set", f"sinks.10.path={tmp_path / 'alerts.out'}"]
    assert main(["run", str(ROOT / "configs" / "demo.yaml"), "--quiet", *sets]) == 0
    after = sqlite3.connect(db).execute("select * from counts order by 1,2,3,4").fetchall()
    assert before == after


def test_seed_article_is_arabic_tagged_with_nine_mentions(tmp_path: Path) -> None:
    seed = CORPUS / "seed" / "zamanalwsl-raqqa-2017.txt"
    if not seed.exists():
        pytest.skip(f"corpus not present at {seed}")
    text = seed.read_text(encoding="utf-8")
    title, _, body = text.partition("\n")
    (tmp_path / "items.jsonl").write_text(json.dumps(
        {"id": "seed", "title": title, "summary": body, "source": "zamanalwsl",
         "published": "2017-10-15T09:30:00Z"}, ensure_ascii=False) + "\n", encoding="utf-8")
    (tmp_path / "c.yaml").write_text("""
sources: {jsonl: items.jsonl}
topics:
  - id: raqqa-offensive
    name: Raqqa offensive
    query: '(الرقة OR Raqqa OR Rakka) AND (هجوم OR معارك OR معركة OR offensive OR battle OR assault)'
keywords:
  - id: raqqa
    forms: [الرقة, Raqqa, Rakka, Raqa]
windows: {size: 1h}
sinks:
  - {type: jsonl, path: articles.jsonl, what: articles}
  - {type: jsonl, path: counts.jsonl, what: counts}
""", encoding="utf-8")
    assert main(["run", str(tmp_path / "c.yaml"), "--quiet"]) == 0
    [article] = read_jsonl(tmp_path / "articles.jsonl")
    assert article["language"] == "ar" and article["topics"] == ["raqqa-offensive"]
    [count] = read_jsonl(tmp_path / "counts.jsonl")
    assert (count["keyword"], count["language"], count["articles"], count["mentions"]) == ("raqqa", "ar", 1, 9)
    assert (count["window_start"], count["window_end"]) == ("2017-10-15T09:00:00Z", "2017-10-15T10:00:00Z")


def test_missing_jsonl_source_is_one_item_and_one_dead_letter(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("""
sources: {jsonl: [missing.jsonl]}
sinks: [{type: jsonl, path: dead.jsonl, what: dead_letters}]
""", encoding="utf-8")
    assert main(["run", str(tmp_path / "c.yaml"), "--quiet", "--summary", str(tmp_path / "s.json")]) == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert (summary["items_read"], summary["dead_letters"]) == (1, 1)
    [dead] = read_jsonl(tmp_path / "dead.jsonl")
    assert dead["stage"] == "read" and dead["source"] == "missing.jsonl"


def test_demo_rewritten_copies_join_their_story(demo_run: tuple[Path, dict]) -> None:
    """Two outlets rewrite an earlier report (en, ar): each pair is one story of two articles."""
    out, s = demo_run
    articles = read_jsonl(out / "articles.jsonl")
    stories: dict[str, set[str]] = {}
    for a in articles:
        stories.setdefault(a["story"], set()).add(a["source"])
    merged = sorted(sorted(sources) for sources in stories.values() if len(sources) > 1)
    assert merged == [["demo-arabic", "demo-sham"], ["demo-gazette", "demo-wire"]]
    assert s["stories"] == s["articles"] - 2
