"""Builds the pipeline graph from a config: sources -> the six stages -> sinks.

Batch and streaming share `apply_stages`; they differ only in the source, the dedup state
(a combine in batch, expiring per-id state in streaming) and the counts' trigger.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence, cast

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipeline.config import Config
from pipeline.io.sinks import WriteSink
from pipeline.io.sources import ReadJsonlItems
from pipeline.io.webhook import PostAlerts
from transforms.counts import CountPerWindow
from transforms.dedup import Deduplicate
from transforms.language import DetectLanguage
from transforms.late import SplitLate
from transforms.parse import ParseFeedItems
from transforms.records import Article, DeadLetter, FeedDocument
from transforms.stories import GroupStories, StoryOptions
from transforms.timeutil import now_iso
from transforms.topics import TagTopics


BY_STAGE = "dead_letters_by_stage"


@dataclass
class StageOutputs:
    articles: beam.PCollection
    counts: beam.PCollection | None       # None when the caller counts elsewhere
    topics: beam.PCollection | None
    dead_letters: beam.PCollection
    stories: beam.PCollection | None = None   # StoryRecord per story and window, when a sink wants them


def story_options(config: Config) -> StoryOptions:
    return StoryOptions(threshold=config.stories.threshold, horizon=config.stories.horizon)


def wants_stories(config: Config) -> bool:
    return any(s.what == "stories" for s in config.sinks)


def _count(namespace: str, name: str) -> Any:
    counter = Metrics.counter(namespace, name)

    def inc(element: Any) -> Any:
        counter.inc()
        return element
    return inc


def apply_stages(items: beam.PCollection, config: Config, *, streaming: bool = False,
                 extra_dead: Sequence[beam.PCollection] = (), trigger: Any = None,
                 counts: bool = True, stories: bool = True, compress_shuffle: bool = True) -> StageOutputs:
    """FeedDocument | RawItem -> articles, keyword counts, topic counts, stories, dead letters.

    `counts=False` stops after tagging (a stateful run recounts from its store instead);
    `stories=False` leaves story grouping to the caller (a stateful run groups new articles
    against the story signatures in its store, at commit); `compress_shuffle=False` for small
    bounded inputs (a stream micro-batch: `Deduplicate(compress=False)`)."""
    parsed = items | "ParseFeedItems" >> ParseFeedItems()
    fresh = parsed.articles
    if streaming:  # before dedup and windowing: Beam would drop a late article silently
        split = fresh | "SplitLate" >> SplitLate(config.windows.size, config.windows.period,
                                                 config.windows.allowed_lateness)
        fresh = split[SplitLate.ON_TIME]
    deduped = fresh | "Deduplicate" >> Deduplicate(ttl_seconds=config.dedup.ttl if streaming else None,
                                                        compress=compress_shuffle)
    detected = deduped | "DetectLanguage" >> DetectLanguage(
        config.language.allowed, dict(config.language.aliases), config.language.second_opinion)
    grouped = detected.articles
    stage_dead = [parsed[ParseFeedItems.DEAD], detected[DetectLanguage.DEAD]]
    if stories:
        storied = grouped | "GroupStories" >> GroupStories(story_options(config), streaming=streaming)
        grouped = storied.articles
        stage_dead.append(storied[GroupStories.DEAD])
    tagged = grouped | "TagTopics" >> TagTopics(config.topics, config.keywords, config.variants)
    # typed, so that wherever a runner encodes them (a fused stage's boundary, a size sample)
    # it takes the records' coders and not pickle
    articles = tagged.articles | "CountArticles" >> beam.Map(_count("mediamon", "articles")).with_output_types(Article)
    # items that did not become articles: they balance items_read
    dead = ((*stage_dead, tagged[TagTopics.DEAD], *extra_dead)
            | "FlattenDeadLetters" >> beam.Flatten().with_output_types(DeadLetter)
            | "CountDeadLetters" >> beam.Map(_count("mediamon", "dead_letters")).with_output_types(DeadLetter))
    if not counts:
        return StageOutputs(articles=articles, counts=None, topics=None,
                            dead_letters=dead | "ByStage" >> beam.Map(count_by_stage).with_output_types(DeadLetter))
    counted = articles | "CountPerWindow" >> CountPerWindow(
        config.windows.size, config.windows.period, config.windows.allowed_lateness, trigger=trigger,
        stories=wants_stories(config))
    # an article whose counting failed is still an article: its dead letter is not an item
    dead = (dead, counted["dead_letters"]) | "WithCountFailures" >> beam.Flatten()
    return StageOutputs(articles=articles, counts=counted["counts"], topics=counted["topics"],
                        dead_letters=dead | "ByStage" >> beam.Map(count_by_stage).with_output_types(DeadLetter),
                        stories=counted.get("stories"))


def count_by_stage(dead: DeadLetter) -> DeadLetter:
    """Counts each dead letter under its stage, for the summary's `dead_letters_by_stage`."""
    Metrics.counter(BY_STAGE, dead.stage).inc()
    return dead


def write_sinks(outputs: StageOutputs, config: Config, *, streaming: bool = False,
                skip: Sequence[str] = ()) -> None:
    """Every configured sink gets the records it asked for (`what`)."""
    by_what = {"articles": outputs.articles, "counts": outputs.counts, "topics": outputs.topics,
               "dead_letters": outputs.dead_letters, "stories": outputs.stories}
    for i, sink in enumerate(config.sinks):
        records = by_what.get(sink.what)
        if sink.what in skip or records is None:
            continue
        records | f"Sink{i}:{sink.name}" >> WriteSink(sink, streaming=streaming)


def counted_dead_letters(p: beam.Pipeline, dead: list[DeadLetter], label: str) -> beam.PCollection:
    """Dead letters made on the driver (feeds that failed to fetch): each is one item read."""
    return (cast("beam.PCollection", p | f"{label}Create" >> beam.Create(dead)
            | f"{label}ItemsRead" >> beam.Map(_count("mediamon", "items_read"))))


__all__ = ["StageOutputs", "apply_stages", "write_sinks", "counted_dead_letters", "Article"]


def write_alerts(alerts: beam.PCollection, outputs: Any, config: Config, label: str = "",
                 streaming: bool = False) -> None:
    """Alerts to their sinks and the webhook; an undelivered alert joins the dead letters
    (after they were counted: it is not an item, so it stays out of the item balance)."""
    for i, sink in enumerate(s for s in config.sinks if s.what == "alerts"):
        alerts | f"{label}AlertSink{i}:{sink.name}" >> WriteSink(sink, streaming=streaming)
    if config.webhook is not None:
        failed = alerts | f"{label}Webhook" >> PostAlerts(config.webhook)
        failed = failed | f"{label}WebhookByStage" >> beam.Map(count_by_stage)
        outputs.dead_letters = (outputs.dead_letters, failed) | f"{label}WithWebhookFailures" >> beam.Flatten()


def batch_items(p: beam.Pipeline, config: Config, docs: list[FeedDocument],
                fetch_dead: list[DeadLetter]) -> tuple[beam.PCollection, list[beam.PCollection]]:
    """The batch sources as one PCollection of items, and the driver's dead letters (feeds that
    could not be fetched, JSONL files that are not there: each one item and one dead letter)."""
    parts = []
    if docs:
        parts.append(p | "FeedDocuments" >> beam.Create(docs, reshuffle=False))
    readable = [path for path in config.sources.jsonl if path.is_file()]
    fetch_dead = fetch_dead + [DeadLetter.of("read", "JSONL source file not found", path.name, str(path), now_iso())
                               for path in config.sources.jsonl if not path.is_file()]
    if readable:
        parts.append(p | "JsonlItems" >> ReadJsonlItems(readable))
    if not parts:
        parts.append(p | "NoItems" >> beam.Create([]))
    items = parts | "AllItems" >> beam.Flatten() if len(parts) > 1 else parts[0]
    extra_dead = [counted_dead_letters(p, fetch_dead, "FetchFailures")] if fetch_dead else []
    return items, extra_dead
