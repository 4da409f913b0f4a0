"""Config source type -> read PTransform: JSONL files and Pub/Sub subscriptions, as RawItems.

Pub/Sub has two readers:
- `ReadPubSubItems`: Beam's built-in ReadFromPubSub (the BundleBasedDirectRunner; Dataflow
  swaps in its own). The local runner acknowledges on pull.
- `ReadPubSubSDF`: a splittable DoFn that pulls synchronously (sized by bytes: io/pubsub.Puller)
  and acknowledges in a bundle finalizer, i.e. only after the runner has durably committed the
  bundle's output. Portable runners (Prism, Flink, Dataflow Runner v2) run it; Prism refuses
  the built-in reader. Its guarantee is the runner's: Dataflow and Flink checkpoint, so nothing
  acknowledged is lost; Prism keeps state in memory (a kill loses what it had acknowledged).
"""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, cast

import apache_beam as beam
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.watermark_estimators import WalltimeWatermarkEstimator
from apache_beam.transforms.core import RestrictionProvider
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Duration, Timestamp

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


class _PollRestrictions(RestrictionProvider):  # type: ignore[misc]
    """One endless offset range per subscription: each claimed offset is one pull."""

    def initial_restriction(self, element: Any) -> OffsetRange:
        return OffsetRange(0, sys.maxsize)

    def create_tracker(self, restriction: OffsetRange) -> OffsetRestrictionTracker:
        return OffsetRestrictionTracker(restriction)

    def restriction_size(self, element: Any, restriction: OffsetRange) -> int:
        return 1

    def split(self, element: Any, restriction: OffsetRange) -> Iterator[OffsetRange]:
        yield restriction                # one reader per subscription; Pub/Sub shares the load

    def truncate(self, element: Any, restriction: OffsetRange) -> None:
        return None                      # on drain: stop pulling


class _PullFn(beam.DoFn):
    """subscription -> RawItem, acknowledging each pull once its bundle is committed."""

    def __init__(self, subscription: str, max_messages: int = 500) -> None:
        self.subscription = subscription
        self.max_messages = max_messages
        self.puller: Any = None

    def setup(self) -> None:
        from pipeline.io.pubsub import Puller
        self.puller = Puller(self.subscription)

    @beam.DoFn.unbounded_per_element()
    def process(self, element: Any,
                finalizer: Any = beam.DoFn.BundleFinalizerParam,
                tracker: Any = beam.DoFn.RestrictionParam(_PollRestrictions()),
                watermark: Any = beam.DoFn.WatermarkEstimatorParam(
                    WalltimeWatermarkEstimator.default_provider())) -> Iterator[Any]:
        position = tracker.current_restriction().start
        if not tracker.try_claim(position):
            return
        pulled = self.puller.pull(self.max_messages, timeout=1.0)
        if not pulled:
            finalizer.register(lambda: None)   # Prism wants a finalizable bundle every time
            tracker.defer_remainder(Duration.of(0.2))   # = ProcessContinuation.resume() on the harness
            return
        ack_ids = [m.ack_id for m in pulled]
        puller = self.puller
        finalizer.register(lambda: puller.ack(ack_ids))
        fetched = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        now = Timestamp.now()
        for m in pulled:
            yield TimestampedValue(
                RawItem(source=self.subscription, data=m.data, fetched=fetched, attributes=m.attributes), now)
        tracker.defer_remainder()


class ReadPubSubSDF(beam.PTransform):
    """Pub/Sub subscription -> RawItem, with a splittable DoFn that acks in a bundle finalizer."""

    def __init__(self, subscription: str) -> None:
        super().__init__()
        self.subscription = subscription

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        return cast("beam.PCollection", pbegin | "Subscription" >> beam.Create([self.subscription])
                    | "Pull" >> beam.ParDo(_PullFn(self.subscription)).with_output_types(RawItem))
