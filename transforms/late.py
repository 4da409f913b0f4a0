"""SplitLate (streaming, before windowing): Articles too old for their window -> a counted output.

Input:  Article (its event time is `published`).
Output: tagged `on_time` (Article) and `late` (Article); metric `mediamon/late` counts the late.

Beam drops an element at the window's GroupByKey, without a word, once the watermark has passed
its window's end plus the allowed lateness.  This stage makes that decision first, so a late
article is counted (and logged) instead of vanishing.  It needs to know the watermark: on the
local runner the Pub/Sub watermark is the wall clock, so the default clock is `time.time`;
tests pass a fixed clock.  `margin` seconds are added to the clock because an article takes a
moment to travel from here to the GroupByKey, while the watermark keeps moving.

With sliding windows an article belongs to several windows that close at different times; it
is late as soon as the first of them has closed (all or nothing: either it is counted in every
window it belongs to, or it is a counted late item to be replayed from the archive).
"""
from __future__ import annotations

import logging
import math
import time
from typing import Callable, Iterator, cast

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput

from transforms.records import Article
from transforms.timeutil import to_epoch

log = logging.getLogger(__name__)


class FixedClock:
    """A clock that always says `now` (tests; picklable, unlike a lambda in a test module)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def first_window_end(event_time: float, size: float, period: float | None) -> float:
    """End of the earliest window (fixed or sliding, offset 0) that holds `event_time`."""
    step = period if period and period != size else size
    # Sliding windows start every `step`; the earliest holding t starts at the first start > t - size.
    earliest_start = (math.floor((event_time - size) / step) + 1) * step
    return earliest_start + size


def deadline(event_time: float, size: float, period: float | None, allowed_lateness: float) -> float:
    """The watermark at which Beam would drop an element of this event time."""
    return first_window_end(event_time, size, period) + allowed_lateness


class _SplitLateFn(beam.DoFn):
    LATE = "late"

    def __init__(self, size: float, period: float | None, allowed_lateness: float,
                 clock: Callable[[], float], margin: float) -> None:
        self.size = size
        self.period = period
        self.allowed_lateness = allowed_lateness
        self.clock = clock
        self.margin = margin
        self.late = Metrics.counter("mediamon", "late")

    def process(self, article: Article) -> Iterator[Article | TaggedOutput]:
        due = deadline(to_epoch(article.published), self.size, self.period, self.allowed_lateness)
        if due <= self.clock() + self.margin:
            self.late.inc()
            log.info("late item %s (%s, published %s): its window closed; replay the archive "
                     "with `mediamon run` to count it", article.id, article.source, article.published)
            yield TaggedOutput(self.LATE, article)
        else:
            yield article


class SplitLate(beam.PTransform):
    """Article -> tagged `on_time` and `late` (counted in mediamon/late)."""

    ON_TIME = "on_time"
    LATE = _SplitLateFn.LATE

    def __init__(self, size: float, period: float | None, allowed_lateness: float,
                 clock: Callable[[], float] = time.time, margin: float = 30.0) -> None:
        super().__init__()
        self.fn = _SplitLateFn(size, period, allowed_lateness, clock, margin)

    def expand(self, articles: beam.PCollection) -> beam.pvalue.DoOutputsTuple:
        return cast("beam.pvalue.DoOutputsTuple", articles | "SplitLate" >> beam.ParDo(self.fn).with_outputs(self.LATE, main=self.ON_TIME))
