"""`mediamon stream`: the long-running job on Pub/Sub, with the same stages as batch.

Graph: ReadFromPubSub (with attributes) -> drop heartbeats -> apply_stages(streaming=True)
(SplitLate, expiring dedup, language, topics, windowed counts with early panes) -> sinks.

Triggering: AfterWatermark(early=AfterProcessingTime(windows.early), late=AfterCount(1)),
accumulating: every pane carries the true count of its window so far; SQLite sinks upsert it by
natural key, JSONL sinks append it (the last line per key wins).

Event time is the item's `published` time (message attribute `published`, or the item's own
field); CountPerWindow stamps each article with it.  Messages keep their Pub/Sub publish time
until then, which holds the local runner's watermark back while they are in flight.

The driver thread watches the job: it publishes a heartbeat every few seconds (the local reader
blocks up to 30 s in an idle pull, and its watermark, the wall clock, only moves when a pull
returns), logs progress, and on SIGINT/SIGTERM (or `--max-seconds`) drains: one more heartbeat
to unblock the reader, wait until every message read so far is accounted for
(items_read == articles + duplicates + dead_letters + late) and the early panes have had time
to fire, then `cancel()` (the local runner cannot `wait_until_finish(duration=...)`).
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any, Sequence

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.runners.runner import PipelineResult
from apache_beam.transforms import trigger as beam_trigger

from pipeline.config import Config, UsageError
from pipeline.graph.beam_patches import fix_direct_runner_metrics, larger_pubsub_pulls
from pipeline.graph.runner import new_pipeline
from pipeline.graph.stages import apply_stages, write_alerts, write_sinks
from pipeline.graph.summary import Summary, metric_counters, read_metrics, sink_paths
from pipeline.io.pubsub import (
    ensure_subscription,
    ensure_topic,
    is_heartbeat,
    on_emulator,
    publish_heartbeat,
    publisher,
)
from pipeline.io.sources import ReadPubSubItems
from transforms.records import RawItem
from transforms.spikes import StreamSpikes

log = logging.getLogger(__name__)

STOP_BUDGET = 15.0        # seconds from the signal to exit
HEARTBEAT_EVERY = 2.0     # seconds between heartbeats while running
HEARTBEAT_DRAINING = 0.25 # ... and while draining: the local runner has ONE worker thread, which
                          # a blocked pull holds; a heartbeat is what frees it
PROGRESS_EVERY = 30.0










def streaming_trigger(early_seconds: float) -> beam_trigger.TriggerFn:
    """Early panes every `early_seconds` of processing time, the on-time pane, then one per late item.

    Beam's trigger proto holds whole milliseconds; whole seconds keep it simple (at least 1 s).
    """
    delay = max(1, int(round(early_seconds)))
    return beam_trigger.AfterWatermark(early=beam_trigger.AfterProcessingTime(delay),
                                       late=beam_trigger.AfterCount(1))


class _CountMessages(beam.DoFn):
    """RawItem -> RawItem without heartbeats; counts messages read and heartbeats seen."""

    def __init__(self) -> None:
        self.messages = Metrics.counter("mediamon_stream", "messages")
        self.heartbeats = Metrics.counter("mediamon_stream", "heartbeats")

    def process(self, item: RawItem) -> Any:
        self.messages.inc()
        if is_heartbeat(item.attributes):
            self.heartbeats.inc()
            return
        yield item


def build(p: beam.Pipeline, config: Config) -> None:
    """Pub/Sub -> stages -> sinks (streaming)."""
    assert config.sources.pubsub is not None
    items = (p
             | "PubSubItems" >> ReadPubSubItems(config.sources.pubsub.subscription,
                                                config.sources.pubsub.topic)
             | "DropHeartbeats" >> beam.ParDo(_CountMessages()))
    trigger = streaming_trigger(config.windows.early)
    outputs = apply_stages(items, config, streaming=True, trigger=trigger)
    if config.alerts:
        alerts = outputs.articles | "StreamSpikes" >> StreamSpikes(
            config.alerts, config.windows.size, config.windows.period, config.windows.allowed_lateness, trigger)
        write_alerts(alerts, outputs, config, streaming=True)
    write_sinks(outputs, config, streaming=True)


def _accounted(c: dict[str, int]) -> bool:
    """Every message read so far has become an article, duplicate, dead letter or late item."""
    items = c.get("mediamon_stream/messages", 0) - c.get("mediamon_stream/heartbeats", 0)
    done = sum(c.get(f"mediamon/{k}", 0) for k in ("articles", "duplicates", "dead_letters", "late"))
    return items == c.get("mediamon/items_read", 0) == done


def _progress(c: dict[str, int]) -> str:
    return (f"{c.get('mediamon/items_read', 0)} items, {c.get('mediamon/articles', 0)} articles, "
            f"{c.get('mediamon/duplicates', 0)} duplicates, {c.get('mediamon/dead_letters', 0)} dead "
            f"letters, {c.get('mediamon/late', 0)} late")


def _say(message: str) -> None:
    log.info(message)
    print(f"mediamon stream: {message}", file=sys.stderr, flush=True)


def heartbeat_topic(config: Config) -> str:
    """The topic behind the source (made on the emulator when missing)."""
    source = config.sources.pubsub
    assert source is not None
    if source.topic:
        ensure_topic(source.topic)
        return source.topic
    assert source.subscription is not None
    return ensure_subscription(source.subscription, config.poll.topic)


class _Heartbeats:
    """Publishes a heartbeat every `every` seconds on its own thread, and on demand."""

    def __init__(self, topic: str, every: float) -> None:
        self.topic = topic
        self.every = every      # may be changed while running
        self.client = publisher()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def beat(self) -> None:
        publish_heartbeat(self.client, self.topic)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.beat()
            except Exception as exc:  # a missed heartbeat only delays output: log it, keep going
                log.warning("heartbeat to %s failed: %s", self.topic, exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def _drain(result: PipelineResult, early: float, deadline: float) -> bool:
    """Wait until what was read is accounted for and early panes fired; True when all accounted."""
    accounted_at = None
    while time.monotonic() < deadline:
        c = metric_counters(result)
        if _accounted(c):
            accounted_at = accounted_at or time.monotonic()
            # an early pane fires `early` s of processing time after its first element
            if time.monotonic() - accounted_at >= min(early + 1.0, 6.0):
                return True
        else:
            accounted_at = None
        time.sleep(0.2)
    return accounted_at is not None


class _Watcher:
    """Waits for the pipeline on a daemon thread, so a failure stops the driver loop at once."""

    def __init__(self, result: PipelineResult, stop: threading.Event) -> None:
        self.result = result
        self.stop = stop
        self.error: BaseException | None = None
        threading.Thread(target=self._run, name="pipeline-watcher", daemon=True).start()

    def _run(self) -> None:
        try:
            self.result.wait_until_finish()
        except BaseException as exc:  # re-raised on the driver thread by run_stream
            self.error = exc
        self.stop.set()


def run_stream(config: Config, beam_args: Sequence[str] = (), max_seconds: float | None = None) -> Summary:
    """Run until SIGINT/SIGTERM or `max_seconds`, drain, cancel; return the summary."""
    if config.sources.pubsub is None:
        raise UsageError("this config has no sources.pubsub: use `mediamon run`")
    started = time.monotonic()
    source = config.sources.pubsub.subscription or config.sources.pubsub.topic
    topic = heartbeat_topic(config)
    where = f"emulator {os.environ['PUBSUB_EMULATOR_HOST']}" if on_emulator() else "Google Cloud"
    stop = threading.Event()
    reason = ["signal"]

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if not stop.is_set():
            reason[0] = signal.Signals(signum).name
            _say(f"{reason[0]}: draining")
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    heartbeats = _Heartbeats(topic, min(HEARTBEAT_EVERY, config.windows.early))
    try:
        fix_direct_runner_metrics()
        larger_pubsub_pulls()
        p = new_pipeline(config, beam_args, streaming=True)
        build(p, config)
        result = p.run()
        watcher = _Watcher(result, stop)
        _say(f"reading {source} on {where}; windows {config.windows.size:g}s"
             f"{f' every {config.windows.period:g}s' if config.windows.period else ''}, allowed lateness "
             f"{config.windows.allowed_lateness:g}s, early panes every {config.windows.early:g}s")
        heartbeats.start()
        next_progress = time.monotonic() + PROGRESS_EVERY
        while not stop.wait(0.5):
            if max_seconds is not None and time.monotonic() - started >= max_seconds:
                reason[0] = "max-seconds"
                _say(f"--max-seconds {max_seconds:g} reached: draining")
                break
            if time.monotonic() >= next_progress:
                _say(_progress(metric_counters(result)))
                next_progress += PROGRESS_EVERY
        if watcher.error is not None:
            raise RuntimeError(f"the streaming pipeline failed: {watcher.error}") from watcher.error
        stop_at = time.monotonic()
        heartbeats.every = HEARTBEAT_DRAINING
        heartbeats.beat()   # unblock a pull that may be waiting up to 30 s
        # leave ~3 s of the budget for cancel() and the summary
        if not _drain(result, config.windows.early, stop_at + STOP_BUDGET - 3.0):
            log.warning("drain timed out: some messages read may not be counted yet")
        result.cancel()     # returns once the worker has left its pull (heartbeats still beating)
        heartbeats.stop()
        summary = Summary()
        read_metrics(result, summary)
        _say(f"stopped ({reason[0]}) after draining in {time.monotonic() - stop_at:.1f}s: {_progress(metric_counters(result))}")
        summary.sinks = sink_paths(config)
        summary.seconds = time.monotonic() - started
        return summary
    finally:
        heartbeats.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
