"""The exactly-once stream's export step: the store's truth -> the sinks, after every micro-batch.

`StreamOutputs.export()` runs after each micro-batch is committed and acknowledged (and once at
start-up and at the stop). It writes, from the store (pipeline/store/streamstate.py):

- the dirty windows' true totals (counts, topics), the new articles, the new dead letters, and
  the story records of every (window, story) the new articles belong to (`what: stories`, the
  same records as a scheduled run's recount); then marks them exported, and, when the config
  has alert rules, queues those windows for judging (same transaction);
- spike alerts: the queued windows are judged with the same rules as scheduled runs
  (transforms/spike_rules.py over the stored topic totals of the windows and their history,
  cool-downs from the store's `alerts` table). A window is judged when it is closed (its end +
  allowed lateness passed by the wall clock or the stream's watermark, the latest published
  time stored) at most every CHECK_EVERY seconds, an open one at most every `windows.early`
  seconds, and every queued window at the stop. An alert is stored with the judged windows
  done in one transaction, then goes to the alerts sinks and (new alerts only) the webhook
  from an outbox; a kill before that is redelivered by the next start. An alert raised on an
  open window is updated (same natural key, sinks only, not the webhook) while its window
  grows, so its final record equals a scheduled run's.

Delivery is at least once towards the outside: a kill between writing a sink and clearing the
outbox row writes it again (SQLite sinks: the same row; JSONL: the same line again; the webhook:
one more POST of the same alert).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from typing import Any, Callable

from pipeline.config import Config
from pipeline.io.export import Exporter
from pipeline.io.webhook import failure_dead_letter, post_alert
from pipeline.store.streamstate import StreamStore
from transforms.counts import windows_of
from transforms.records import Alert, DeadLetter
from transforms.spike_rules import judge_windows
from transforms.timeutil import from_epoch, now_iso

log = logging.getLogger(__name__)

CHECK_EVERY = 2.0        # seconds between looks at the queued windows (closed ones are judged then)
FINAL_WEBHOOK_TIMEOUT = 3.0  # at the stop: one attempt each, so the drain stays within its budget
FINAL_WEBHOOK_BUDGET = 5.0   # ... and no new POST after this many seconds (the rest: next start)
WEBHOOK_BUDGET = 10.0        # while running: no new POST after this long in one export step


class StreamOutputs:
    """Exports the store's truth to the configured sinks; judges the alert rules."""

    def __init__(self, config: Config, store: StreamStore, exporter: Exporter,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.store = store
        self.exporter = exporter
        self.rules = tuple(config.alerts)
        self.stories = any(s.what == "stories" for s in config.sinks)
        self.clock = clock
        self.monotonic = monotonic
        self.next_check = 0.0        # the first export (at start-up) judges what an earlier run left
        self.next_open = 0.0
        self.alerts_raised = 0

    def export(self, final: bool = False) -> int:
        """One export step; `final` (the stop) judges every queued window. Returns the number
        of windows exported."""
        windows, articles, dead = self.store.pending_export()
        if windows or articles or dead:
            counts, topics = self.store.totals(windows)
            self.exporter.write("counts", counts)
            self.exporter.write("topics", topics)
            self.exporter.write("articles", articles)
            self.exporter.write("dead_letters", [r for _, r in dead])
            if self.stories and articles:
                self.exporter.write("stories", self.store.story_records(articles))
            self.store.exported(windows, [a.id for a in articles], [s for s, _ in dead], judge=bool(self.rules))
        if self.rules:
            self._alerts(final)
        return len(windows)

    # ------------------------------------------------------------ alerts

    def _alerts(self, final: bool) -> None:
        now = self.monotonic()
        if final or now >= self.next_check:
            self.next_check = now + CHECK_EVERY
            queued = self.store.alert_windows()
            if queued and (final or now >= self.next_open or self._any_closed(queued)):
                self.next_open = now + max(self.config.windows.early, CHECK_EVERY)
                self.judge(queued)
        self._deliver(final)

    def _any_closed(self, windows: list[tuple[float, float]]) -> bool:
        watermark = self.store.watermark()
        now = max(self.clock(), watermark if watermark is not None else float("-inf"))
        return any(end + self.config.windows.allowed_lateness <= now for _, end in windows)

    def judge(self, windows: list[tuple[float, float]]) -> tuple[list[Alert], list[Alert]]:
        """The rules over these windows (and the history they look back on): new alerts and
        updates of alerts raised before, stored with the windows marked judged."""
        w = self.config.windows
        step = w.period or w.size
        lookback = max(r.history_windows(step) * step + r.cooldown for r in self.rules) + w.size
        first = min(s for s, _ in windows)
        last = max(e for _, e in windows)
        series = self.store.topic_series(first - lookback, last)
        earliest = self.store.earliest_published()
        origin = None
        if earliest is not None:
            origin = from_epoch(min(s for s, _ in windows_of(earliest, w.size, w.period)))
        stored = {(a["topic"], a["window_start"], a["window_end"], a["rule"]): a for a in self.store.alerts()}
        judged = [from_epoch(s) for s, _ in windows]
        new: list[Alert] = []
        updated: list[Alert] = []
        for topic in sorted(series):
            earlier = [a for a in stored.values() if a["topic"] == topic]
            for alert in judge_windows(self.rules, topic, series[topic], judged, step,
                                       origin=origin, stored_alerts=earlier):
                before = stored.get((alert.topic, alert.window_start, alert.window_end, alert.rule))
                if before is not None and int(before["count"]) == alert.count:
                    # the same articles (a window only grows): no scan of the window for its ids
                    if float(before["baseline"]) == alert.baseline and float(before["score"]) == alert.score:
                        continue
                    updated.append(dataclasses.replace(alert, articles=tuple(_ids(before))))
                    continue
                alert = dataclasses.replace(alert, articles=self.store.topic_article_ids(
                    topic, alert.window_start, alert.window_end))
                (new if before is None else updated).append(alert)
        self.store.record_alerts(new, updated, windows, webhook=self.config.webhook is not None)
        for alert in new:
            log.info("alert %s on %s for %s: %d articles (baseline %g, score %g)", alert.rule, alert.topic,
                     alert.window_start, alert.count, alert.baseline, alert.score)
        self.alerts_raised += len(new)
        return new, updated

    def _deliver(self, final: bool) -> None:
        """Outbox -> alerts sinks, then new alerts -> the webhook (an undeliverable one becomes a
        dead letter, as in scheduled runs)."""
        queued = self.store.outbox("alerts")
        if queued:
            self.exporter.write("alerts", [r for _, r in queued])
            self.store.delivered([s for s, _ in queued])
        spec = self.config.webhook
        posts = self.store.outbox("webhook")
        if spec is None or not posts:
            if posts:   # webhook removed from the config since: nothing to post to
                self.store.delivered([s for s, _ in posts])
            return
        if final:       # one short attempt each; what fails waits in the outbox for the next start
            spec = dataclasses.replace(spec, retries=0, timeout=min(spec.timeout, FINAL_WEBHOOK_TIMEOUT))
        deadline = self.monotonic() + (FINAL_WEBHOOK_BUDGET if final else WEBHOOK_BUDGET)
        for seq, record in posts:
            if self.monotonic() >= deadline:    # the rest waits in the outbox (next export or start)
                break
            result = post_alert(record, spec)
            dead: list[DeadLetter] = []
            if not result.ok:
                if final:
                    log.warning("webhook: alert %s/%s not delivered at the stop (%s); the next start retries",
                                record["topic"], record["window_start"], result.error)
                    continue
                log.warning("webhook: alert %s/%s not delivered: %s", record["topic"], record["window_start"],
                            result.error)
                dead.append(failure_dead_letter(_alert(record), result, spec, now_iso()))
            self.store.delivered([seq], dead)


def _alert(record: dict[str, Any]) -> Alert:
    return Alert(**{**record, "articles": tuple(record.get("articles") or ())})


def _ids(stored: dict[str, Any]) -> list[str]:
    """A stored alert row's article ids (JSON text in SQLite)."""
    articles = stored.get("articles")
    if isinstance(articles, str):
        articles = json.loads(articles) if articles else []
    return [str(a) for a in articles or []]
