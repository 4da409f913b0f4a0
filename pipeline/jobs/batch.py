"""`mediamon run`: one batch pass over every configured source, then a summary.

The driver fetches feeds (concurrently, politely), builds the graph, runs it on the chosen
runner (the local FnApiRunner unless `--runner` is given after `--`), and reads Beam's
metrics back into the run summary, which proves nothing was lost:
items_read == articles + duplicates + dead_letters + late.
"""
from __future__ import annotations

import logging
import time
from typing import Sequence

from pipeline.config import Config, UsageError
from pipeline.feeds.documents import fetch_documents
from pipeline.graph.runner import new_pipeline
from pipeline.graph.stages import apply_stages, batch_items, write_alerts, write_sinks
from pipeline.graph.summary import Summary, read_metrics, sink_paths
from pipeline.io.files import clear_shards
from pipeline.io.sinks import file_sinks, finish_file_sinks
from transforms.records import DeadLetter, FeedDocument
from transforms.spikes import DetectSpikes

log = logging.getLogger(__name__)


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


