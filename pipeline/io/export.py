"""Plain-Python sink writers: the exactly-once stream job exports the store's truth with these.

Same formats as the Beam sinks (pipeline/io/sinks.py): SQLite upserts by natural key (so it
always holds the true totals), JSONL/CSV append (the last line per key wins), Pub/Sub publishes
one JSON record per message. Every record kind (articles, counts, topics, dead letters, stories,
alerts) goes through here; pipeline/io/stream_outputs.py decides what and when.
"""
from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any, Sequence

from pipeline.config import SinkConfig
from pipeline.store.sqlite import connect_records, upsert_records
from pipeline.io.sinks import csv_header, record_row, to_csv_line, to_json_line

log = logging.getLogger(__name__)


class Exporter:
    """Writes records to every configured sink that asked for them; keeps connections open."""

    def __init__(self, sinks: Sequence[SinkConfig]) -> None:
        self.sinks = list(sinks)
        self._dbs: dict[Path, sqlite3.Connection] = {}
        self._publisher: Any = None

    def write(self, what: str, records: Sequence[Any]) -> None:
        if not records:
            return
        wanted = [s for s in self.sinks if s.what == what]
        if not wanted:
            return
        records = [record_row(what, r) for r in records]   # once, not once per sink (asdict is slow)
        for sink in wanted:
            if sink.what != what:
                continue
            if sink.type == "sqlite":
                assert sink.path is not None
                conn = self._dbs.get(sink.path)
                if conn is None:
                    conn = self._dbs[sink.path] = connect_records(sink.path)
                with conn:
                    upsert_records(conn, what, records)
            elif sink.type in ("jsonl", "csv"):
                assert sink.path is not None
                line = to_json_line(what) if sink.type == "jsonl" else to_csv_line(what)
                sink.path.parent.mkdir(parents=True, exist_ok=True)
                new = not sink.path.exists() or sink.path.stat().st_size == 0
                with sink.path.open("a", encoding="utf-8") as fh:
                    if new and sink.type == "csv":
                        fh.write(csv_header(what) + "\n")
                    fh.writelines(line(r) + "\n" for r in records)
            elif sink.type == "pubsub":
                from pipeline.io.pubsub import publish_all, publisher
                assert sink.topic is not None
                self._publisher = self._publisher or publisher()
                publish_all(self._publisher, sink.topic,
                            ((json.dumps(r, ensure_ascii=False).encode("utf-8"), {}) for r in records))

    def close(self) -> None:
        for conn in self._dbs.values():
            conn.close()
        self._dbs.clear()
