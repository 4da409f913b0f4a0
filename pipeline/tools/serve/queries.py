"""The dashboard's read-only queries over the configured SQLite sinks and the feed-state store.

Every connection is opened with `pipeline.store.sqlite.connect(path, read_only=True)` (SQLite
`mode=ro`) and `PRAGMA query_only`, so nothing here can write. Every value from a request is a
bound parameter; the only names put into SQL text are table and column names from fixed lists.

Sized for a million stored articles: charts read the per-window `topics`/`counts` tables (never
the articles), latest articles use keyset pagination over the `(published, id)`,
`(language, published)` and `(source, published)` indexes created by the sqlite sink
(`pipeline.store.sqlite.SQLITE_INDEXES`); a store written before those indexes existed still
works and the page says which command adds them.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from pipeline.store import sqlite
from pipeline.store.outputs import WHATS
from pipeline.store.sqlite import SQLITE_INDEXES
from transforms.timeutil import from_epoch, to_epoch

DEFAULT_PERIOD = 30 * 86400.0   # what the page shows without a period: the last 30 days stored
MAX_POINTS = 400          # a chart with more windows than this is summed per day, then per month
FEED_FIELDS = ("url", "current_url", "last_status", "http_status", "last_error", "last_fetch",
               "last_new_item", "error_count", "next_due", "retired")


CORE_WHATS = tuple(w for w in WHATS if w != "stories")   # what status() reports on


@dataclass(frozen=True)
class Filters:
    """What the page shows; every field comes from the URL (validated in app.py)."""

    since: str | None = None        # ISO-8601 UTC, inclusive ('YYYY-MM-DDTHH:MM:SSZ')
    until: str | None = None        # exclusive
    period: float | None = DEFAULT_PERIOD   # seconds back from the newest stored window; None = all
    topic: str | None = None
    language: str | None = None
    source: str | None = None
    metric: str = "articles"        # articles | stories (when the store has a stories column)
    before: tuple[str, str] | None = None   # keyset cursor: (published, id) of the last row shown
    limit: int = 25


def _shift(value: str, seconds: float) -> str:
    return from_epoch(to_epoch(value) - seconds)


@dataclass
class Store:
    """Where each record kind is stored (the first sqlite sink of that kind) and the feed state."""

    paths: dict[str, Path]
    state_path: Path | None = None
    config_file: str = "CONFIG"
    window: float = 3600.0          # the config's window step (seconds): how many points a span is
    fill: str = "run"               # the command that fills the store: run (batch) or stream (Pub/Sub)
    _schema: dict[tuple[str, str], Any] = field(default_factory=dict)
    _schema_version: str = ""

    # ------------------------------------------------------------ plumbing

    @contextmanager
    def _conn(self, path: Path) -> Iterator[sqlite3.Connection]:
        conn = sqlite.connect(path, read_only=True, threads=True)
        try:
            conn.execute("PRAGMA query_only = ON")
            yield conn
        finally:
            conn.close()

    def _existing(self, what: str) -> Path | None:
        path = self.paths.get(what)
        return path if path is not None and path.exists() else None

    def _cached(self, key: tuple[str, str], compute: Any) -> Any:
        """Schema facts, remembered until a sink file changes."""
        version = self.version()
        if version != self._schema_version:   # handlers run in a thread pool: replace, never clear
            self._schema = {}
            self._schema_version = version
        schema = self._schema
        if key not in schema:
            schema[key] = compute()
        return schema[key]

    def columns(self, what: str) -> set[str]:
        path = self._existing(what)
        if path is None:
            return set()

        def compute() -> set[str]:
            with self._conn(path) as conn:
                return {row[1] for row in conn.execute(f'PRAGMA table_info("{what}")')}  # what: fixed list
        result: set[str] = self._cached(("columns", what), compute)
        return result

    def has_table(self, path: Path, table: str) -> bool:
        def compute() -> bool:
            with self._conn(path) as conn:
                return sqlite.table_exists(conn, table)
        result: bool = self._cached((str(path), table), compute)
        return result

    def version(self) -> str:
        """Changes whenever a sink file (or its WAL) changes: the page polls with it."""
        parts = []
        files = {p for p in self.paths.values()} | ({self.state_path} if self.state_path else set())
        for path in sorted(files):
            for file in (path, Path(f"{path}-wal")):
                try:
                    st = os.stat(file)
                except OSError:
                    parts.append("-")
                    continue
                # an empty WAL is what a reader's open leaves: no change
                parts.append(f"{st.st_mtime_ns}:{st.st_size}" if st.st_size else "-")
        return ".".join(parts)

    # ------------------------------------------------------------ state of the store

    def status(self) -> dict[str, Any]:
        """What is there, what is missing and what to run about it."""
        tables: dict[str, bool] = {}
        notices: list[str] = []
        for what in CORE_WHATS:
            path = self._existing(what)
            tables[what] = bool(path and self.has_table(path, what))
        if not self.paths:
            empty = (f"No sqlite sink is configured, and the dashboard reads SQLite: add "
                     f"`{{type: sqlite, path: out/mediamon.db, what: articles}}` (and counts, topics, "
                     f"alerts, dead_letters) to the sinks of {self.config_file}, then run "
                     f"`mediamon run {self.config_file}`.")
        elif not any(tables.values()):
            files = ", ".join(sorted({str(p) for p in self.paths.values()}))
            empty = (f"The store is empty ({files} not written yet): run `mediamon {self.fill} {self.config_file}` "
                     f"to fill it; this page updates by itself.")
        else:
            empty = ""
        for what, wanted in SQLITE_INDEXES.items():
            path = self._existing(what)
            if not (path and tables.get(what)):
                continue
            with self._conn(path) as conn:
                have = {row[0] for row in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name=?", (what,))}
            missing = [name for name, _ in wanted if name not in have]
            if missing:
                notices.append(f"The {what} table was written by an older mediamon and lacks the indexes "
                               f"{', '.join(missing)}: pages stay correct but slow on a large store. "
                               f"Any `mediamon run {self.config_file}` (or `stream`) that writes this sink adds them.")
        return {"empty": empty, "tables": tables, "notices": notices,
                "stories": "stories" in self.columns("topics"),
                "story_table": self._stories_path() is not None}

    # ------------------------------------------------------------ period

    def resolve(self, f: Filters) -> Filters:
        """`period` made concrete: since = newest stored window start minus the period."""
        if f.since or f.period is None:
            return f
        latest = self._latest_window()
        if latest is None:
            return f
        return dataclasses.replace(f, since=_shift(latest, f.period - 1))

    def bounds(self, f: Filters) -> tuple[str | None, str | None]:
        return f.since, f.until

    def _latest_window(self) -> str | None:
        for what in ("topics", "counts"):
            path = self._existing(what)
            if path and self.has_table(path, what):
                with self._conn(path) as conn:
                    row = conn.execute(f"SELECT MAX(window_start) FROM {what}").fetchone()  # PK prefix
                if row and row[0]:
                    return str(row[0])
        return None

    # ------------------------------------------------------------ charts

    def _series(self, what: str, key: str, f: Filters, by_language: bool) -> dict[str, Any]:
        path = self._existing(what)
        if path is None or not self.has_table(path, what):
            return {"buckets": "window", "series": {}}
        cols = self.columns(what)
        metric = "stories" if f.metric == "stories" and "stories" in cols else "articles"
        since, until = self.bounds(f)
        cond, args = _where(since, until, language=f.language, topic=f.topic if what == "topics" else None)
        group = "language" if by_language else key
        with self._conn(path) as conn:
            lo, hi = since, until
            if lo is None:   # MIN or MAX alone of the primary key's first column: an index lookup
                lo = conn.execute(f"SELECT MIN(window_start) FROM {what}").fetchone()[0]
            if hi is None:
                hi = conn.execute(f"SELECT MAX(window_start) FROM {what}").fetchone()[0]
            points = (to_epoch(hi) - to_epoch(lo)) / self.window if lo and hi else 0
            width, label = 20, "window"
            if points > MAX_POINTS:
                width, label = (10, "day") if points * self.window / 86400 <= MAX_POINTS else (7, "month")
            rows = conn.execute(
                f"SELECT substr(window_start, 1, {width}) AS b, {group}, SUM({metric}) FROM {what} "
                f"WHERE {cond} GROUP BY b, {group} ORDER BY b", args).fetchall()
        series: dict[str, dict[str, list[Any]]] = {}
        for bucket, name, total in rows:
            s = series.setdefault(str(name), {"x": [], "y": []})
            s["x"].append(_bucket_time(str(bucket)))
            s["y"].append(int(total or 0))
        return {"buckets": label, "metric": metric, "series": series}

    def topic_series(self, f: Filters) -> dict[str, Any]:
        return self._series("topics", "topic", f, by_language=False)

    def language_series(self, f: Filters) -> dict[str, Any]:
        """Topic counts summed per language: an article tagged with two topics counts twice."""
        return self._series("topics", "topic", f, by_language=True)

    def keyword_series(self, f: Filters) -> dict[str, Any]:
        return self._series("counts", "keyword", f, by_language=False)

    # ------------------------------------------------------------ lists

    def articles(self, f: Filters, ids: list[str] | None = None) -> dict[str, Any]:
        path = self._existing("articles")
        if path is None or not self.has_table(path, "articles"):
            return {"rows": [], "next": None}
        cols = self.columns("articles")
        wanted = ("id", "url", "title", "summary", "source", "published", "language", "topics",
                  "keywords", "evidence", "story", "story_size")
        select = ", ".join(c if c in cols else f"NULL AS {c}" for c in wanted)
        where, args = ["1=1"], []
        if ids is not None:
            where.append(f"id IN ({', '.join('?' for _ in ids)})")
            args.extend(ids)
        else:
            since, until = self.bounds(f)
            if since:
                where.append("published >= ?")
                args.append(since)
            if until:
                where.append("published < ?")
                args.append(until)
            for column, value in (("language", f.language), ("source", f.source)):
                if value:
                    where.append(f"{column} = ?")
                    args.append(value)
            if f.topic:
                where.append("topics LIKE ? ESCAPE '\\'")
                args.append("%" + _like(json.dumps(f.topic, ensure_ascii=False)) + "%")
            if f.before:
                # the first term is an index range; an OR alone makes SQLite sort every match
                where.append("published <= ? AND (published < ? OR id < ?)")
                args.extend([f.before[0], f.before[0], f.before[1]])
        limit = len(ids) if ids is not None else f.limit + 1
        sql = (f"SELECT {select} FROM articles WHERE {' AND '.join(where)} "
               f"ORDER BY published DESC, id DESC LIMIT ?")
        with self._conn(path) as conn:
            conn.row_factory = sqlite3.Row
            rows = [_article(dict(r)) for r in conn.execute(sql, [*args, max(limit, 0)])]
        more = ids is None and len(rows) > f.limit
        rows = rows[:f.limit] if ids is None else rows
        nxt = f"{rows[-1]['published']}|{rows[-1]['id']}" if more and rows else None
        return {"rows": rows, "next": nxt}

    def alerts(self, f: Filters, limit: int = 20) -> list[dict[str, Any]]:
        path = self._existing("alerts")
        if path is None or not self.has_table(path, "alerts"):
            return []
        since, until = self.bounds(f)
        cond, args = _where(since, until, topic=f.topic)
        with self._conn(path) as conn:
            conn.row_factory = sqlite3.Row
            rows = [dict(r) for r in conn.execute(
                f"SELECT * FROM alerts WHERE {cond} ORDER BY window_start DESC, topic LIMIT ?",
                [*args, limit])]
        for alert in rows:
            try:
                ids = [str(i) for i in json.loads(alert.get("articles") or "[]")]
            except (json.JSONDecodeError, TypeError):
                ids = []
            found = {a["id"]: a for a in self.articles(f, ids=ids[:50])["rows"]} if ids else {}
            alert["articles"] = [found.get(i) or {"id": i, "missing": True} for i in ids[:50]]
            alert["article_count"] = len(ids)
        return rows

    def dead_letters(self, f: Filters, limit: int = 10) -> dict[str, Any]:
        path = self._existing("dead_letters")
        if path is None or not self.has_table(path, "dead_letters"):
            return {"stages": [], "latest": []}
        since, until = self.bounds(f)
        cond, args = _where(since, until, time_column="at", source=f.source)
        with self._conn(path) as conn:
            stages = [{"stage": s, "count": n} for s, n in conn.execute(
                f"SELECT stage, COUNT(*) FROM dead_letters WHERE {cond} GROUP BY stage ORDER BY 2 DESC", args)]
            latest = [{"stage": s, "error": e, "source": src, "raw": (raw or "")[:300], "at": at}
                      for s, e, src, raw, at in conn.execute(
                          f"SELECT stage, error, source, raw, at FROM dead_letters WHERE {cond} "
                          f"ORDER BY at DESC LIMIT ?", [*args, limit])]
        return {"stages": stages, "latest": latest}

    def feeds(self, names: dict[str, str]) -> dict[str, Any]:
        """Each configured feed (`names`: URL -> name) with its row of `feed_state`, if any.

        Only feeds fetched over HTTP(S) by a run with a state store have state; a configured
        feed without a row is listed as never fetched (local files never get one)."""
        if self.state_path is None:
            rows = [{"url": url, "name": name, "last_status": None} for url, name in sorted(names.items())]
            return {"note": f"{self.config_file} has no state.path, so no feed health is kept; "
                            "configured feeds:", "rows": rows}
        stored: dict[str, dict[str, Any]] = {}
        if self.state_path.exists() and self.has_table(self.state_path, "feed_state"):
            with self._conn(self.state_path) as conn:
                have = {row[1] for row in conn.execute("PRAGMA table_info(feed_state)")}
                select = ", ".join(c if c in have else f"NULL AS {c}" for c in FEED_FIELDS)
                conn.row_factory = sqlite3.Row
                stored = {str(r["url"]): dict(r) for r in conn.execute(f"SELECT {select} FROM feed_state")}
        rows = []
        for url in sorted(set(names) | set(stored)):
            row = stored.get(url) or {"url": url, "last_status": None}
            row["name"] = names.get(url, "(no longer configured)")
            for key in ("last_fetch", "last_new_item", "next_due"):
                if isinstance(row.get(key), (int, float)):
                    row[key] = from_epoch(float(row[key]))
            rows.append(row)
        return {"note": "", "rows": rows}

    def options(self) -> dict[str, list[str]]:
        """Languages and sources stored (for the filter menus)."""
        out: dict[str, list[str]] = {"languages": [], "sources": []}
        path = self._existing("articles")
        if path and self.has_table(path, "articles"):
            with self._conn(path) as conn:
                out["languages"] = _distinct(conn, "language", 200)
                out["sources"] = _distinct(conn, "source", 500)
        return out

    def _stories_path(self) -> Path | None:
        """The `stories` table (issue 16): its own sqlite sink, else beside the articles."""
        for what in ("stories", "articles"):
            path = self._existing(what)
            if path is not None and self.has_table(path, "stories"):
                return path
        return None

    def stories(self, f: Filters, limit: int = 10) -> list[dict[str, Any]]:
        """The period's biggest stories (rows are per story and window: summed per story)."""
        path = self._stories_path()
        if path is None:
            return []
        with self._conn(path) as conn:
            have = {row[1] for row in conn.execute("PRAGMA table_info(stories)")}
            if not {"story", "window_start", "size"} <= have:
                return []
            cond, args = _where(f.since, f.until)
            where = [cond]
            for column, value in (("topics", f.topic), ("languages", f.language), ("outlets", f.source)):
                if value and column in have:
                    where.append(f"{column} LIKE ? ESCAPE '\\'")
                    args.append("%" + _like(json.dumps(value, ensure_ascii=False)) + "%")
            pick = {c: (c if c in have else f"NULL AS {c}") for c in
                    ("headline", "url", "outlets", "languages", "topics")}
            conn.row_factory = sqlite3.Row
            rows = [dict(r) for r in conn.execute(
                f"SELECT story, {pick['headline']}, {pick['url']}, {pick['outlets']}, {pick['languages']}, "
                f"{pick['topics']}, SUM(size) AS size, "
                f"{'MIN(first_seen)' if 'first_seen' in have else 'MIN(window_start)'} AS first_seen, "
                f"{'MAX(last_seen)' if 'last_seen' in have else 'MAX(window_end)'} AS last_seen "
                f"FROM stories WHERE {' AND '.join(where)} GROUP BY story ORDER BY size DESC, last_seen DESC LIMIT ?",
                [*args, limit])]
        for row in rows:
            for key in ("outlets", "languages", "topics"):
                try:
                    row[key] = json.loads(row[key]) if isinstance(row[key], str) and row[key] else []
                except json.JSONDecodeError:
                    row[key] = []
        return rows


def _where(since: str | None, until: str | None, time_column: str = "window_start",
           **equal: str | None) -> tuple[str, list[Any]]:
    """`time_column` in [since, until) and `column = value` for each value given: SQL and args
    (column names are ours, never the request's; values are parameters)."""
    where, args = ["1=1"], []
    if since:
        where.append(f"{time_column} >= ?")
        args.append(since)
    if until:
        where.append(f"{time_column} < ?")
        args.append(until)
    for column, value in equal.items():
        if value:
            where.append(f"{column} = ?")
            args.append(value)
    return " AND ".join(where), args


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _distinct(conn: sqlite3.Connection, column: str, limit: int) -> list[str]:
    """DISTINCT values of an indexed articles column by hopping from one value to the next
    (one index seek per value instead of a scan of every row)."""
    rows = conn.execute(
        f"WITH RECURSIVE v(x) AS (SELECT MIN({column}) FROM articles UNION ALL "
        f"SELECT (SELECT MIN({column}) FROM articles WHERE {column} > v.x) FROM v WHERE v.x IS NOT NULL) "
        f"SELECT x FROM v WHERE x IS NOT NULL LIMIT ?", (limit,))
    return [str(r[0]) for r in rows if r[0]]


def _bucket_time(bucket: str) -> str:
    if len(bucket) == 7:
        return bucket + "-01T00:00:00Z"
    if len(bucket) == 10:
        return bucket + "T00:00:00Z"
    return bucket


def _article(row: dict[str, Any]) -> dict[str, Any]:
    for key in ("topics", "keywords", "evidence"):
        value = row.get(key)
        if isinstance(value, str):
            try:
                row[key] = json.loads(value) if value.strip() else None
            except json.JSONDecodeError:
                row[key] = None
    row["topics"] = row.get("topics") or []
    row["keywords"] = row.get("keywords") or []
    row["evidence"] = row.get("evidence") or {}
    return row


def store_of(config: Any) -> Store:
    """The Store of a loaded Config: first sqlite sink per record kind; the state store for feeds."""
    paths: dict[str, Path] = {}
    for sink in config.sinks:
        if sink.type == "sqlite" and sink.what in WHATS and sink.path is not None:
            paths.setdefault(sink.what, Path(sink.path))
    return Store(paths=paths, state_path=config.state.path, config_file=str(config.file),
                 window=float(config.windows.period or config.windows.size),
                 fill="stream" if config.sources.pubsub is not None else "run")
