"""Streaming semantics on TestStream: windows, early/on-time/late panes, dedup expiry, SplitLate."""
from __future__ import annotations

from typing import Any

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to, equal_to_per_window
from apache_beam.transforms.window import IntervalWindow, TimestampedValue

from pipeline.jobs.stream import streaming_trigger
from transforms.counts import CountPerWindow
from transforms.dedup import Deduplicate
from transforms.late import FixedClock, SplitLate, deadline, first_window_end
from transforms.records import Article
from transforms.timeutil import from_epoch


def article(id_: str, at: float, keyword: str = "raqqa") -> Article:
    return Article(id=id_, url="", title=id_, summary="", source="s", published=from_epoch(at),
                   fetched=from_epoch(at), language="en", keywords=(keyword,),
                   keyword_mentions=((keyword, 1),))


def streaming_pipeline() -> TestPipeline:
    options = PipelineOptions(flags=[])
    options.view_as(StandardOptions).streaming = True
    return TestPipeline(options=options)


def counts_of(records: Any) -> Any:
    return records | beam.Map(lambda c: (c.keyword, c.articles))


def test_fixed_windows_early_on_time_and_late_panes_accumulate() -> None:
    stream = (TestStream()
              .advance_watermark_to(0)
              .add_elements([TimestampedValue(article("a", 10), 10), TimestampedValue(article("b", 20), 20)])
              .advance_processing_time(30)          # early pane: 2 so far
              .add_elements([TimestampedValue(article("c", 30), 30)])
              .advance_watermark_to(60)             # on-time pane: 3
              .add_elements([TimestampedValue(article("d", 40), 40)])   # late but allowed: 4
              .advance_watermark_to(200)
              .advance_watermark_to_infinity())
    with streaming_pipeline() as p:
        out = (p | stream
               | beam.Map(lambda tv: tv)
               | CountPerWindow(60, None, allowed_lateness=100, trigger=streaming_trigger(10)))
        assert_that(counts_of(out["counts"]),
                    equal_to_per_window({IntervalWindow(0, 60): [("raqqa", 2), ("raqqa", 3), ("raqqa", 4)]}))


def test_sliding_windows_count_each_article_in_every_window() -> None:
    stream = (TestStream()
              .add_elements([TimestampedValue(article("a", 70), 70), TimestampedValue(article("b", 130), 130)])
              .advance_watermark_to_infinity())
    with streaming_pipeline() as p:
        out = p | stream | CountPerWindow(120, 60, allowed_lateness=0, trigger=streaming_trigger(10))
        assert_that(counts_of(out["counts"]), equal_to_per_window({
            IntervalWindow(0, 120): [("raqqa", 1)],
            IntervalWindow(60, 180): [("raqqa", 2)],
            IntervalWindow(120, 240): [("raqqa", 1)],
        }))


def test_dedup_state_expires_after_ttl() -> None:
    stream = (TestStream()
              .advance_watermark_to(0)
              .add_elements([TimestampedValue(article("x", 10), 10)])
              .add_elements([TimestampedValue(article("x", 10), 20)])     # duplicate: dropped
              .advance_watermark_to(200)                                  # past 10 + ttl 100: forgotten
              .add_elements([TimestampedValue(article("x", 10), 210)])    # seen again as new
              .advance_watermark_to_infinity())
    with streaming_pipeline() as p:
        out = p | stream | Deduplicate(ttl_seconds=100) | beam.Map(lambda a: a.id)
        assert_that(out, equal_to(["x", "x"]))


def test_dedup_within_ttl_keeps_one() -> None:
    stream = (TestStream()
              .add_elements([TimestampedValue(article("x", 10), 10), TimestampedValue(article("y", 10), 10)])
              .advance_watermark_to(50)
              .add_elements([TimestampedValue(article("x", 10), 60)])
              .advance_watermark_to_infinity())
    with streaming_pipeline() as p:
        out = p | stream | Deduplicate(ttl_seconds=1000) | beam.Map(lambda a: a.id)
        assert_that(out, equal_to(["x", "y"]))


@pytest.mark.parametrize("size,period,t,end", [(60, None, 10, 60), (60, None, 60, 120),
                                               (120, 60, 70, 120), (120, 60, 130, 180), (3600, 900, 0, 900)])
def test_first_window_end(size: float, period: float | None, t: float, end: float) -> None:
    assert first_window_end(t, size, period) == end
    assert deadline(t, size, period, 30) == end + 30


def test_split_late_sends_items_behind_the_watermark_to_a_counted_output() -> None:
    # clock (watermark) at 1000, windows of 60 s, lateness 100 s, margin 0: deadline must be > 1000
    items = [article("old", 800), article("edge", 840), article("fresh", 900), article("new", 990)]
    with streaming_pipeline() as p:
        split = (p | TestStream().add_elements(items).advance_watermark_to_infinity()
                 | SplitLate(60, None, 100, clock=FixedClock(1000), margin=0))
        assert_that(split[SplitLate.ON_TIME] | "OnTimeIds" >> beam.Map(lambda a: a.id),
                    equal_to(["fresh", "new"]), label="on_time")
        assert_that(split[SplitLate.LATE] | "LateIds" >> beam.Map(lambda a: a.id),
                    equal_to(["old", "edge"]), label="late")
    result = p.result
    late = [c for c in result.metrics().query()["counters"] if c.key.metric.name == "late"]
    assert sum(c.committed for c in late) == 2
