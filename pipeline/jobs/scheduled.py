"""Scheduled batch runs that count every article exactly once, across runs and crashes.

With `state.path` set, `mediamon run` works in three steps:

1. **Process** (Beam, the same stages as always): fetch, parse, dedup, detect, tag.  The
   tagged articles and the dead letters go to staging files.  Feed HTTP state
   (ETags...) is held back in memory.
2. **Commit** (one SQLite transaction): the staged articles are inserted if their id is
   new; the windows those new articles fall in are marked dirty.  Only then is the feed
   HTTP state saved, so a killed run can never leave an ETag that hides unseen items.
3. **Recount and export** (Beam): every article stored in a dirty window is counted again
   with the same CountPerWindow stage, and the counts (true totals) are upserted into the
   store's own `counts`/`topics` tables and written to the configured sinks, with the new
   articles.  Then the dirty marks are cleared and the articles marked exported.

A run killed anywhere leaves the store consistent: before the commit nothing changed;
after it, the dirty marks make the next run recount and re-export.  A window's count is
always recomputed from the stored articles, never incremented, so it cannot double.
Runs are serialised by an exclusive lock on `<state.path>.lock` (`state.on_overlap`:
`wait` up to `state.wait_timeout`, or `exit` at once).
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Iterator, Sequence, cast

import apache_beam as beam

from pipeline.config import Config, SinkConfig, UsageError
from pipeline.feeds.documents import fetch_documents
from pipeline.feeds.state import FeedStateStore, HeldFeedState
from pipeline.graph.signals import crash_point
from pipeline.graph.runner import new_pipeline
from pipeline.graph.stages import (
    StageOutputs,
    apply_stages,
    batch_items,
    count_by_stage,
    story_options,
    wants_stories,
    write_alerts,
    write_sinks,
)
from pipeline.graph.summary import Summary, read_metrics, sink_paths
from pipeline.io.files import SHARD_TEMPLATE, clear_shards, merge_shards
from pipeline.io.sinks import WriteSink, file_sinks, finish_file_sinks
from pipeline.store import sqlite
from pipeline.store.articles import ArticleStore
from pipeline.store.lock import run_lock
from transforms.counts import CountPerWindow, windows_of
from transforms.records import (
    Article,
    DeadLetter,
    FeedDocument,
    article_from_state,
    article_to_state,
)
from transforms.spikes import DetectSpikes
from transforms.timeutil import from_epoch, parse_time, to_epoch
from transforms.topic_matcher import Tagger
from transforms.topics import tag_article

log = logging.getLogger(__name__)


def _store_sinks(config: Config, whats: Sequence[str]) -> list[SinkConfig]:
    """The store keeps the true totals (and alerts) itself, whatever sinks the user configured."""
    assert config.state.path is not None
    return [SinkConfig(name=f"store-{what}", type="sqlite", what=what, path=config.state.path)
            for what in whats]


def _alerts_stage(p: beam.Pipeline, config: Config, store: "ArticleStore",
                  windows: Sequence[tuple[float, float]]) -> beam.PCollection:
    """Spike rules over the dirty windows, with the history they look back on and the
    cool-downs of alerts raised by earlier runs."""
    step = config.windows.period or config.windows.size
    lookback = max(r.history_windows(step) * step + r.cooldown for r in config.alerts) + config.windows.size
    first = min((s for s, _ in windows), default=0.0)
    last = max((e for _, e in windows), default=0.0)
    history = store.articles_in([(first - lookback, last)]) if windows else []
    earlier = store.alerts()
    earliest = store.earliest_published()
    origin = None
    if earliest is not None:
        origin = from_epoch(min(s for s, _ in windows_of(earliest, config.windows.size, config.windows.period)))
    return (cast("beam.PCollection", p | "AlertHistory" >> beam.Create(history, reshuffle=False)
            | "DetectSpikes" >> DetectSpikes(config.alerts, config.windows.size, config.windows.period,
                                             new_windows=[from_epoch(s) for s, _ in windows],
                                             earlier_alerts=earlier, origin=origin)))


def _staging(config: Config, run: str, kind: str) -> Path:
    assert config.state.path is not None
    folder = config.state.path.parent / "staging"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{run}.{kind}.jsonl"


def _clear_stale_staging(config: Config) -> list[Path]:
    """Staging files a killed run left behind (under the run lock, so no run is using them):
    its articles (never committed, or committed already: either way the store is right), its
    shards and half-merged files. Finished dead-letter files stay: they wait for export."""
    assert config.state.path is not None
    folder = config.state.path.parent / "staging"
    removed = []
    for path in sorted(folder.glob("*")) if folder.is_dir() else []:
        if path.is_file() and not path.name.endswith(".dead_letters.jsonl"):
            path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        log.info("removed %d staging files left by a killed run", len(removed))
    return removed


def _staged_dead_letters(config: Config) -> list[Path]:
    """Dead-letter files of every run that has not exported them yet (a crash leaves them)."""
    assert config.state.path is not None
    return sorted((config.state.path.parent / "staging").glob("*.dead_letters.jsonl"))


def _article_line(article: Article) -> str:
    return json.dumps(article_to_state(article), ensure_ascii=False)


def _dead_line(dead: DeadLetter) -> str:
    return json.dumps(dead.to_json(), ensure_ascii=False)


class _WriteStaging(beam.PTransform):
    def __init__(self, path: Path, to_line: Any) -> None:
        super().__init__()
        self.path = path
        self.to_line = to_line

    def expand(self, records: beam.PCollection) -> Any:
        return (records
                | "ToLine" >> beam.Map(self.to_line)
                | "WriteStaging" >> beam.io.WriteToText(str(self.path), shard_name_template=SHARD_TEMPLATE))


def _read_staging(path: Path) -> Iterator[Article]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield article_from_state(json.loads(line))


def _recount_and_export(config: Config, store: ArticleStore,
                        beam_args: Sequence[str]) -> tuple[list[tuple[float, float]], list[str]]:
    """Step 3: recount dirty windows from stored articles; write counts and new articles."""
    windows = store.dirty_windows()
    in_windows = store.articles_in(windows)
    to_export = store.unexported()
    dead_files = _staged_dead_letters(config)
    dead = [DeadLetter(**json.loads(line)) for f in dead_files
            for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not windows and not to_export and not dead_files:
        return [], []
    p = new_pipeline(config, beam_args)
    clear_shards(s.path for s in file_sinks(config.sinks) if s.path is not None)
    stored = p | "StoredArticles" >> beam.Create(in_windows, reshuffle=False)
    counted = stored | "Recount" >> CountPerWindow(config.windows.size, config.windows.period,
                                                   stories=wants_stories(config))
    wanted = {(from_epoch(s), from_epoch(e)) for s, e in windows}
    in_dirty = lambda r: (r.window_start, r.window_end) in wanted  # noqa: E731
    counts = counted["counts"] | "OnlyDirtyCounts" >> beam.Filter(in_dirty)
    topics = counted["topics"] | "OnlyDirtyTopics" >> beam.Filter(in_dirty)
    new_articles = p | "NewArticles" >> beam.Create(to_export, reshuffle=False)
    staged_dead = p | "StagedDeadLetters" >> beam.Create(dead, reshuffle=False)
    recount_dead = counted["dead_letters"] | "RecountByStage" >> beam.Map(count_by_stage)
    outputs = StageOutputs(articles=new_articles, counts=counts, topics=topics,
                           dead_letters=(staged_dead, recount_dead) | "AllDead" >> beam.Flatten(),
                           stories=(counted["stories"] | "OnlyDirtyStories" >> beam.Filter(in_dirty))
                           if "stories" in counted else None)
    if config.alerts:
        alerts = _alerts_stage(p, config, store, windows)
        for sink in _store_sinks(config, ("alerts",)):
            alerts | "StoreAlerts" >> WriteSink(sink)
        write_alerts(alerts, outputs, config)
    write_sinks(outputs, config)
    for i, sink in enumerate(_store_sinks(config, ("counts", "topics"))):
        (counts if sink.what == "counts" else topics) | f"Store{i}" >> WriteSink(sink)
    p.run().wait_until_finish()
    finish_file_sinks(config.sinks)
    for path in dead_files:
        path.unlink(missing_ok=True)
    return windows, [a.id for a in to_export]


def _clear_period(config: Config, store: ArticleStore, windows: Sequence[tuple[float, float]]) -> None:
    """Rebuild: rows of recounted windows go first, so a key that vanished does not linger."""
    paths = {s.path for s in config.sinks if s.type == "sqlite" and s.what in ("counts", "topics", "stories")}
    paths.add(config.state.path)
    bounds = [(from_epoch(s), from_epoch(e)) for s, e in windows]
    for path in paths:
        if path is not None and Path(path).exists():
            sqlite.delete_windows(path, ("counts", "topics", "stories"), bounds)


def run_with_state(config: Config, beam_args: Sequence[str] = (), progress: bool = True) -> Summary:
    """`mediamon run` with `state.path`: exactly-once counts across runs and crashes."""
    assert config.state.path is not None
    started = time.monotonic()
    summary = Summary()
    with run_lock(config):
        store = ArticleStore(config.state.path, config.windows.size, config.windows.period)
        feed_state = FeedStateStore(config.state.path)
        held = HeldFeedState(feed_state)
        try:
            _clear_stale_staging(config)
            run = store.begin_run()
            docs: list[FeedDocument] = []
            fetch_dead: list[DeadLetter] = []
            if config.sources.feeds or config.sources.opml:
                docs, fetch_dead, summary.feeds = fetch_documents(config, store=held, progress=progress)
            crash_point("after_fetch")
            staging = _staging(config, run, "articles")
            p = new_pipeline(config, beam_args)
            items, extra = batch_items(p, config, docs, fetch_dead)
            # stories are grouped at commit, against the signatures stored by earlier runs
            outputs = apply_stages(items, config, extra_dead=extra, counts=False, stories=False)
            outputs.articles | "Stage" >> _WriteStaging(staging, _article_line)
            dead_staging = _staging(config, run, "dead_letters.partial")
            outputs.dead_letters | "StageDead" >> _WriteStaging(dead_staging, _dead_line)
            result = p.run()
            result.wait_until_finish()
            merge_shards(staging)
            merge_shards(dead_staging)
            read_metrics(result, summary)
            crash_point("before_commit")
            staged = list(_read_staging(staging))
            # a finished pass 1 publishes its dead letters for export (a killed one never does)
            dead_staging.rename(_staging(config, run, "dead_letters"))
            new = store.commit(run, staged, summary.items_read, stories=story_options(config))
            crash_point("after_commit")
            held.flush()
            # articles seen in an earlier run are duplicates of this one
            summary.duplicates += len(staged) - len(new)
            summary.articles = len(new)
            summary.stories = len({a.story or a.id for a in new})
            summary.by_language, summary.by_topic = {}, {}   # this run's new articles only
            summary.count_articles(new)
            windows, exported = _recount_and_export(config, store, beam_args)
            crash_point("before_finish")
            store.finish(run, windows, exported)
            staging.unlink(missing_ok=True)
            if config.state.retention:
                pruned = store.prune(config.state.retention)
                if pruned:
                    log.info("pruned the text of %d articles older than the retention horizon", pruned)
        finally:
            feed_state.close()
            store.close()
    summary.sinks = sink_paths(config)
    summary.seconds = time.monotonic() - started
    return summary


def rebuild(config: Config, beam_args: Sequence[str] = (), since: str | None = None,
            until: str | None = None) -> Summary:
    """`mediamon run --rebuild [--since T --until T]`: re-tag and recount stored articles."""
    if config.state.path is None:
        raise UsageError("--rebuild needs state.path in the config: it recounts the stored articles")
    bounds = []
    for label, value in (("--since", since), ("--until", until)):
        moment = parse_time(value) if value else None
        if value and moment is None:
            raise UsageError(f"{label} {value!r} is not an ISO-8601 time")
        bounds.append(to_epoch(value) if value else None)
    started = time.monotonic()
    summary = Summary()
    with run_lock(config):
        store = ArticleStore(config.state.path, config.windows.size, config.windows.period)
        try:
            store.mark_period_dirty(bounds[0], bounds[1])
            windows = store.dirty_windows()
            _clear_period(config, store, windows)
            # re-tag with the current topics and keywords (e.g. after changing a query)
            tagger = Tagger(config.topics, config.keywords, config.variants)
            retagged = [tag_article(a, tagger) if a.summary or a.title else a
                        for a in store.articles_in(windows)]
            store.replace_tags(retagged)
            done, exported = _recount_and_export(config, store, beam_args)
            store.finish("rebuild", done, exported)
            summary.articles = len(retagged)
            summary.items_read = len(retagged)
            summary.count_articles(retagged)
        finally:
            store.close()
    summary.sinks = sink_paths(config)
    summary.seconds = time.monotonic() - started
    return summary
