"""Stories across scheduled runs (state.path): a story continues in a later run, a rerun changes
nothing, and a sqlite sink written by an older mediamon (no story columns) gains them."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

FIRST = {"id": "fox-1", "url": "https://fox.example/is-pushes-back", "source": "fox",
         "title": "IS pushes back against US-backed forces in Syria's Raqqa",
         "summary": "Islamic State militants fought on Friday to repel the advance of U.S.-backed Syrian forces.",
         "published": "2017-06-09T10:00:00Z"}
COPY = {"id": "ap-1", "url": "https://ap.example/raqqa-1", "source": "ap",
        "title": "IS pushes back against US-backed forces in Syria's Raqqa - AP News",
        "summary": "Days after the forces inched closer to the heart of the group's capital.",
        "published": "2017-06-09T10:40:00Z"}
OTHER = {"id": "star-1", "url": "https://star.example/old-city", "source": "star",
         "title": "US-backed forces advance in old city of Syria's Raqqa city",
         "summary": "U.S.-backed Syrian forces advanced in the old city of Raqqa on Tuesday.",
         "published": "2017-06-09T10:20:00Z"}


def write_config(tmp: Path) -> Path:
    cfg = tmp / "cron.yaml"
    cfg.write_text("""
name: stories-cron
sources: {jsonl: items.jsonl}
language: {allowed: [en, ar]}
topics:
  - {id: raqqa, query: 'Raqqa'}
windows: {size: 1h}
state: {path: state/store.db}
stories: {horizon: 2d}
sinks:
  - {type: sqlite, path: out/results.db, what: articles}
  - {type: sqlite, path: out/results.db, what: topics}
  - {type: sqlite, path: out/results.db, what: stories}
""", encoding="utf-8")
    return cfg


def run(cfg: Path, items: list[dict]) -> dict:
    (cfg.parent / "items.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "pipeline", "run", str(cfg), "--quiet",
                           "--summary", str(cfg.parent / "summary.json")],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    return json.loads((cfg.parent / "summary.json").read_text())


def rows(cfg: Path) -> tuple[list, list, list]:
    db = sqlite3.connect(cfg.parent / "out" / "results.db")
    try:
        return (db.execute("SELECT url, id, story, story_size FROM articles ORDER BY url").fetchall(),
                db.execute("SELECT window_start, topic, articles, stories FROM topics ORDER BY 1, 2").fetchall(),
                db.execute("SELECT window_start, story, headline, outlets, size FROM stories ORDER BY 1, 2").fetchall())
    finally:
        db.close()


def test_a_story_spans_two_runs_and_a_rerun_changes_nothing(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    # an older mediamon's sink: topics without the `stories` column
    (tmp_path / "out").mkdir()
    old = sqlite3.connect(tmp_path / "out" / "results.db")
    old.execute("CREATE TABLE topics (window_start, window_end, topic, language, articles, "
                "PRIMARY KEY (window_start, window_end, topic, language))")
    old.commit()
    old.close()

    first = run(cfg, [FIRST])
    assert (first["articles"], first["stories"]) == (1, 1)
    second = run(cfg, [COPY, OTHER])
    assert (second["articles"], second["stories"]) == (2, 2)
    articles, topics, stories = rows(cfg)
    by_url = {url: (ident, story, size) for url, ident, story, size in articles}
    fox, ap, star = by_url[FIRST["url"]], by_url[COPY["url"]], by_url[OTHER["url"]]
    assert fox == (fox[0], fox[0], 1)                 # run 1: a story of one
    assert ap == (ap[0], fox[0], 2)                   # run 2: the copy joins run 1's story
    assert star == (star[0], star[0], 1)              # same place and topic, another event
    assert topics == [("2017-06-09T10:00:00Z", "raqqa", 3, 2)]
    assert sorted((s[1], s[2], json.loads(s[3]), s[4]) for s in stories) == sorted([
        (fox[0], FIRST["title"], ["ap", "fox"], 2),
        (star[0], OTHER["title"], ["star"], 1)])

    again = run(cfg, [COPY, OTHER])
    assert again["articles"] == 0 and again["duplicates"] == 2
    assert rows(cfg) == (articles, topics, stories)
