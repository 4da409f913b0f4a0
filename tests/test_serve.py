"""`mediamon serve` without a browser: bad input, empty and older stores, pagination, binding,
the token, and that the app cannot write to the store."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.store.sqlite import SQLITE_COLUMNS, connect_records, upsert_records
from pipeline.tools.serve import check_bind, create_app
from pipeline.tools.serve.queries import Filters, store_of

CONFIG = """
name: t
sources: {jsonl: items.jsonl}
topics:
  - {id: raqqa-offensive, name: Raqqa offensive, query: Raqqa}
keywords:
  - {id: raqqa, forms: [Raqqa, الرقة]}
windows: {size: 1h}
sinks:
  - {type: sqlite, path: out/db.sqlite, what: articles}
  - {type: sqlite, path: out/db.sqlite, what: topics}
  - {type: sqlite, path: out/db.sqlite, what: counts}
  - {type: sqlite, path: out/db.sqlite, what: alerts}
  - {type: sqlite, path: out/db.sqlite, what: dead_letters}
"""


def _article(i: int, lang: str = "en", topics: tuple[str, ...] = ("raqqa-offensive",)) -> dict[str, Any]:
    published = f"2017-10-{10 + i // 24:02d}T{i % 24:02d}:00:00Z"
    return {"id": f"a{i:03d}", "url": f"https://news.example.org/{i}", "title": f"Raqqa {i}",
            "summary": "", "source": "wire-ar" if lang == "ar" else "wire-en", "published": published,
            "fetched": published, "language": lang, "language_confidence": 0.9,
            "topics": list(topics), "keywords": ["raqqa"], "evidence": {"raqqa-offensive": {"raqqa": ["Raqqa"]}}}


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def _fill(db: Path, n: int = 60) -> None:
    conn = connect_records(db)
    with conn:
        upsert_records(conn, "articles", [_article(i, "ar" if i % 3 == 0 else "en") for i in range(n)])
        upsert_records(conn, "topics", [{"window_start": a["published"], "window_end": a["published"][:11] + "23:59:59Z",
                                         "topic": "raqqa-offensive", "language": a["language"], "articles": 1}
                                        for a in (_article(i, "ar" if i % 3 == 0 else "en") for i in range(n))])
        upsert_records(conn, "alerts", [{"topic": "raqqa-offensive", "window_start": "2017-10-11T05:00:00Z",
                                         "window_end": "2017-10-11T06:00:00Z", "count": 9, "baseline": 1.0,
                                         "score": 9.0, "rule": "r", "articles": ["a029", "gone"], "at": "x"}])
    conn.close()


def _client(config_file: Path, token: str | None = None) -> TestClient:
    return TestClient(create_app(load_config(config_file), token=token))


def test_malformed_parameters_are_400_with_a_message(config_file: Path) -> None:
    client = _client(config_file)
    for query, words in [("period=soon", "period='soon'"), ("since=yesterday", "not an ISO-8601 time"),
                         ("language=Arabic!", "language code"), ("limit=0", "1 to 200"),
                         ("limit=x", "1 to 200"), ("before=nocursor", "cursor"),
                         ("since=2017-10-12&until=2017-10-11", "must be before"),
                         ("colour=red", "unknown query parameter 'colour'"), ("refresh=-1", "0 to 3600")]:
        api = client.get(f"/api/dashboard?{query}")
        assert api.status_code == 400 and words in api.json()["error"], (query, api.text)
        page = client.get(f"/?{query}")
        assert page.status_code == 400 and "Traceback" not in page.text


def test_missing_store_says_what_to_run(config_file: Path) -> None:
    body = _client(config_file).get("/api/dashboard").json()
    assert "run `mediamon run" in body["status"]["empty"] and str(config_file) in body["status"]["empty"]
    assert not (config_file.parent / "out" / "db.sqlite").exists()      # serving created nothing


def test_config_without_sqlite_sink_says_what_to_add(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("sources: {jsonl: i.jsonl}\nsinks:\n  - {type: jsonl, path: a.jsonl, what: articles}\n",
                    encoding="utf-8")
    body = _client(path).get("/api/dashboard").json()
    assert "No sqlite sink is configured" in body["status"]["empty"]


def test_dashboard_data_filters_and_unchanged_version(config_file: Path) -> None:
    _fill(config_file.parent / "out" / "db.sqlite")
    client = _client(config_file)
    body = client.get("/api/dashboard?language=ar").json()
    assert body["status"]["empty"] == ""
    assert {a["language"] for a in body["articles"]["rows"]} == {"ar"}
    assert list(body["languages"]["series"]) == ["ar"]
    assert sum(body["topics"]["series"]["raqqa-offensive"]["y"]) == 20
    (alert,) = body["alerts"]
    assert alert["articles"][0]["id"] == "a029" and alert["articles"][1] == {"id": "gone", "missing": True}
    again = client.get(f"/api/dashboard?language=ar&version={body['version']}").json()
    assert again == {"unchanged": True, "version": body["version"]}
    # period counts back from the newest stored window (2017-10-12T11:00Z): 6 hourly windows
    recent = client.get("/api/dashboard?period=6h").json()
    assert recent["filters"]["since"] == "2017-10-12T05:00:01Z"
    assert len(recent["topics"]["series"]["raqqa-offensive"]["x"]) == 6


def test_keyset_pagination_covers_every_article_once(config_file: Path) -> None:
    _fill(config_file.parent / "out" / "db.sqlite")
    client = _client(config_file)
    seen: list[str] = []
    query = "limit=7"
    for _ in range(20):
        page = client.get(f"/api/articles?{query}").json()
        seen += [a["id"] for a in page["rows"]]
        if not page["next"]:
            break
        query = f"limit=7&before={page['next']}"
    assert seen == [f"a{i:03d}" for i in reversed(range(60))]


def test_sql_in_a_filter_is_only_a_value(config_file: Path) -> None:
    _fill(config_file.parent / "out" / "db.sqlite")
    client = _client(config_file)
    for name in ("topic", "source"):
        body = client.get("/api/articles", params={name: "x' OR '1'='1"}).json()
        assert body["rows"] == []
    assert len(client.get("/api/articles", params={"topic": "raqqa-offensive"}).json()["rows"]) == 25


def test_the_app_cannot_write_to_the_store(config_file: Path) -> None:
    db = config_file.parent / "out" / "db.sqlite"
    _fill(db)
    store = store_of(load_config(config_file))
    with store._conn(db) as conn:
        with pytest.raises(sqlite3.OperationalError, match="readonly|read-only|query_only"):
            conn.execute("DELETE FROM articles")
    assert sqlite3.connect(db).execute("select count(*) from articles").fetchone()[0] == 60
    assert store.articles(Filters(limit=3))["rows"][0]["id"] == "a059"


def test_older_store_works_and_names_the_migrating_command(config_file: Path) -> None:
    db = config_file.parent / "out" / "db.sqlite"
    db.parent.mkdir()
    conn = sqlite3.connect(db)   # the tables as an older mediamon wrote them: no evidence, no indexes
    old_cols = [c for c in SQLITE_COLUMNS["articles"] if c != "evidence"]
    conn.execute(f"CREATE TABLE articles ({', '.join(old_cols)}, PRIMARY KEY (id))")
    a = _article(1)
    conn.execute(f"INSERT INTO articles VALUES ({', '.join('?' for _ in old_cols)})",
                 [json.dumps(a.get(c)) if isinstance(a.get(c), list) else a.get(c) for c in old_cols])
    conn.commit()
    conn.close()
    body = _client(config_file).get("/api/dashboard").json()
    assert body["articles"]["rows"][0]["title"] == "Raqqa 1" and body["articles"]["rows"][0]["evidence"] == {}
    (notice,) = body["status"]["notices"]
    assert "older mediamon" in notice and f"mediamon run {config_file}" in notice
    # and the named command does add the indexes (any run that writes the sink)
    connect_records(db).close()
    assert _client(config_file).get("/api/dashboard").json()["status"]["notices"] == []


def test_binding_beyond_loopback_needs_a_flag_and_a_token(config_file: Path) -> None:
    check_bind("127.0.0.1", False, None)
    with pytest.raises(ValueError, match="--allow-remote"):
        check_bind("0.0.0.0", False, "x" * 20)
    with pytest.raises(ValueError, match="--token"):
        check_bind("0.0.0.0", True, None)
    check_bind("0.0.0.0", True, "x" * 20)
    assert main(["serve", str(config_file), "--host", "0.0.0.0"]) == 2


def test_token_is_required_when_set(config_file: Path) -> None:
    client = _client(config_file, token="s3cret-token-0123456789")
    assert client.get("/api/dashboard").status_code == 401
    assert client.get("/api/dashboard", headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = client.get("/?token=s3cret-token-0123456789")
    assert ok.status_code == 200 and "mediamon_token" in ok.headers.get("set-cookie", "")
    assert client.get("/api/dashboard").status_code == 200      # the cookie now carries it


def test_page_and_assets_are_local_with_a_strict_policy(config_file: Path) -> None:
    client = _client(config_file)
    page = client.get("/")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    assert "http://" not in page.text and "https://" not in page.text
    for asset in ("/static/app.js", "/static/app.css", "/static/plotly.min.js"):
        response = client.get(asset)
        assert response.status_code == 200 and len(response.content) > 1000, asset


def test_stories_are_counted_when_the_store_has_them(config_file: Path) -> None:
    """A store with story clustering (a `stories` column on topics, a `stories` table)."""
    db = config_file.parent / "out" / "db.sqlite"
    _fill(db, n=10)
    conn = sqlite3.connect(db)
    if "stories" not in {row[1] for row in conn.execute("PRAGMA table_info(topics)")}:   # a pre-#16 schema
        conn.execute("ALTER TABLE topics ADD COLUMN stories INTEGER")
    conn.execute("UPDATE topics SET stories = 0")
    conn.execute("UPDATE topics SET stories = 1 WHERE language = 'ar'")
    conn.execute("CREATE TABLE IF NOT EXISTS stories (window_start, window_end, story, headline, url, outlets, languages, size, "
                 "first_seen, last_seen, topics, PRIMARY KEY (window_start, window_end, story))")
    conn.executemany("INSERT INTO stories VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
        (f"2017-10-10T0{h}:00:00Z", f"2017-10-10T0{h + 1}:00:00Z", story, title, "https://x.example/1",
         json.dumps(outlets), json.dumps(langs), size, f"2017-10-10T0{h}:10:00Z", f"2017-10-10T0{h}:50:00Z",
         json.dumps(["raqqa-offensive"]))
        for h, story, title, outlets, langs, size in [
            (1, "s1", "معركة الرقة", ["wire-ar", "wire-en"], ["ar", "en"], 3),
            (2, "s1", "معركة الرقة", ["wire-ar"], ["ar"], 2),
            (2, "s2", "Raqqa 2", ["wire-en"], ["en"], 4)]])
    conn.commit()
    conn.close()
    client = _client(config_file)
    articles = client.get("/api/dashboard").json()
    stories = client.get("/api/dashboard?metric=stories").json()
    assert articles["status"]["stories"] and stories["topics"]["metric"] == "stories"
    assert sum(articles["topics"]["series"]["raqqa-offensive"]["y"]) == 10
    assert sum(stories["topics"]["series"]["raqqa-offensive"]["y"]) == 4      # a000, a003, a006, a009
    # the period's stories, summed over their windows, biggest first; filtered by language
    assert [(x["story"], x["size"], x["first_seen"], x["last_seen"]) for x in stories["stories"]] == \
        [("s1", 5, "2017-10-10T01:10:00Z", "2017-10-10T02:50:00Z"), ("s2", 4, "2017-10-10T02:10:00Z", "2017-10-10T02:50:00Z")]
    assert stories["stories"][0]["headline"] == "معركة الرقة" and stories["stories"][0]["languages"]
    english = client.get("/api/dashboard?language=en").json()["stories"]
    assert [x["story"] for x in english] == ["s2", "s1"] and english[1]["size"] == 3


def test_loopback_answers_only_loopback_host_names(config_file: Path) -> None:
    """A page whose domain was re-pointed at 127.0.0.1 (DNS rebinding) cannot read the store."""
    app = create_app(load_config(config_file), allowed_hosts=["127.0.0.1", "localhost", "::1"])
    assert TestClient(app, base_url="http://evil.example:8080").get("/api/dashboard").status_code == 400
    assert TestClient(app, base_url="http://127.0.0.1:8080").get("/api/dashboard").status_code == 200
