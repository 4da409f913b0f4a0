"""Stage 5, CountPerWindow: Articles -> KeywordCount and TopicCount per event-time window.

Input:  Article (deduplicated, language, topics and story set).
Output: a dict {"counts": PCollection[KeywordCount], "topics": PCollection[TopicCount],
        "dead_letters": PCollection[DeadLetter]} (an article whose time cannot be windowed; it
        stays an article, only its counting failed), and "stories": PCollection[StoryRecord]
        when asked for; counts carry `articles` and `stories` (distinct story ids among those
        articles; an article without a story is its own story).

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
from transforms.records import Article, KeywordCount, StoryRecord, TopicCount

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
        yield stamped if self.restamp else article

    def __init__(self, size: float, period: float | None, restamp: bool = True) -> None:
        self.size, self.period = size, period
        self.restamp = restamp


def story_of(article: Article) -> str:
    return article.story or article.id


def keyword_pairs(article: Article) -> Iterator[tuple[tuple[str, str], tuple[int, str]]]:
    for keyword, mentions in article.keyword_mentions:
        yield (keyword, article.language), (mentions, story_of(article))


def topic_pairs(article: Article) -> Iterator[tuple[tuple[str, str], tuple[int, str]]]:
    for topic in article.topics:
        yield (topic, article.language), (0, story_of(article))


_Acc = tuple[int, int, set[str]]


class _SumPairs(beam.CombineFn):
    """(mentions, story) per article -> (articles, mentions, distinct stories)."""

    def create_accumulator(self) -> _Acc:
        return (0, 0, set())

    def add_input(self, acc: _Acc, value: tuple[int, str]) -> _Acc:
        acc[2].add(value[1])
        return (acc[0] + 1, acc[1] + value[0], acc[2])

    def merge_accumulators(self, accs: Any) -> _Acc:
        articles = mentions = 0
        stories: set[str] = set()
        for a, m, s in accs:
            articles += a
            mentions += m
            stories |= s
        return (articles, mentions, stories)

    def extract_output(self, acc: _Acc) -> tuple[int, int, int]:
        return (acc[0], acc[1], len(acc[2]))


def _bounds(win: beam_window.BoundedWindow) -> tuple[str, str]:
    return from_epoch(float(win.start)), from_epoch(float(win.end))


class _ToKeywordCount(beam.DoFn):
    def process(self, element: tuple[tuple[str, str], tuple[int, int, int]],
                win: Any = beam.DoFn.WindowParam) -> Iterator[KeywordCount]:
        (keyword, language), (articles, mentions, stories) = element
        start, end = _bounds(win)
        yield KeywordCount(start, end, keyword, language, articles, mentions, stories)


class _ToTopicCount(beam.DoFn):
    def process(self, element: tuple[tuple[str, str], tuple[int, int, int]],
                win: Any = beam.DoFn.WindowParam) -> Iterator[TopicCount]:
        (topic, language), (articles, _, stories) = element
        start, end = _bounds(win)
        yield TopicCount(start, end, topic, language, articles, stories)


# a story's member in one window: (published, id, title, url, source, language, topics)
_Member = tuple[str, str, str, str, str, str, tuple[str, ...]]


def story_member(article: Article) -> tuple[str, _Member]:
    return story_of(article), (article.published, article.id, article.title, article.url,
                               article.source, article.language, article.topics)


def story_record(start: str, end: str, story: str, members: Any) -> StoryRecord:
    """The story's record in one window from its members there (order-independent)."""
    ordered = sorted(set(members))
    first = next((m for m in ordered if m[1] == story), ordered[0])
    return StoryRecord(window_start=start, window_end=end, story=story, headline=first[2], url=first[3],
                       outlets=tuple(sorted({m[4] for m in ordered})),
                       languages=tuple(sorted({m[5] for m in ordered})), size=len(ordered),
                       first_seen=ordered[0][0], last_seen=ordered[-1][0],
                       topics=tuple(sorted({t for m in ordered for t in m[6]})))


class _ToStoryRecord(beam.DoFn):
    def process(self, element: tuple[str, Any], win: Any = beam.DoFn.WindowParam) -> Iterator[StoryRecord]:
        story, members = element
        start, end = _bounds(win)
        yield story_record(start, end, story, members)


class CountPerWindow(beam.PTransform):
    """Article -> {"counts": KeywordCount, "topics": TopicCount} per window, keyword/topic, language."""

    def __init__(self, size: float, period: float | None = None, allowed_lateness: float = 0.0,
                 trigger: TriggerFn | None = None, stories: bool = False) -> None:
        super().__init__()
        self.stories = stories
        self.window_fn = window_fn(size, period)
        self.size, self.period = size, period
        self.allowed_lateness = allowed_lateness
        self.trigger = trigger

    def expand(self, articles: beam.PCollection) -> dict[str, beam.PCollection]:
        if self.trigger is None:
            return self._expand_batch(articles)
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
                  | "SumTopics" >> beam.CombinePerKey(_SumPairs())
                  | "ToTopicCount" >> beam.ParDo(_ToTopicCount()).with_output_types(TopicCount))
        result = {"counts": counts, "topics": topics, "dead_letters": stamped[DEAD]}
        if self.stories:
            result["stories"] = (windowed
                                 | "StoryMembers" >> beam.Map(story_member)
                                 | "GroupStoryMembers" >> beam.GroupByKey()
                                 | "ToStoryRecord" >> beam.ParDo(_ToStoryRecord()).with_output_types(StoryRecord))
        return result

    def _expand_batch(self, articles: beam.PCollection) -> dict[str, beam.PCollection]:
        """Batch: the window is part of the key (the same windows as FixedWindows/SlidingWindows
        assign: windows_of), summed in the global window. Event-time windowing here would meet
        a watermark already at the end of time after the dedup's GroupByKey, and a runner that
        enforces lateness in batch (Prism) drops every count as late; the FnApiRunner does not."""
        size, period = self.size, self.period
        # the same check as streaming (a window that cannot be written is a dead letter), but the
        # articles keep their timestamps: event time plays no part in the global window
        checked = articles | "CheckWindows" >> beam.ParDo(
            _StampFn(size, period, restamp=False)).with_output_types(Article).with_outputs(DEAD, main="articles")
        articles = checked.articles

        def in_windows(pairs: Any) -> Any:
            def rows(article: Article) -> Iterator[tuple[tuple[str, str, str, str], Any]]:
                for start, end in windows_of(to_epoch(article.published), size, period):
                    for (key, language), value in pairs(article):
                        yield (from_epoch(start), from_epoch(end), key, language), value
            return rows

        counts = (articles
                  | "KeywordRows" >> beam.FlatMap(in_windows(keyword_pairs))
                  | "SumKeywords" >> beam.CombinePerKey(_SumPairs())
                  | "ToKeywordCount" >> beam.MapTuple(
                      lambda k, v: KeywordCount(k[0], k[1], k[2], k[3], v[0], v[1], v[2])).with_output_types(KeywordCount))
        topics = (articles
                  | "TopicRows" >> beam.FlatMap(in_windows(topic_pairs))
                  | "SumTopics" >> beam.CombinePerKey(_SumPairs())
                  | "ToTopicCount" >> beam.MapTuple(
                      lambda k, v: TopicCount(k[0], k[1], k[2], k[3], v[0], v[2])).with_output_types(TopicCount))
        result = {"counts": counts, "topics": topics, "dead_letters": checked[DEAD]}
        if self.stories:
            def story_rows(article: Article) -> Iterator[tuple[tuple[str, str, str], Any]]:
                member = story_member(article)
                for start, end in windows_of(to_epoch(article.published), size, period):
                    yield (from_epoch(start), from_epoch(end), member[0]), member[1]
            result["stories"] = (articles
                                 | "StoryRows" >> beam.FlatMap(story_rows)
                                 | "GroupStoryMembers" >> beam.GroupByKey()
                                 | "ToStoryRecord" >> beam.MapTuple(
                                     lambda k, members: story_record(k[0], k[1], k[2], members))
                                 .with_output_types(StoryRecord))
        return result
