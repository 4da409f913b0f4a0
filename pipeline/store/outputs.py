"""Reading the stored outputs back (for `mediamon report` and `mediamon alerts backtest`).

Each configured sink of type `sqlite`, `jsonl` or `csv` is read back as plain dicts in the
contract's record form (list fields decoded from JSON text). Shards written by a distributed
runner (`path-00000-of-00002`, `stem-00000-of-00002.suffix`) are read too. Records that share a
natural key (see transforms.records.NATURAL_KEYS) are kept once, the last read winning, so a
JSONL file appended by several runs still gives true totals. `pubsub` sinks cannot be read back
and are listed in `StoredOutputs.skipped`.

`since`/`until` (ISO-8601) keep records whose time is in [since, until): `published` for
articles, `window_start` for counts, topics and alerts, `at` for dead letters; with a period
given, a record whose time is missing or unreadable is left out.
"""
from __future__ import annotations

import csv
import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

from pipeline.store import sqlite
from transforms.records import NATURAL_KEYS, RECORD_FIELDS

WHATS = ("articles", "counts", "topics", "alerts", "dead_letters", "stories")
LIST_FIELDS = {"articles": ("topics", "keywords"), "alerts": ("articles",),
               "stories": ("outlets", "languages", "topics")}
INT_FIELDS = {"counts": ("articles", "stories", "mentions"), "topics": ("articles", "stories"),
              "alerts": ("count",), "articles": ("story_size",), "stories": ("size",)}
FLOAT_FIELDS = {"articles": ("language_confidence",), "alerts": ("baseline", "score")}
TIME_FIELD = {"articles": "published", "counts": "window_start", "topics": "window_start",
              "alerts": "window_start", "dead_letters": "at", "stories": "window_start"}
READABLE_TYPES = ("sqlite", "jsonl", "csv")


class OutputsError(Exception):
    """A stored output exists but cannot be read (corrupt file, wrong table shape)."""


@dataclass
class StoredOutputs:
    articles: list[dict[str, Any]] = field(default_factory=list)
    counts: list[dict[str, Any]] = field(default_factory=list)
    topics: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    stories: list[dict[str, Any]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)        # files actually read
    skipped: list[str] = field(default_factory=list)      # sinks that could not be read back, and why
    since: str | None = None
    until: str | None = None

    def records(self, what: str) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = getattr(self, what)
        return records


def parse_iso(value: str) -> datetime:
    """ISO-8601 (a trailing Z or no zone means UTC) -> aware datetime; ValueError otherwise."""
    moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _sink_fields(sink: Any) -> tuple[str, str, Path | None]:
    """(what, type, path) from a (what, type, path) tuple or a SinkConfig-like object."""
    if isinstance(sink, tuple):
        what, kind, path = sink
    else:
        what, kind, path = sink.what, sink.type, getattr(sink, "path", None)
    return str(what), str(kind), Path(path) if path is not None else None


def load_outputs(sinks: Sequence[Any], since: str | None = None, until: str | None = None) -> StoredOutputs:
    """Read every readable sink; a sink whose file does not exist yet gives no records."""
    lo = parse_iso(since) if since else None
    hi = parse_iso(until) if until else None
    out = StoredOutputs(since=since, until=until)
    gathered: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {w: {} for w in WHATS}
    for sink in sinks:
        what, kind, path = _sink_fields(sink)
        if what not in WHATS:
            out.skipped.append(f"{what} ({kind}): not a record kind that can be reported")
            continue
        if kind not in READABLE_TYPES or path is None:
            out.skipped.append(f"{what} ({kind}): a {kind} sink cannot be read back")
            continue
        for file in _files(path):
            out.files.append(str(file))
            for record in _read(file, kind, what):
                record = _normalise(record, what)
                if _in_period(record, what, lo, hi):
                    gathered[what][tuple(record.get(k) for k in NATURAL_KEYS[what])] = record
    for what in WHATS:
        records = list(gathered[what].values())
        records.sort(key=lambda r: tuple(str(r.get(k, "")) for k in (TIME_FIELD[what],) + NATURAL_KEYS[what]))
        setattr(out, what, records)
    return out


def _files(path: Path) -> list[Path]:
    if path.exists():
        return [path]
    shards = sorted(path.parent.glob(f"{path.name}-*-of-*"))
    if not shards and path.suffix:
        shards = sorted(path.parent.glob(f"{path.stem}-*-of-*{path.suffix}"))
    return shards


def _read(file: Path, kind: str, what: str) -> Iterator[dict[str, Any]]:
    if kind == "jsonl":
        yield from _read_jsonl(file)
    elif kind == "csv":
        with file.open(newline="", encoding="utf-8") as handle:
            yield from csv.DictReader(handle)
    else:
        yield from _read_sqlite(file, what)


def _read_jsonl(file: Path) -> Iterator[dict[str, Any]]:
    with file.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise OutputsError(f"{file}:{number}: not a JSON line: {exc}") from exc
            if not isinstance(record, dict):
                raise OutputsError(f"{file}:{number}: expected a JSON object")
            yield record


def _read_sqlite(file: Path, table: str) -> Iterator[dict[str, Any]]:
    try:
        conn = sqlite.connect(file, read_only=True)
    except sqlite3.Error as exc:
        raise OutputsError(f"{file}: cannot open SQLite file: {exc}") from exc
    try:
        conn.row_factory = sqlite3.Row
        if not sqlite.table_exists(conn, table):
            return
        for row in conn.execute(f'SELECT * FROM "{table}"'):  # table is one of WHATS
            yield dict(row)
    except sqlite3.Error as exc:
        raise OutputsError(f"{file}: cannot read table {table}: {exc}") from exc
    finally:
        conn.close()


def _normalise(record: dict[str, Any], what: str) -> dict[str, Any]:
    """Contract keys only (extras such as article evidence kept), lists and numbers decoded."""
    rec = dict(record)
    for key in LIST_FIELDS.get(what, ()):
        value = rec.get(key)
        if isinstance(value, str):
            text = value
            try:
                value = json.loads(text) if text.strip() else []
            except json.JSONDecodeError:
                value = [v for v in text.split(",") if v]   # a plain comma list (CSV)
        rec[key] = list(value) if isinstance(value, (list, tuple)) else []
    for key in INT_FIELDS.get(what, ()):
        if isinstance(rec.get(key), str) and rec[key].strip():
            rec[key] = int(float(rec[key]))
    for key in FLOAT_FIELDS.get(what, ()):
        if isinstance(rec.get(key), str) and rec[key].strip():
            rec[key] = float(rec[key])
    if isinstance(rec.get("evidence"), str):
        try:
            rec["evidence"] = json.loads(rec["evidence"])
        except json.JSONDecodeError:
            rec.pop("evidence")
    for key in RECORD_FIELDS[what]:
        rec.setdefault(key, None)
    return rec


def _in_period(record: dict[str, Any], what: str, lo: datetime | None, hi: datetime | None) -> bool:
    if lo is None and hi is None:
        return True
    value = record.get(TIME_FIELD[what])
    if not isinstance(value, str) or not value:
        return False
    try:
        moment = parse_iso(value)
    except ValueError:
        return False
    return (lo is None or moment >= lo) and (hi is None or moment < hi)

