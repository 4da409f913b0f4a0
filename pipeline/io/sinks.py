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
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, cast

import apache_beam as beam

from pipeline.config import SinkConfig
from pipeline.io.files import SHARD_TEMPLATE, merge_shards
from pipeline.store.sqlite import connect_records, upsert_records
from transforms.records import RECORD_FIELDS

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- sources















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


class _SqliteWriteFn(beam.DoFn):
    """Upserts batches of records into one SQLite file, one transaction per batch."""

    def __init__(self, path: str, what: str, grow_only: bool = False) -> None:
        self.path = path
        self.what = what
        self.grow_only = grow_only

    def process(self, batch: list[Any]) -> Iterator[int]:
        conn = connect_records(Path(self.path))
        try:
            with conn:
                n = upsert_records(conn, self.what, (record_row(self.what, r) for r in batch),
                                   grow_only=self.grow_only)
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


def _write_pubsub(records: beam.PCollection, sink: SinkConfig, streaming: bool) -> Any:
    assert sink.topic is not None, "config validation requires a topic"
    return (records
            | "ToBytes" >> beam.Map(lambda r, f=to_json_line(sink.what): f(r).encode("utf-8"))
            | "WritePubSub" >> beam.io.WriteToPubSub(sink.topic))


def _write_sqlite(records: beam.PCollection, sink: SinkConfig, streaming: bool) -> Any:
    assert sink.path is not None, "config validation requires a path"
    return (records
            | "Batch" >> _batch(streaming)
            | "Upsert" >> beam.ParDo(_SqliteWriteFn(
                str(sink.path), sink.what,
                # accumulating panes only grow; a portable runner may deliver them out of order
                grow_only=streaming and sink.what in ("counts", "topics"))))


def _write_lines(records: beam.PCollection, sink: SinkConfig, streaming: bool) -> Any:
    """jsonl and csv: shards per bundle in batch (merged into one file after a local run),
    appended lines in streaming."""
    assert sink.path is not None, "config validation requires a path"
    line = to_json_line(sink.what) if sink.type == "jsonl" else to_csv_line(sink.what)
    header = csv_header(sink.what) if sink.type == "csv" else None
    lines = records | "Format" >> beam.Map(line)
    if streaming:
        return lines | "Batch" >> _batch(True) | "Append" >> beam.ParDo(_AppendLinesFn(str(sink.path), header))
    sink.path.parent.mkdir(parents=True, exist_ok=True)
    # Shards per bundle (no grouping of every line under one key, which would hold the
    # whole output in memory); a local run merges them into one file at `path` afterwards.
    return lines | "Write" >> beam.io.WriteToText(
        str(sink.path), shard_name_template=SHARD_TEMPLATE, header=header)


SinkWriter = Callable[[beam.PCollection, SinkConfig, bool], Any]

# The sink registry: config `type` -> how its records are written. A new sink type is one
# function here and its name in pipeline/config/model.SINK_TYPES.
SINK_WRITERS: dict[str, SinkWriter] = {
    "jsonl": _write_lines,
    "csv": _write_lines,
    "sqlite": _write_sqlite,
    "pubsub": _write_pubsub,
}


class WriteSink(beam.PTransform):
    """Records (with to_json) -> the configured sink.  `streaming` switches file sinks to append."""

    def __init__(self, sink: SinkConfig, streaming: bool = False) -> None:
        super().__init__()
        self.sink = sink
        self.streaming = streaming

    def expand(self, records: beam.PCollection) -> Any:
        return SINK_WRITERS[self.sink.type](records, self.sink, self.streaming)


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


class _BundleBatches(beam.PTransform):
    """Streaming: into the global window first (the batch is emitted there: a portable runner
    checks that the output window matches the step's windowing), then one batch per bundle."""

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        from apache_beam.transforms.window import GlobalWindows
        return cast("beam.PCollection", records | "Global" >> beam.WindowInto(GlobalWindows())
                    | "PerBundle" >> beam.ParDo(_BundleBatchFn()))


def _batch(streaming: bool) -> beam.PTransform:
    if streaming:
        return _BundleBatches()
    return beam.BatchElements(min_batch_size=100, max_batch_size=5000)




