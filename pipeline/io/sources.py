"""Config source type -> read PTransform: JSONL files and Pub/Sub subscriptions, as RawItems."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Sequence, cast

import apache_beam as beam

from transforms.records import RawItem
from transforms.timeutil import now_iso

log = logging.getLogger(__name__)


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
        return cast("beam.PCollection", parts | "FlattenJsonl" >> beam.Flatten() if len(parts) > 1 else parts[0])


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
        return (cast("beam.PCollection", pbegin | "ReadPubSub" >> read
                | "ToItem" >> beam.Map(message_to_item(self.subscription or self.topic or "pubsub"))))
