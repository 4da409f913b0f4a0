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
import sqlite3
import sys
import threading
import time
import uuid
from collections import deque
from concurrent.futures import Future, wait as wait_for_futures
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.runners.runner import PipelineResult
from apache_beam.transforms import trigger as beam_trigger

from pipeline.config import Config, UsageError
from pipeline.graph.signals import StopOnSignal, crash_point
from pipeline.graph.beam_patches import fix_direct_runner_metrics, larger_pubsub_pulls
from pipeline.graph.microbatch import StageWorker, restore_heap, settle_heap
from pipeline.graph.runner import new_pipeline
from pipeline.graph.stages import apply_stages, story_options, write_alerts, write_sinks
from pipeline.graph.summary import Summary, metric_counters, read_metrics, sink_paths
from pipeline.io.export import Exporter
from pipeline.io.stream_outputs import StreamOutputs
from pipeline.io.pubsub import (
    Leases,
    Pulled,
    Puller,
    ensure_subscription,
    ensure_topic,
    is_heartbeat,
    on_emulator,
    publish_heartbeat,
    publisher,
)
from pipeline.io.sources import ReadPubSubItems, ReadPubSubSDF
from pipeline.io.spool import read_outputs, write_spool
from pipeline.store.articles import StoryMemory
from pipeline.store.lock import run_lock
from pipeline.store.streamstate import StreamStore
from transforms.langid import LanguageDetector
from transforms.late import deadline
from transforms.records import Article, DeadLetter, RawItem
from transforms.timeutil import now_iso, to_epoch
from transforms.spikes import StreamSpikes

log = logging.getLogger(__name__)

STOP_BUDGET = 15.0        # seconds from the signal to exit
HEARTBEAT_EVERY = 2.0     # seconds between heartbeats while running
HEARTBEAT_DRAINING = 0.25 # ... and while draining: the local runner has ONE worker thread, which
                          # a blocked pull holds; a heartbeat is what frees it
PROGRESS_EVERY = 30.0
PRUNE_EVERY = 600.0   # state.retention: old text is dropped this often (the first time at start)


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


def build(p: beam.Pipeline, config: Config, portable: bool = False) -> None:
    """Pub/Sub -> stages -> sinks (streaming). `portable`: read with the splittable-DoFn reader
    that acknowledges in a bundle finalizer (Prism, Flink, Dataflow), else Beam's built-in one."""
    source = config.sources.pubsub
    assert source is not None
    if portable:
        if source.subscription is None:
            raise UsageError("on a portable runner the stream reads a subscription: set "
                             "sources.pubsub.subscription")
        read: beam.PTransform = ReadPubSubSDF(source.subscription)
    else:
        read = ReadPubSubItems(source.subscription, source.topic)
    items = (p
             | "PubSubItems" >> read
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


def run_stream_graph(config: Config, beam_args: Sequence[str] = (), max_seconds: float | None = None) -> Summary:
    """The Beam streaming graph (no state.path, or a named runner): run until SIGINT/SIGTERM or
    `max_seconds`, drain, cancel; return the summary."""
    assert config.sources.pubsub is not None
    started = time.monotonic()
    source = config.sources.pubsub.subscription or config.sources.pubsub.topic
    topic = heartbeat_topic(config)
    where = f"emulator {os.environ['PUBSUB_EMULATOR_HOST']}" if on_emulator() else "Google Cloud"
    signals = StopOnSignal(lambda name: _say(f"{name}: draining")).install()
    stop = signals.stop
    heartbeats = _Heartbeats(topic, min(HEARTBEAT_EVERY, config.windows.early))
    try:
        p = new_pipeline(config, beam_args, streaming=True)
        local = type(p.runner).__name__ in ("BundleBasedDirectRunner", "DirectRunner", "SwitchingDirectRunner")
        if local:   # the built-in reader on Beam's local runner needs two patches (beam_patches.py)
            fix_direct_runner_metrics()
            larger_pubsub_pulls()
        build(p, config, portable=not local)
        result = p.run()
        watcher = _Watcher(result, stop)
        _say(f"reading {source} on {where}; windows {config.windows.size:g}s"
             f"{f' every {config.windows.period:g}s' if config.windows.period else ''}, allowed lateness "
             f"{config.windows.allowed_lateness:g}s, early panes every {config.windows.early:g}s")
        heartbeats.start()
        next_progress = time.monotonic() + PROGRESS_EVERY
        while not stop.wait(0.5):
            if max_seconds is not None and time.monotonic() - started >= max_seconds:
                signals.reason = "max-seconds"
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
        _say(f"stopped ({signals.reason}) after draining in {time.monotonic() - stop_at:.1f}s: {_progress(metric_counters(result))}")
        summary.sinks = sink_paths(config)
        summary.seconds = time.monotonic() - started
        return summary
    finally:
        heartbeats.stop()
        signals.restore()


# ==================================================================== exactly-once (state.path)

# messages per micro-batch, at most: the batch last in a burst is committed with nothing beside
# it, so smaller batches end a burst sooner (2,500 against 5,000, six interleaved pairs of
# 20,000-message bursts: median 1,012 against 918 items/s on a slow day), now that a run's
# fixed cost is ~110 ms
MAX_BATCH = int(os.environ.get("MEDIAMON_STREAM_BATCH", "2500"))
MAX_BATCH_BYTES = 48 * 1024 * 1024  # ... and bytes (an 8 MB message makes a small batch)
BUFFER_ITEMS = 2 * MAX_BATCH        # pulled ahead while a batch is processed
BUFFER_BYTES = 2 * MAX_BATCH_BYTES
PULL_TIMEOUT = 1.0                  # an idle pull returns after this long
IDLE_PULL_PAUSE = 0.4               # at most this long between pulls when they come back empty (idle_pause)
BATCH_SECONDS = 4.0                 # a micro-batch should take about this long at most (two are in hand)
MIN_QUEUED = 200                    # a batch queued behind busy workers has at least this many (or a quarter of the limit)
# worker processes running the stages (0: in the driver). One beside the driver was the fastest
# on 2 CPUs (20,000-message burst: 1,080-1,222 items/s; two workers 895-1,112; none 929)
STAGE_PROCESSES = int(os.environ.get("MEDIAMON_STREAM_PROCESSES", "1"))



def idle_pause(empty: int) -> float:
    """Seconds to wait after `empty` empty pulls in a row: 0.05, 0.1, 0.2, then IDLE_PULL_PAUSE.

    An empty pull comes back at once or after a short wait (the emulator: ~45 ms), and each
    one costs the server as much as a pull of a hundred messages: a quiet stream pulled 20
    times a second (the emulator's CPU: 6-9 ms a pull; the driver's ~2 ms), and so did a busy
    job once it had pulled everything there was.  A new message waits at most the pause."""
    return min(IDLE_PULL_PAUSE, 0.05 * 2.0 ** (empty - 1))


class _Prefetch:
    """Pulls on its own thread into a bounded buffer, while the driver processes a batch.
    Every message it holds is leased (its ack deadline kept ahead) until acked or given back."""

    def __init__(self, puller: Puller, leases: Leases) -> None:
        self.puller = puller
        self.leases = leases
        self.buffer: list[Pulled] = []
        self.bytes = 0
        self.cond = threading.Condition()
        self.cut = False                 # the last take left messages behind
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="pubsub-pull", daemon=True)

    def start(self) -> "_Prefetch":
        self.thread.start()
        return self

    def _run(self) -> None:
        idle = 0      # empty pulls in a row
        try:
            while not self.stop.is_set():
                with self.cond:
                    while (len(self.buffer) >= BUFFER_ITEMS or self.bytes >= BUFFER_BYTES) and not self.stop.is_set():
                        self.cond.wait(0.2)
                    room = BUFFER_ITEMS - len(self.buffer)
                if self.stop.is_set():
                    return
                pulled = self.puller.pull(room, timeout=PULL_TIMEOUT)
                if not pulled:
                    idle += 1
                    self.stop.wait(idle_pause(idle))
                    continue
                idle = 0
                self.leases.hold(m.ack_id for m in pulled)
                with self.cond:
                    self.buffer.extend(pulled)
                    self.bytes += sum(m.size for m in pulled)
                    self.cond.notify_all()
        except BaseException as exc:  # re-raised on the driver thread
            self.error = exc
            with self.cond:
                self.cond.notify_all()

    def take(self, wait: float, limit: int = MAX_BATCH) -> list[Pulled]:
        """What is buffered (at most `limit` messages / MAX_BATCH_BYTES, at least one message
        if any), waiting up to `wait` seconds for the first. `self.cut` says whether the
        limit left messages behind (a backlog)."""
        with self.cond:
            if not self.buffer:
                self.cond.wait(wait)
            out: list[Pulled] = []
            size = 0
            for m in self.buffer:
                if out and (len(out) >= limit or size + m.size > MAX_BATCH_BYTES):
                    break
                out.append(m)
                size += m.size
            del self.buffer[:len(out)]
            self.bytes -= size
            self.cut = bool(self.buffer)
            self.cond.notify_all()
            return out

    def buffered(self) -> int:
        """Messages pulled and not taken yet."""
        with self.cond:
            return len(self.buffer)

    def halt(self) -> list[Pulled]:
        """Stop pulling; return what was pulled but not taken (to be given back)."""
        self.stop.set()
        with self.cond:
            self.cond.notify_all()
        self.thread.join(timeout=PULL_TIMEOUT + 5)
        with self.cond:
            rest, self.buffer, self.bytes = self.buffer, [], 0
        return rest


# Failures that say nothing about a message: the job stops (exit 1) instead of dead-lettering
# good messages one by one; unacknowledged messages come back to the next job.
ENVIRONMENT_ERRORS = (OSError, sqlite3.Error, MemoryError)


def _to_raw(subscription: str, m: Pulled) -> RawItem:
    return RawItem(source=subscription, data=m.data, fetched=now_iso(), attributes=m.attributes)


@dataclass
class _InFlight:
    """What the driver pulled for one micro-batch: acknowledged once `pending` is committed."""
    number: int
    pulled: list[Pulled]
    pending: "_Pending | None"       # None: heartbeats only
    started: float
    backlog: bool = False            # the batch limit left messages behind

    def done(self) -> bool:
        return self.pending is None or self.pending.future.done()

    def wait(self, seconds: float) -> None:
        """Until the stages are done, at most `seconds`."""
        if self.pending is not None:
            wait_for_futures([self.pending.future], timeout=seconds)


@dataclass
class _Pending:
    """A micro-batch whose stages are running (in the worker) and which is not committed yet."""
    raws: list[RawItem]
    batch: str
    spool: Path
    out: Path
    future: "Future[dict[str, int]]"
    generation: int                  # the worker pool it was given to (a pool that died is replaced once)
    waited: float = 0.0              # seconds the driver waited for the stages (the log's figures)
    commit_seconds: float = 0.0


class _Batches:
    """Runs micro-batches through the stages (Beam, in the StageWorker) and commits them to
    the store (here, in the driver, in order): `submit` starts one, `finish` commits it."""

    def __init__(self, config: Config, beam_args: Sequence[str], store: StreamStore,
                 processes: int = 1) -> None:
        assert config.state.path is not None
        self.config = config
        self.store = store
        self.stories = story_options(config)
        self.memory = StoryMemory(self.stories)    # the story matchers live as long as the job
        self.pipelines = 0
        self.spool = config.state.path.parent / "spool"
        # what a killed job left (never committed, or committed: the store knows); under the run lock
        for left in self.spool.glob("*") if self.spool.is_dir() else []:
            left.unlink(missing_ok=True)
        self.worker = StageWorker(config, beam_args, processes, folder=self.spool)

    def close(self) -> None:
        self.worker.close()

    def submit(self, raws: list[RawItem], batch: str) -> _Pending:
        spool, out = self.spool / f"{batch}.bin", self.spool / f"{batch}.out"
        write_spool(spool, raws)
        return _Pending(raws, batch, spool, out, self.worker.submit(spool, out), self.worker.restarts)

    def _outputs(self, pending: _Pending) -> tuple[list[Article], list[DeadLetter], dict[str, int]]:
        """The stages' result of a pending batch (waits for it): articles, dead letters, counters."""
        counters = pending.future.result()
        self.pipelines += 1
        articles, dead = read_outputs(pending.out)
        return articles, dead, counters

    def process(self, raws: list[RawItem], batch: str, summary: Summary) -> None:
        """Stages + commit of one batch, now (`submit` + `finish`)."""
        self.finish(self.submit(raws, batch), summary)

    def finish(self, pending: _Pending, summary: Summary) -> None:
        """Commit a batch's articles, duplicates and dead letters in one transaction; on a
        failure, split it until the message that fails alone becomes a dead letter (stage
        `stream`): one bad message never stalls the job."""
        raws, batch = pending.raws, pending.batch
        w = self.config.windows
        try:
            waiting = time.monotonic()
            articles, dead, counters = self._outputs(pending)
            committing = time.monotonic()
            now = time.time()
            late = {a.id for a in articles if deadline(to_epoch(a.published), w.size, w.period, w.allowed_lateness) <= now}
            outcome = self.store.commit_batch(batch, len(raws), [a for a in articles if a.id not in late], dead,
                                              [a for a in articles if a.id in late], self.stories, self.memory)
            pending.waited, pending.commit_seconds = committing - waiting, time.monotonic() - committing
        except ENVIRONMENT_ERRORS:
            raise   # the disk or the store, not a message: stop; nothing acked, nothing lost
        except Exception as exc:  # any stage failing on some message: find it, dead-letter it
            if isinstance(exc, BrokenProcessPool) and pending.generation == self.worker.restarts:
                # a worker died on this batch (or one beside it): a new pool, then split and retry
                log.warning("a stage worker died on a batch of %d messages; restarting the workers", len(raws))
                self.worker.restart()
            if len(raws) == 1:
                raw = raws[0]
                log.warning("message could not be processed, dead-lettered: %s: %s", type(exc).__name__, exc)
                error = f"processing failed: {type(exc).__name__}: {str(exc)[:500]}"
                letter = DeadLetter.of("stream", error, raw.source, raw.data, now_iso())
                outcome = self.store.commit_batch(batch, 1, [], [letter])
                summary.items_read += 1
                summary.dead_letters += outcome["dead_letters"]
                return
            log.info("a batch of %d failed (%s); splitting it", len(raws), type(exc).__name__)
            half = len(raws) // 2
            self.process(raws[:half], f"{batch}a", summary)
            self.process(raws[half:], f"{batch}b", summary)
            return
        finally:
            pending.spool.unlink(missing_ok=True)
            pending.out.unlink(missing_ok=True)
        summary.items_read += counters.get("mediamon/items_read", 0)
        summary.articles += outcome["articles"]
        summary.duplicates += counters.get("mediamon/duplicates", 0) + outcome["duplicates"]
        summary.dead_letters += outcome["dead_letters"]
        summary.late += outcome["late"]
        for key, target in (("by_language", summary.by_language), ("by_topic", summary.by_topic)):
            for name, n in outcome.get(key, {}).items():
                target[name] = target.get(name, 0) + n


class _Retention:
    """`state.retention` in the long-running job: the text of articles published before the
    horizon is dropped every PRUNE_EVERY seconds (ids, times, topics and mentions stay, so
    dedup and every stored count are unchanged; `ArticleStore.prune`)."""

    def __init__(self, store: StreamStore, horizon: float | None) -> None:
        self.store = store
        self.horizon = horizon
        self.next = time.monotonic()

    def tick(self) -> int:
        if self.horizon is None or time.monotonic() < self.next:
            return 0
        self.next = time.monotonic() + PRUNE_EVERY
        pruned = self.store.prune(self.horizon)
        if pruned:
            log.info("pruned the text of %d articles older than state.retention", pruned)
        return pruned


def run_stream_exactly_once(config: Config, beam_args: Sequence[str] = (),
                            max_seconds: float | None = None) -> Summary:
    """Pull -> micro-batch through the stages -> commit to the store -> ack -> export, until
    SIGINT/SIGTERM or `max_seconds`; drain (finish the batch in hand, give back the rest)."""
    assert config.state.path is not None and config.sources.pubsub is not None
    started = time.monotonic()
    source = config.sources.pubsub
    subscription = source.subscription
    if subscription is None:
        raise UsageError("exactly-once streaming reads a subscription: set sources.pubsub.subscription "
                         "(a topic alone cannot be replayed after a crash)")
    if on_emulator():
        ensure_subscription(subscription, config.poll.topic)
    where = f"emulator {os.environ['PUBSUB_EMULATOR_HOST']}" if on_emulator() else "Google Cloud"
    signals = StopOnSignal(lambda name: _say(f"{name}: draining")).install()
    stop = signals.stop
    summary = Summary()
    try:
        with run_lock(config):
            store = StreamStore(config.state.path, config.windows.size, config.windows.period)
            exporter = Exporter(config.sinks)
            puller = Puller(subscription)
            leases = Leases(puller).start()
            prefetch = _Prefetch(puller, leases)
            # the worker process starts (and loads the language profiles) before the first batch
            batches = _Batches(config, beam_args, store, processes=STAGE_PROCESSES)
            heap: tuple[int, ...] | None = None
            try:
                outputs = StreamOutputs(config, store, exporter)
                exported = outputs.export()   # what a killed job committed but never exported
                if exported:
                    _say(f"exported {exported} windows left dirty by an earlier run")
                _say(f"reading {subscription} on {where}, exactly-once into {config.state.path}: each "
                     f"micro-batch is committed before it is acknowledged; windows {config.windows.size:g}s"
                     f"{f' every {config.windows.period:g}s' if config.windows.period else ''}, allowed "
                     f"lateness {config.windows.allowed_lateness:g}s")
                if config.alerts:
                    _say(f"alert rules ({len(config.alerts)}) judge changed windows every "
                         f"{max(config.windows.early, 2.0):g}s, closed ones within 2s")
                heap = settle_heap()    # models and matchers are loaded: see microbatch.settle_heap
                prefetch.start()
                next_progress = time.monotonic() + PROGRESS_EVERY
                number = 0
                rate = 1000.0           # items/s through stages + commit, a running estimate
                # batches in the workers' stages while the oldest is committed here, in order
                in_flight: deque[_InFlight] = deque()
                depth = max(1, STAGE_PROCESSES)
                last_done = time.monotonic()
                retention = _Retention(store, config.state.retention)

                def finish(done: _InFlight) -> None:
                    nonlocal rate, last_done
                    if done.pending is not None:
                        batches.finish(done.pending, summary)
                    crash_point("after_commit", done.number)
                    t1 = time.monotonic()
                    ack_ids = [m.ack_id for m in done.pulled]
                    puller.ack(ack_ids)
                    leases.release(ack_ids)
                    crash_point("after_ack", done.number)
                    t2 = time.monotonic()
                    outputs.export()
                    crash_point("after_export", done.number)
                    retention.tick()
                    # the job's rate: batches complete one after another (the next one's stages
                    # overlap this one's commit), so items per interval between completions; only
                    # a batch cut by the limit measures it (one that took everything buffered
                    # measures how fast messages arrive: at the start of a burst, while the
                    # publisher has the CPUs, such batches pulled the limit down to 1,100-2,300)
                    if done.backlog and len(done.pulled) >= 50:
                        rate = 0.5 * rate + 0.5 * len(done.pulled) / max(t1 - max(last_done, done.started), 0.05)
                    last_done = t1
                    waited, committed = (done.pending.waited, done.pending.commit_seconds) if done.pending else (0, 0)
                    log.info("micro-batch %d: %d messages; pulled to committed %.2fs (of which waiting for the "
                             "stages %.2fs, commit %.2fs), ack %.2fs, export %.2fs", done.number, len(done.pulled),
                             t1 - done.started, waited, committed, t2 - t1, time.monotonic() - t2)

                while not stop.is_set():
                    if max_seconds is not None and time.monotonic() - started >= max_seconds:
                        signals.reason = "max-seconds"
                        _say(f"--max-seconds {max_seconds:g} reached: draining")
                        break
                    if prefetch.error is not None:
                        raise RuntimeError(f"pulling from {subscription} failed: {prefetch.error}") from prefetch.error
                    # a batch should take at most BATCH_SECONDS at the recent rate, so a stop
                    # (which finishes the batches in hand) stays well inside the 15 s budget
                    limit = int(min(MAX_BATCH, max(100, rate * BATCH_SECONDS / depth)))
                    # while the workers are busy, a small batch is not queued behind them: the
                    # messages wait for the worker that frees first, with what comes meanwhile
                    # (at the start of a burst, batches of 100 each paid a pipeline run's fixed cost)
                    deferred = (len(in_flight) >= depth and not in_flight[-1].done()
                                and prefetch.buffered() < max(MIN_QUEUED, limit // 4))
                    if deferred:
                        in_flight[-1].wait(0.05)
                        pulled = []
                    else:
                        pulled = prefetch.take(wait=0.05 if in_flight else 0.5, limit=limit)
                    if time.monotonic() >= next_progress:
                        _say(_summary_progress(summary))
                        next_progress += PROGRESS_EVERY
                    if pulled:
                        number += 1
                        crash_point("after_pull", number)
                        raws = [_to_raw(subscription, m) for m in pulled if not is_heartbeat(m.attributes)]
                        in_flight.append(_InFlight(number, pulled, batches.submit(raws, uuid.uuid4().hex[:16])
                                                   if raws else None, time.monotonic(), prefetch.cut))
                    # commit the oldest when the workers are all busy, when it is done, or when
                    # nothing new came and nothing waits to be taken (then latency matters more
                    # than overlap)
                    while in_flight and (len(in_flight) > depth or in_flight[0].done()
                                         or not (pulled or deferred)):
                        finish(in_flight.popleft())
                while in_flight:     # drain: the batches in the workers are committed too
                    finish(in_flight.popleft())
                stop_at = time.monotonic()
                rest = prefetch.halt()
                if rest:   # pulled, never processed: give them back for the next job at once
                    ids = [m.ack_id for m in rest]
                    leases.release(ids)
                    try:
                        puller.lease(ids, 0)
                    except Exception as exc:  # they come back after the ack deadline anyway
                        log.warning("could not give back %d messages: %s", len(ids), exc)
                outputs.export(final=True)
                if outputs.alerts_raised:
                    _say(f"{outputs.alerts_raised} alerts raised")
                _say(f"stopped ({signals.reason}) in {time.monotonic() - stop_at:.1f}s after {number} micro-batches "
                     f"({batches.pipelines} pipelines); gave back {len(rest)} unprocessed messages: "
                     f"{_summary_progress(summary)}")
            finally:
                if heap is not None:
                    restore_heap(heap)
                prefetch.halt()
                batches.close()
                leases.stop()
                exporter.close()
                store.close()
    finally:
        signals.restore()
    summary.sinks = sink_paths(config)
    summary.seconds = time.monotonic() - started
    return summary


def _summary_progress(s: Summary) -> str:
    return (f"{s.items_read} items, {s.articles} articles, {s.duplicates} duplicates, "
            f"{s.dead_letters} dead letters, {s.late} late")


CRASH_WARNING = ("no state.path: counts and dedup live in the runner's memory, and Beam's local "
                 "runner acknowledges messages when it reads them. A crash or kill loses the "
                 "messages in flight and the open windows' counts; a restarted job counts those "
                 "windows from zero (SQLite sinks keep the higher total, still short) until "
                 "`mediamon run` replays the archive (poll.archive). Set state.path for "
                 "exactly-once counts (docs/streaming.md).")


def run_stream(config: Config, beam_args: Sequence[str] = (), max_seconds: float | None = None) -> Summary:
    """`mediamon stream`: exactly-once micro-batches with state.path on the local machine; the
    Beam streaming graph otherwise (or when a runner is named after `--`)."""
    if config.sources.pubsub is None:
        raise UsageError("this config has no sources.pubsub: use `mediamon run`")
    runner_named = any(a.startswith("--runner") for a in beam_args) or any(k == "runner" for k, _ in config.beam_options)
    if config.state.path is not None and not runner_named:
        return run_stream_exactly_once(config, beam_args, max_seconds)
    if config.state.path is None:
        _say("WARNING: " + CRASH_WARNING)
    else:
        _say("a runner is named: the Beam streaming graph runs there and its guarantees are the "
             "runner's (Dataflow checkpoints; Prism and the local runners keep state in memory); "
             "state.path is not used for exactly-once")
    return run_stream_graph(config, beam_args, max_seconds)
