"""`mediamon run`: one batch pass over every configured source, then a summary.

The driver fetches feeds (concurrently, politely), builds the graph, runs it on the chosen
runner (the local FnApiRunner unless `--runner` is given after `--`), and reads Beam's
metrics back into the run summary, which proves nothing was lost:
items_read == articles + duplicates + dead_letters + late.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineResult

from pipeline.config import Config, UsageError
from pipeline.graph import apply_stages, counted_dead_letters, write_sinks
from pipeline.io import (PostAlerts, ReadJsonlItems, WriteSink, clear_shards, fetch_documents, file_sinks,
                         finish_file_sinks)
from transforms.alerting import DetectSpikes
from transforms.records import Article, DeadLetter, FeedDocument
from transforms.timeutil import now_iso

log = logging.getLogger(__name__)


@dataclass
class Summary:
    items_read: int = 0
    articles: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    late: int = 0
    by_language: dict[str, int] = field(default_factory=dict)
    by_topic: dict[str, int] = field(default_factory=dict)
    sinks: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    feeds: dict[str, int] = field(default_factory=dict)

    def count_articles(self, articles: Iterable[Article]) -> None:
        """Per-language and per-topic totals from the articles themselves (not from metrics)."""
        for article in articles:
            self.by_language[article.language] = self.by_language.get(article.language, 0) + 1
            for topic in article.topics:
                self.by_topic[topic] = self.by_topic.get(topic, 0) + 1

    def balanced(self) -> bool:
        return self.items_read == self.articles + self.duplicates + self.dead_letters + self.late

    def to_json(self) -> dict[str, Any]:
        return {"items_read": self.items_read, "articles": self.articles, "duplicates": self.duplicates,
                "dead_letters": self.dead_letters, "late": self.late,
                "by_language": dict(sorted(self.by_language.items())),
                "by_topic": dict(sorted(self.by_topic.items())), "sinks": self.sinks}

    def text(self, name: str) -> str:
        langs = ", ".join(f"{k} {v}" for k, v in sorted(self.by_language.items(), key=lambda kv: -kv[1])) or "-"
        topics = ", ".join(f"{k} {v}" for k, v in sorted(self.by_topic.items(), key=lambda kv: -kv[1])) or "-"
        lines = [f"mediamon {name}: {self.items_read} items read in {self.seconds:.1f}s",
                 f"  articles      {self.articles}",
                 f"  duplicates    {self.duplicates}",
                 f"  dead letters  {self.dead_letters}",
                 f"  late          {self.late}",
                 f"  by language   {langs}",
                 f"  by topic      {topics}"]
        if self.feeds:
            lines.append("  feeds         " + ", ".join(f"{k} {v}" for k, v in sorted(self.feeds.items())))
        for sink, path in self.sinks.items():
            lines.append(f"  wrote {sink} -> {path}")
        if not self.balanced():
            lines.append("  WARNING: items_read != articles + duplicates + dead_letters + late")
        return "\n".join(lines)


def pipeline_options(config: Config, beam_args: Sequence[str], streaming: bool = False) -> PipelineOptions:
    """Config `beam_options` first, then the command line after `--` (which wins)."""
    args = [f"--{k}={v}" if not isinstance(v, bool) else f"--{k}" for k, v in config.beam_options
            if not (isinstance(v, bool) and not v)]
    args += list(beam_args)
    options = PipelineOptions(flags=args)
    if streaming:
        from apache_beam.options.pipeline_options import StandardOptions
        options.view_as(StandardOptions).streaming = True
    return options


def default_runner(beam_args: Sequence[str], config: Config, streaming: bool) -> Any:
    """Our choice of local runner unless the user (or config) names one: see BEAM notes."""
    named = any(a.startswith("--runner") for a in beam_args) or any(k == "runner" for k, _ in config.beam_options)
    if named:
        return None
    if streaming:
        from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner
        return BundleBasedDirectRunner()
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner
    return FnApiRunner()


def metric_counters(result: PipelineResult) -> dict[str, int]:
    """Every Beam counter as `namespace/name` -> value (committed where the runner has it)."""
    out: dict[str, int] = {}
    for counter in result.metrics().query(MetricsFilter())["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        key = f"{counter.key.metric.namespace}/{counter.key.metric.name}"
        out[key] = out.get(key, 0) + int(value or 0)
    return out


def read_metrics(result: PipelineResult, summary: Summary) -> None:
    for key, value in metric_counters(result).items():
        ns, name = key.split("/", 1)
        if ns == "mediamon" and name in ("items_read", "articles", "duplicates", "dead_letters", "late"):
            setattr(summary, name, getattr(summary, name) + value)
        elif ns == "by_language":
            summary.by_language[name] = summary.by_language.get(name, 0) + value
        elif ns == "by_topic":
            summary.by_topic[name] = summary.by_topic.get(name, 0) + value


def sink_paths(config: Config) -> dict[str, str]:
    return {s.name: str(s.path) if s.path else str(s.topic) for s in config.sinks}


def write_alerts(alerts: beam.PCollection, outputs: Any, config: Config, label: str = "",
                 streaming: bool = False) -> None:
    """Alerts to their sinks and the webhook; an undelivered alert joins the dead letters
    (after they were counted: it is not an item, so it stays out of the item balance)."""
    for i, sink in enumerate(s for s in config.sinks if s.what == "alerts"):
        alerts | f"{label}AlertSink{i}:{sink.name}" >> WriteSink(sink, streaming=streaming)
    if config.webhook is not None:
        failed = alerts | f"{label}Webhook" >> PostAlerts(config.webhook)
        outputs.dead_letters = (outputs.dead_letters, failed) | f"{label}WithWebhookFailures" >> beam.Flatten()


def new_pipeline(config: Config, beam_args: Sequence[str], streaming: bool = False) -> beam.Pipeline:
    runner = default_runner(beam_args, config, streaming=streaming)
    with_runner = {"runner": runner} if runner is not None else {}
    return beam.Pipeline(options=pipeline_options(config, beam_args, streaming=streaming), **with_runner)


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


def run_batch(config: Config, beam_args: Sequence[str] = (), progress: bool = True) -> Summary:
    started = time.monotonic()
    if config.sources.pubsub is not None and not (config.sources.feeds or config.sources.opml or config.sources.jsonl):
        raise UsageError("this config reads only Pub/Sub: use `mediamon stream`")
    summary = Summary()
    docs: list[FeedDocument] = []
    fetch_dead: list[DeadLetter] = []
    if config.sources.feeds or config.sources.opml:
        docs, fetch_dead, summary.feeds = fetch_documents(config, store=None, progress=progress)
    p = new_pipeline(config, beam_args)
    clear_shards(s.path for s in file_sinks(config.sinks) if s.path is not None)
    items, extra_dead = batch_items(p, config, docs, fetch_dead)
    outputs = apply_stages(items, config, extra_dead=extra_dead)
    if config.alerts:
        alerts = outputs.articles | "DetectSpikes" >> DetectSpikes(
            config.alerts, config.windows.size, config.windows.period)
        write_alerts(alerts, outputs, config)
    write_sinks(outputs, config)
    result = p.run()
    result.wait_until_finish()
    finish_file_sinks(config.sinks)
    read_metrics(result, summary)
    summary.sinks = sink_paths(config)
    summary.seconds = time.monotonic() - started
    return summary


def write_summary(summary: Summary, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary.to_json(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
