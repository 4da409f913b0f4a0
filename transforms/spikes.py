"""Stage 6, DetectSpikes: Articles -> Alerts, per topic, by the configured spike rules.

Input:  Article (tagged).  Output: Alert (transforms/records.py).
Batch: all articles of a topic are grouped (one small element per article: id, time), put
into the windows of the counts stage (fixed or sliding), and the topic's whole series is
evaluated by transforms/alerts.py; `new_windows` limits the alerts to the windows a run
changed, `earlier_alerts` carries cool-downs over from earlier runs.
Streaming: the same series is built from accumulating panes per topic and evaluated one
window at a time by `IncrementalEvaluator` (see pipeline/stream.py).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Iterator, Sequence, cast

import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.transforms import window as beam_window
from apache_beam.transforms.trigger import AccumulationMode, TriggerFn
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec
from apache_beam.utils.windowed_value import PaneInfoTiming

from transforms.spike_rules import AlertRule, IncrementalEvaluator, WindowCount, evaluate_new
from transforms.counts import stamp, window_fn, windows_of
from transforms.records import Alert, Article
from transforms.timeutil import from_epoch, to_epoch


def topic_series(members: Iterable[tuple[float, str]], size: float,
                 period: float | None) -> list[WindowCount]:
    """(published epoch, article id) of one topic -> its count per window, with the ids."""
    buckets: dict[tuple[float, float], set[str]] = defaultdict(set)
    for published, ident in members:
        for window in windows_of(published, size, period):
            buckets[window].add(ident)
    return [WindowCount(from_epoch(s), from_epoch(e), len(ids), tuple(sorted(ids)))
            for (s, e), ids in sorted(buckets.items())]


def _topic_members(article: Article) -> Iterator[tuple[str, tuple[float, str]]]:
    published = to_epoch(article.published)
    for topic in article.topics:
        yield topic, (published, article.id)


class DetectSpikes(beam.PTransform):
    """Article -> Alert for each rule that fires on a topic's window count."""

    def __init__(self, rules: Sequence[AlertRule], size: float, period: float | None = None,
                 new_windows: Iterable[str] | None = None,
                 earlier_alerts: Sequence[dict[str, Any]] = (), origin: str | None = None) -> None:
        super().__init__()
        self.rules = tuple(rules)
        self.size, self.period = size, period
        self.step = period if period and period != size else size
        self.new_windows = frozenset(new_windows) if new_windows is not None else None
        self.earlier = tuple(earlier_alerts)
        self.origin = origin

    def _evaluate(self, grouped: tuple[str, Iterable[tuple[float, str]]]) -> Iterator[Alert]:
        topic, members = grouped
        series = topic_series(members, self.size, self.period)
        earlier = [a for a in self.earlier if a.get("topic") == topic]
        yield from evaluate_new(self.rules, topic, series, self.new_windows, self.step,
                                origin=self.origin, earlier_alerts=earlier)

    def expand(self, articles: beam.PCollection) -> beam.PCollection:
        return (cast("beam.PCollection", articles
                | "TopicMembers" >> beam.FlatMap(_topic_members)
                | "ByTopic" >> beam.GroupByKey()
                | "Evaluate" >> beam.FlatMap(self._evaluate)))


class _ClosedWindowIds(beam.DoFn):
    """(topic, ids) per pane -> (topic, (start, end, ids)) for on-time and late panes only:
    a rule judges a window when it closes, not on a partial early count."""

    def process(self, element: tuple[str, Iterable[str]], win: Any = beam.DoFn.WindowParam,
                pane: Any = beam.DoFn.PaneInfoParam) -> Iterator[tuple[str, tuple[str, str, tuple[str, ...]]]]:
        if pane.timing == PaneInfoTiming.EARLY:
            return
        topic, ids = element
        yield topic, (from_epoch(float(win.start)), from_epoch(float(win.end)), tuple(sorted(set(ids))))


class _EvaluateFn(beam.DoFn):
    """Per topic: the rules' incremental evaluator, kept in state between windows."""

    EVALUATOR = ReadModifyWriteStateSpec("evaluator", PickleCoder())

    def __init__(self, rules: Sequence[AlertRule], step: float) -> None:
        self.rules = tuple(rules)
        self.step = step

    def process(self, element: tuple[str, tuple[str, str, tuple[str, ...]]],
                saved: Any = beam.DoFn.StateParam(EVALUATOR)) -> Iterator[Alert]:
        topic, (start, end, ids) = element
        state = saved.read()
        evaluator = (IncrementalEvaluator.from_state(topic, self.rules, self.step, state) if state
                     else IncrementalEvaluator.create(topic, self.rules, self.step))
        alerts = evaluator.observe(start, end, len(ids), ids)
        saved.write(evaluator.to_state())
        yield from alerts


class StreamSpikes(beam.PTransform):
    """Streaming: Article -> Alert as each topic's windows close (same rules as DetectSpikes)."""

    def __init__(self, rules: Sequence[AlertRule], size: float, period: float | None,
                 allowed_lateness: float, trigger: TriggerFn) -> None:
        super().__init__()
        self.rules = tuple(rules)
        self.window_fn = window_fn(size, period)
        self.step = period if period and period != size else size
        self.allowed_lateness = allowed_lateness
        self.trigger = trigger

    def expand(self, articles: beam.PCollection) -> beam.PCollection:
        return (cast("beam.PCollection", articles
                | "EventTime" >> beam.Map(stamp)
                | "Window" >> beam.WindowInto(self.window_fn, trigger=self.trigger,
                                              accumulation_mode=AccumulationMode.ACCUMULATING,
                                              allowed_lateness=self.allowed_lateness)
                | "TopicIds" >> beam.FlatMap(lambda a: ((t, a.id) for t in a.topics))
                | "IdsPerWindow" >> beam.GroupByKey()
                | "ClosedWindows" >> beam.ParDo(_ClosedWindowIds())
                | "Global" >> beam.WindowInto(beam_window.GlobalWindows())
                | "Evaluate" >> beam.ParDo(_EvaluateFn(self.rules, self.step))))
