"""Dashboard benchmark: response times of `mediamon serve` on a generated store of N articles.

    .venv/bin/python -m benchmarks.serve_bench [--articles 1000000] [--repeat 5] [--keep DIR]

Generates a SQLite store with the sink's own schema and indexes (`connect_records`): N articles
(ar 30%, en 25%, fr 12%, tr 12%, ku 11%, fa 10%; 40 sources; 10 topics, each article in 0-2; one
year of hourly publication times; titles of about 10 words with evidence), the hourly `topics`
and `counts` rows those articles give, 200 alerts and 5,000 dead letters. Then starts the real app
under uvicorn on 127.0.0.1 (a thread of this process) and times each main request over HTTP with
urllib: the first call (cold: SQLite pages not yet cached) and the median and max of `--repeat`
more. Requests are bounded in count and all go to the loopback address.
"""
from __future__ import annotations

import argparse
import json
import random
import socket
import statistics
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

LANGS = [("ar", 30), ("en", 25), ("fr", 12), ("tr", 12), ("ku", 11), ("fa", 10)]
TOPICS = [f"topic-{i}" for i in range(10)]
KEYWORDS = [f"kw-{i}" for i in range(6)]
WORDS = {"ar": "الرقة هجوم قوات سوريا الديمقراطية معارك المدينة المدنيين التحالف غارات".split(),
         "en": "Raqqa offensive forces battle city civilians coalition strikes fighters stadium".split(),
         "fr": "Rakka offensive forces bataille ville civils coalition frappes combattants stade".split(),
         "tr": "Rakka saldırı güçler savaş şehir siviller koalisyon hava saldırıları stadyum".split(),
         "ku": "Reqa êrîş hêz şer bajar sivîl hevpeymanî bombebaran şervan stad".split(),
         "fa": "رقه حمله نیروها نبرد شهر غیرنظامیان ائتلاف حملات هوایی جنگجویان".split()}
START = datetime(2017, 1, 1, tzinfo=timezone.utc)
HOURS = 365 * 24


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def generate(db: Path, n: int, seed: int = 17) -> None:
    from pipeline.store.sqlite import SQLITE_COLUMNS, connect_records
    rnd = random.Random(seed)
    conn = connect_records(db)
    conn.execute("PRAGMA synchronous=OFF")
    langs = [code for code, weight in LANGS for _ in range(weight)]
    topic_counts: dict[tuple[str, str, str], int] = {}
    kw_counts: dict[tuple[str, str, str], list[int]] = {}
    cols = SQLITE_COLUMNS["articles"]
    sql = f"INSERT INTO articles ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"
    batch: list[tuple[Any, ...]] = []
    for i in range(n):
        lang = rnd.choice(langs)
        hour = rnd.randrange(HOURS)
        published = _iso(START + timedelta(hours=hour, minutes=rnd.randrange(60)))
        window = _iso(START + timedelta(hours=hour))
        words = WORDS[lang]
        title = " ".join(rnd.choice(words) for _ in range(10))
        topics = rnd.sample(TOPICS, rnd.choice((0, 1, 1, 2)))
        keywords = rnd.sample(KEYWORDS, rnd.choice((0, 1, 2)))
        evidence = {t: {words[0]: [words[0]]} for t in topics}
        for t in topics:
            topic_counts[(window, t, lang)] = topic_counts.get((window, t, lang), 0) + 1
        for k in keywords:
            c = kw_counts.setdefault((window, k, lang), [0, 0])
            c[0] += 1
            c[1] += 2
        row = {"id": f"{i:016x}", "url": f"https://news{i % 40}.example.org/{i}", "title": title,
               "summary": title + " " + title, "source": f"source-{i % 40}", "published": published,
               "fetched": published, "language": lang, "language_confidence": 0.97,
               "topics": json.dumps(topics), "keywords": json.dumps(keywords),
               "evidence": json.dumps(evidence, ensure_ascii=False)}
        batch.append(tuple(row[c] for c in cols))
        if len(batch) >= 50_000:
            with conn:
                conn.executemany(sql, batch)
            batch.clear()
    with conn:
        conn.executemany(sql, batch)

        def end(w: str) -> str:
            return _iso(datetime.fromisoformat(w.replace("Z", "+00:00")) + timedelta(hours=1))
        conn.executemany("INSERT INTO topics VALUES (?, ?, ?, ?, ?)",
                         [(w, end(w), t, lang, c) for (w, t, lang), c in topic_counts.items()])
        conn.executemany("INSERT INTO counts VALUES (?, ?, ?, ?, ?, ?)",
                         [(w, end(w), k, lang, c[0], c[1]) for (w, k, lang), c in kw_counts.items()])
        windows = sorted({w for w, _, _ in topic_counts})
        alert_rows = []
        for j in range(200):
            w = windows[rnd.randrange(len(windows))]
            ids = json.dumps([f"{rnd.randrange(n):016x}" for _ in range(8)])
            alert_rows.append((rnd.choice(TOPICS), w, end(w), 12, 3.0, 4.0, "ratio", ids, end(w)))
        conn.executemany("INSERT OR IGNORE INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", alert_rows)
        conn.executemany("INSERT OR IGNORE INTO dead_letters VALUES (?, ?, ?, ?, ?)",
                         [(rnd.choice(("parse", "fetch", "json", "webhook")), f"error {j}", f"source-{j % 40}",
                           f"<raw {j}>", _iso(START + timedelta(hours=rnd.randrange(HOURS))))
                          for j in range(5000)])
    conn.execute("ANALYZE")
    conn.close()


def _config(folder: Path, db: Path) -> Path:
    path = folder / "bench.yaml"
    topics = "\n".join(f"  - {{id: {t}, name: Topic {t[-1]}, query: x{t[-1]}}}" for t in TOPICS)
    keywords = "\n".join(f"  - {{id: {k}, forms: [y{k[-1]}]}}" for k in KEYWORDS)
    sinks = "\n".join(f"  - {{type: sqlite, path: {db}, what: {w}}}"
                      for w in ("articles", "counts", "topics", "alerts", "dead_letters"))
    path.write_text(f"name: bench\nsources: {{jsonl: none.jsonl}}\ntopics:\n{topics}\nkeywords:\n{keywords}\n"
                    f"windows: {{size: 1h}}\nsinks:\n{sinks}\n", encoding="utf-8")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--articles", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--keep", type=Path, help="generate into (or reuse) this folder")
    args = ap.parse_args()

    import uvicorn
    from pipeline.config import load_config
    from pipeline.tools.serve import create_app

    folder = args.keep or Path(tempfile.mkdtemp(prefix="serve-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / f"store-{args.articles}.db"
    if not db.exists():
        t0 = time.perf_counter()
        generate(db, args.articles)
        print(f"generated {args.articles:,} articles in {time.perf_counter() - t0:.0f}s "
              f"({db.stat().st_size / 2**20:.0f} MiB)")
    config = load_config(_config(folder, db))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    first = json.loads(urllib.request.urlopen(base + "/api/articles?limit=25&language=ar").read())
    deep = first["next"]
    cases = [
        ("page /", "/"),
        ("dashboard (default: last 30 days)", "/api/dashboard"),
        ("dashboard, last 7 days", "/api/dashboard?period=7d"),
        ("dashboard, all (one year)", "/api/dashboard?period=all"),
        ("dashboard, language=ar", "/api/dashboard?language=ar"),
        ("dashboard, topic-3", "/api/dashboard?topic=topic-3"),
        ("dashboard, source=source-7", "/api/dashboard?source=source-7"),
        ("dashboard, poll unchanged", None),
        ("articles page 2 (cursor)", f"/api/articles?language=ar&before={deep}"),
        ("articles, rare topic", "/api/articles?topic=topic-9&language=fa&source=source-3"),
    ]
    version = json.loads(urllib.request.urlopen(base + "/api/dashboard").read())["version"]
    print(f"\n{args.articles:,} stored articles; times in ms (cold = first call; then median / max of {args.repeat})")
    print(f"{'request':34} {'cold':>8} {'median':>8} {'max':>8} {'bytes':>9}")
    for name, path in cases:
        path = path or f"/api/dashboard?version={urllib.request.quote(version)}"
        times = []
        size = 0
        for _ in range(args.repeat + 1):
            t0 = time.perf_counter()
            with urllib.request.urlopen(base + path, timeout=120) as response:
                body = response.read()
                assert response.status == 200, (path, response.status)
            times.append((time.perf_counter() - t0) * 1000)
            size = len(body)
        rest = times[1:]
        print(f"{name:34} {times[0]:8.1f} {statistics.median(rest):8.1f} {max(rest):8.1f} {size:9,}")
    server.should_exit = True
    thread.join(timeout=10)


if __name__ == "__main__":
    main()
