"""Config type -> read or write PTransform.  All of mediamon's I/O lives here (and in fetch.py).

Sources: `feeds`/`opml` are fetched on the driver (pipeline/fetch.py: concurrent, polite,
conditional GET) and enter the pipeline as FeedDocuments; `jsonl` is read with Beam's
text source as bytes (a bad line is a dead letter later, not a crash); `pubsub` uses Beam's
Pub/Sub source (streaming only).
Sinks: `jsonl`, `csv`, `sqlite`, `pubsub`, chosen per sink by its `type`.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import apache_beam as beam

from pipeline.config import Config, FeedSource, SinkConfig
from transforms.records import (NATURAL_KEYS, RECORD_FIELDS, DeadLetter, FeedDocument, RawItem)
from transforms.timeutil import now_iso

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- sources

def all_feeds(config: Config) -> list[FeedSource]:
    """Configured feeds plus every feed outline of the OPML files, each URL once."""
    from pipeline.fetch import dedupe_feeds, read_opml
    feeds = list(config.sources.feeds)
    for opml in config.sources.opml:
        feeds.extend(read_opml(opml))
    return dedupe_feeds(feeds)


def fetch_documents(config: Config, store: Any = None,
                    progress: bool = True) -> tuple[list[FeedDocument], list[DeadLetter], dict[str, int]]:
    """Fetch every due feed once: documents to parse, dead letters for feeds that failed."""
    from pipeline.fetch import fetch_feeds
    feeds = all_feeds(config)
    settings = fetch_settings(config)
    docs: list[FeedDocument] = []
    dead: list[DeadLetter] = []
    outcomes: dict[str, int] = {}

    tty = sys.stderr.isatty()
    step = 1 if tty else 25

    def report(done: int, total: int, outcome: Any) -> None:
        if not progress or total < 2 or (done % step and done != total):
            return
        line = f"fetching feeds: {done}/{total} ({outcome.feed.name}: {outcome.status})"
        if tty:
            print("\r" + line.ljust(78)[:78], end="" if done < total else "\n", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    for outcome in fetch_feeds(feeds, store=store, settings=settings, progress=report):
        outcomes[outcome.status] = outcomes.get(outcome.status, 0) + 1
        if outcome.document is not None:
            docs.append(outcome.document)
        elif outcome.status == "error" or (outcome.status == "retired" and outcome.http_status == 410):
            # a feed gone this run (410) yields nothing: one item, one dead letter; later runs skip it
            dead.append(DeadLetter.of("fetch", outcome.error or "fetch failed", outcome.feed.name,
                                      outcome.feed.url, now_iso()))
    return docs, dead, outcomes


def fetch_settings(config: Config) -> Any:
    from dataclasses import replace

    from pipeline.fetch import FetchSettings
    f = config.fetch
    settings = FetchSettings(timeout=f.timeout, max_bytes=f.max_bytes, concurrency=f.concurrency,
                             per_host_delay=f.per_host_delay, deadline=f.deadline, interval=f.interval,
                             backoff_base=f.backoff_base, backoff_cap=f.backoff_cap,
                             max_redirects=f.max_redirects)
    return replace(settings, user_agent=f.user_agent) if f.user_agent else settings


def _to_raw_item(source: str) -> Callable[[bytes], RawItem]:
    fetched = now_iso()

    def convert(line: bytes) -> RawItem:
        return RawItem(source=source, data=line, fetched=fetched)
    return convert


class ReadJsonlItems(beam.PTransform):
    """JSONL files -> RawItem (bytes, undecoded); blank lines are not items."""

    def __init__(self, paths: Sequence[Path]) -> None:
        super().__init__()
        self.paths = list(paths)

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        parts = []
        for i, path in enumerate(self.paths):
            parts.append(
                pbegin
                | f"Read{i}" >> beam.io.ReadFromText(str(path), coder=beam.coders.BytesCoder(),
                                                    validate=False)
                | f"NonBlank{i}" >> beam.Filter(lambda line: bool(line.strip()))
                | f"ToItem{i}" >> beam.Map(_to_raw_item(path.name)))
        return parts | "FlattenJsonl" >> beam.Flatten() if len(parts) > 1 else parts[0]


def message_to_item(subscription: str) -> Callable[[Any], RawItem]:
    def convert(message: Any) -> RawItem:
        attrs = tuple(sorted((message.attributes or {}).items()))
        return RawItem(source=subscription, data=message.data or b"", fetched=now_iso(), attributes=attrs)
    return convert


class ReadPubSubItems(beam.PTransform):
    """Pub/Sub messages (data: one JSON item; attributes id/source/published) -> RawItem."""

    def __init__(self, subscription: str | None, topic: str | None) -> None:
        super().__init__()
        self.subscription = subscription
        self.topic = topic

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        read = beam.io.ReadFromPubSub(subscription=self.subscription, topic=self.topic,
                                      with_attributes=True)
        return (pbegin | "ReadPubSub" >> read
                | "ToItem" >> beam.Map(message_to_item(self.subscription or self.topic or "pubsub")))


# ---------------------------------------------------------------- sinks

def record_row(what: str, record: Any) -> dict[str, Any]:
    """The record as its contract JSON form (lists stay lists)."""
    return record.to_json() if hasattr(record, "to_json") else dict(record)


def to_json_line(what: str) -> Callable[[Any], str]:
    def convert(record: Any) -> str:
        return json.dumps(record_row(what, record), ensure_ascii=False, sort_keys=False)
    return convert


def to_csv_line(what: str) -> Callable[[Any], str]:
    fields = RECORD_FIELDS[what]

    def convert(record: Any) -> str:
        row = record_row(what, record)
        out = io.StringIO()
        csv.writer(out, lineterminator="").writerow(
            [json.dumps(row.get(f), ensure_ascii=False) if isinstance(row.get(f), (list, dict))
             else row.get(f) for f in fields])
        return out.getvalue()
    return convert


def csv_header(what: str) -> str:
    return ",".join(RECORD_FIELDS[what])


SQLITE_COLUMNS: dict[str, tuple[str, ...]] = {
    what: fields + (("evidence",) if what == "articles" else ()) for what, fields in RECORD_FIELDS.items()
}


def sqlite_connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=60)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    for what, cols in SQLITE_COLUMNS.items():
        key = ", ".join(NATURAL_KEYS[what])
        conn.execute(f"CREATE TABLE IF NOT EXISTS {what} ({', '.join(cols)}, PRIMARY KEY ({key}))")
    return conn


def sqlite_upsert(conn: sqlite3.Connection, what: str, rows: Iterable[dict[str, Any]]) -> int:
    """Insert or replace by natural key: a rerun over the same input leaves the same rows."""
    cols = SQLITE_COLUMNS[what]
    sql = (f"INSERT INTO {what} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)}) "
           f"ON CONFLICT ({', '.join(NATURAL_KEYS[what])}) DO UPDATE SET "
           + ", ".join(f"{c}=excluded.{c}" for c in cols if c not in NATURAL_KEYS[what]))
    if all(c in NATURAL_KEYS[what] for c in cols):
        sql = f"INSERT OR IGNORE INTO {what} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"
    values = [tuple(json.dumps(r.get(c), ensure_ascii=False) if isinstance(r.get(c), (list, dict))
                    else r.get(c) for c in cols) for r in rows]
    conn.executemany(sql, values)
    return len(values)


class _SqliteWriteFn(beam.DoFn):
    """Upserts batches of records into one SQLite file, one transaction per batch."""

    def __init__(self, path: str, what: str) -> None:
        self.path = path
        self.what = what

    def process(self, batch: list[Any]) -> Iterator[int]:
        conn = sqlite_connect(Path(self.path))
        try:
            with conn:
                n = sqlite_upsert(conn, self.what, (record_row(self.what, r) for r in batch))
        finally:
            conn.close()
        yield n


_APPEND_LOCK = threading.Lock()


class _AppendLinesFn(beam.DoFn):
    """Streaming file sink: appends each pane's records as lines (local runners only)."""

    def __init__(self, path: str, header: str | None) -> None:
        self.path = path
        self.header = header

    def process(self, batch: list[str]) -> Iterator[int]:
        path = Path(self.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with _APPEND_LOCK:
            new = not path.exists() or path.stat().st_size == 0
            with path.open("a", encoding="utf-8") as fh:
                if new and self.header:
                    fh.write(self.header + "\n")
                fh.writelines(line + "\n" for line in batch)
        yield len(batch)


class WriteSink(beam.PTransform):
    """Records (with to_json) -> the configured sink.  `streaming` switches file sinks to append."""

    def __init__(self, sink: SinkConfig, streaming: bool = False) -> None:
        super().__init__()
        self.sink = sink
        self.streaming = streaming

    def expand(self, records: beam.PCollection) -> Any:
        sink, what = self.sink, self.sink.what
        if sink.type == "pubsub":
            assert sink.topic is not None, "config validation requires a topic"
            return (records
                    | "ToBytes" >> beam.Map(lambda r, f=to_json_line(what): f(r).encode("utf-8"))
                    | "WritePubSub" >> beam.io.WriteToPubSub(sink.topic))
        assert sink.path is not None
        if sink.type == "sqlite":
            return (records
                    | "Batch" >> _batch(self.streaming)
                    | "Upsert" >> beam.ParDo(_SqliteWriteFn(str(sink.path), what)))
        line = to_json_line(what) if sink.type == "jsonl" else to_csv_line(what)
        header = csv_header(what) if sink.type == "csv" else None
        lines = records | "Format" >> beam.Map(line)
        if self.streaming:
            return lines | "Batch" >> _batch(True) | "Append" >> beam.ParDo(_AppendLinesFn(str(sink.path), header))
        sink.path.parent.mkdir(parents=True, exist_ok=True)
        # Shards per bundle (no grouping of every line under one key, which would hold the
        # whole output in memory); a local run merges them into one file at `path` afterwards.
        return lines | "Write" >> beam.io.WriteToText(
            str(sink.path), shard_name_template=SHARD_TEMPLATE, header=header)


SHARD_TEMPLATE = "-SSSSS-of-NNNNN"
_SHARD_GLOB = "-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9]"


def shard_files(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + _SHARD_GLOB))


def clear_shards(paths: Iterable[Path]) -> None:
    """Shards left by a run that died before merging must not join the next run's file."""
    for path in paths:
        for shard in shard_files(path):
            shard.unlink()


def merge_shards(path: Path, header: str | None = None) -> None:
    """Concatenate `path-NNNNN-of-NNNNN` into `path` (one header), atomically; remove shards."""
    shards = shard_files(path)
    tmp = path.with_name(path.name + ".merging")
    with tmp.open("wb") as out:
        if header:
            out.write(header.encode("utf-8") + b"\n")
        for shard in shards:
            with shard.open("rb") as part:
                if header:
                    first = part.readline()
                    if first.rstrip(b"\r\n") != header.encode("utf-8"):
                        out.write(first)
                while chunk := part.read(1 << 20):
                    out.write(chunk)
    tmp.replace(path)
    for shard in shards:
        shard.unlink()


def file_sinks(sinks: Iterable[SinkConfig]) -> list[SinkConfig]:
    return [s for s in sinks if s.type in ("jsonl", "csv") and s.path is not None]


def finish_file_sinks(sinks: Iterable[SinkConfig]) -> None:
    """After a batch run: each JSONL/CSV sink becomes one file at its path."""
    for sink in file_sinks(sinks):
        assert sink.path is not None
        merge_shards(sink.path, csv_header(sink.what) if sink.type == "csv" else None)


class _BundleBatchFn(beam.DoFn):
    """Streaming: one batch per bundle, emitted at the bundle's end, so a pane reaches its sink
    with its bundle; no per-key state or processing-time timers (BatchElements' streaming
    form keeps both), which the writes do not need."""

    def start_bundle(self) -> None:
        self.batch: list[Any] = []

    def process(self, element: Any) -> None:
        self.batch.append(element)

    def finish_bundle(self) -> Iterator[Any]:
        from apache_beam.transforms.window import GlobalWindows
        if self.batch:
            yield GlobalWindows.windowed_value(self.batch)
        self.batch = []


def _batch(streaming: bool) -> beam.PTransform:
    if streaming:
        return beam.ParDo(_BundleBatchFn())
    return beam.BatchElements(min_batch_size=100, max_batch_size=5000)


class _PostAlertFn(beam.DoFn):
    """POSTs each alert to the webhook (with retries); an undeliverable alert -> dead letter."""

    def __init__(self, spec: Any) -> None:
        self.spec = spec
        self.session: Any = None

    def setup(self) -> None:
        import requests
        self.session = requests.Session()

    def teardown(self) -> None:
        if self.session is not None:
            self.session.close()

    def process(self, alert: Any) -> Iterator[DeadLetter]:
        from pipeline.webhook import failure_dead_letter, post_alert
        result = post_alert(alert, self.spec, session=self.session)
        if not result.ok:
            log.warning("webhook: alert %s/%s not delivered: %s", alert.topic, alert.window_start, result.error)
            yield failure_dead_letter(alert, result, self.spec, now_iso())


class PostAlerts(beam.PTransform):
    """Alert -> (POST to the configured webhook) -> DeadLetter for each alert not delivered."""

    def __init__(self, spec: Any) -> None:
        super().__init__()
        self.spec = spec

    def expand(self, alerts: beam.PCollection) -> beam.PCollection:
        return alerts | "Post" >> beam.ParDo(_PostAlertFn(self.spec))
