"""Stage 5, CountPerWindow: Articles -> KeywordCount and TopicCount per event-time window.

Input:  Article (deduplicated, language and topics set).
Output: a dict {"counts": PCollection[KeywordCount], "topics": PCollection[TopicCount],
        "dead_letters": PCollection[DeadLetter]} (an article whose time cannot be windowed; it
        stays an article, only its counting failed).

Event time is the article's `published` time.  Windows are fixed (`size`) or sliding
(`size` every `period`).  Batch uses the default trigger; streaming passes a trigger with
early firings and accumulating panes, so each pane carries the true count so far and the
sinks upsert it by natural key (never adding panes together).
"""
from __future__ import annotations

from typing import Any, Iterator

import apache_beam as beam
from apache_beam.transforms import window as beam_window
from apache_beam.transforms.trigger import AccumulationMode, TriggerFn

from transforms.deadletters import DEAD, dead_letter
from transforms.records import Article, KeywordCount, TopicCount

STAGE = "counts"
from transforms.timeutil import from_epoch, to_epoch


def window_fn(size: float, period: float | None) -> beam_window.WindowFn:
    if period and period != size:
        return beam_window.SlidingWindows(size=size, period=period)
    return beam_window.FixedWindows(size=size)


def windows_of(timestamp: float, size: float, period: float | None) -> list[tuple[float, float]]:
    """The [start, end) windows a timestamp falls in: what FixedWindows/SlidingWindows assign."""
    step = period if period and period != size else size
    start = timestamp - (timestamp % step)
    out = []
    while start > timestamp - size:
        out.append((start, start + size))
        start -= step
    return sorted(out)


def stamp(article: Article) -> beam_window.TimestampedValue:
    return beam_window.TimestampedValue(article, to_epoch(article.published))


class _StampFn(beam.DoFn):
    def process(self, article: Article) -> Iterator[Any]:
        try:
            stamped = stamp(article)
            for start, end in windows_of(stamped.timestamp.micros / 1e6, self.size, self.period):
                from_epoch(start), from_epoch(end)   # a window that cannot be written: raise here
        except Exception as exc:  # noqa: BLE001 - one article must not fail the job: dead letter
            yield dead_letter(STAGE, article, exc)
            return
        yield stamped

    def __init__(self, size: float, period: float | None) -> None:
        self.size, self.period = size, period


def keyword_pairs(article: Article) -> Iterator[tuple[tuple[str, str], tuple[int, int]]]:
    for keyword, mentions in article.keyword_mentions:
        yield (keyword, article.language), (1, mentions)


def topic_pairs(article: Article) -> Iterator[tuple[tuple[str, str], int]]:
    for topic in article.topics:
        yield (topic, article.language), 1


class _SumPairs(beam.CombineFn):
    def create_accumulator(self) -> tuple[int, int]:
        return (0, 0)

    def add_input(self, acc: tuple[int, int], value: tuple[int, int]) -> tuple[int, int]:
        return (acc[0] + value[0], acc[1] + value[1])

    def merge_accumulators(self, accs: Any) -> tuple[int, int]:
        articles = mentions = 0
        for a, m in accs:
            articles += a
            mentions += m
        return (articles, mentions)

    def extract_output(self, acc: tuple[int, int]) -> tuple[int, int]:
        return acc


def _bounds(win: beam_window.BoundedWindow) -> tuple[str, str]:
    return from_epoch(float(win.start)), from_epoch(float(win.end))


class _ToKeywordCount(beam.DoFn):
    def process(self, element: tuple[tuple[str, str], tuple[int, int]],
                win: Any = beam.DoFn.WindowParam) -> Iterator[KeywordCount]:
        (keyword, language), (articles, mentions) = element
        start, end = _bounds(win)
        yield KeywordCount(start, end, keyword, language, articles, mentions)


class _ToTopicCount(beam.DoFn):
    def process(self, element: tuple[tuple[str, str], int],
                win: Any = beam.DoFn.WindowParam) -> Iterator[TopicCount]:
        (topic, language), articles = element
        start, end = _bounds(win)
        yield TopicCount(start, end, topic, language, articles)


class CountPerWindow(beam.PTransform):
    """Article -> {"counts": KeywordCount, "topics": TopicCount} per window, keyword/topic, language."""

    def __init__(self, size: float, period: float | None = None, allowed_lateness: float = 0.0,
                 trigger: TriggerFn | None = None) -> None:
        super().__init__()
        self.window_fn = window_fn(size, period)
        self.size, self.period = size, period
        self.allowed_lateness = allowed_lateness
        self.trigger = trigger

    def expand(self, articles: beam.PCollection) -> dict[str, beam.PCollection]:
        windowing: dict[str, Any] = {"allowed_lateness": self.allowed_lateness}
        if self.trigger is not None:
            windowing.update(trigger=self.trigger, accumulation_mode=AccumulationMode.ACCUMULATING)
        stamp_fn = beam.ParDo(_StampFn(self.size, self.period)).with_output_types(Article)
        stamped = articles | "EventTime" >> stamp_fn.with_outputs(DEAD, main="articles")
        windowed = (stamped.articles
                    | "Window" >> beam.WindowInto(self.window_fn, **windowing))
        counts = (windowed
                  | "KeywordPairs" >> beam.FlatMap(keyword_pairs)
                  | "SumKeywords" >> beam.CombinePerKey(_SumPairs())
                  | "ToKeywordCount" >> beam.ParDo(_ToKeywordCount()).with_output_types(KeywordCount))
        topics = (windowed
                  | "TopicPairs" >> beam.FlatMap(topic_pairs)
                  | "SumTopics" >> beam.CombinePerKey(sum)
                  | "ToTopicCount" >> beam.ParDo(_ToTopicCount()).with_output_types(TopicCount))
        return {"counts": counts, "topics": topics, "dead_letters": stamped[DEAD]}
