"""Stage 2, Deduplicate: Articles -> the first-seen Article per id (+ counted duplicates).

Batch (`Deduplicate()`): a combine per id keeps one article per id, chosen deterministically
(earliest fetch, then earliest publication, then source and url), and counts the others in
the metric `duplicates`.  Lifting the combine before the shuffle keeps it cheap.

Streaming (`Deduplicate(ttl_seconds=...)`): a stateful DoFn per id in the global window
remembers each id until `ttl` after the article's published time (event time), then
forgets it, so state does not grow without bound.  Later copies are counted duplicates.
Duplicates are expected discards: counted, never dead-lettered.
"""
from __future__ import annotations

from typing import Any, Iterator

import apache_beam as beam
from apache_beam.coders import BooleanCoder, Coder, NullableCoder, TupleCoder, VarIntCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.typehints import KV
from apache_beam.utils.timestamp import Timestamp

from transforms.records import Article, ArticleCoder
from transforms.timeutil import to_epoch

_DUPLICATES = Metrics.counter("mediamon", "duplicates")


def preference(article: Article) -> tuple[str, str, str, str]:
    """Which copy of a story wins: the earliest fetched, then published, then by name."""
    return (article.fetched, article.published, article.source, article.url)


class _KeepFirst(beam.CombineFn):
    """Accumulator: (best article so far, how many copies seen)."""

    def create_accumulator(self) -> tuple[Article | None, int]:
        return (None, 0)

    def add_input(self, acc: tuple[Article | None, int], article: Article) -> tuple[Article | None, int]:
        best, n = acc
        if best is None or preference(article) < preference(best):
            best = article
        return (best, n + 1)

    def merge_accumulators(self, accs: list[tuple[Article | None, int]]) -> tuple[Article | None, int]:
        best: Article | None = None
        total = 0
        for candidate, n in accs:
            total += n
            if candidate is not None and (best is None or preference(candidate) < preference(best)):
                best = candidate
        return (best, total)

    def extract_output(self, acc: tuple[Article | None, int]) -> tuple[Article | None, int]:
        return acc

    def get_accumulator_coder(self) -> Coder:
        return TupleCoder([NullableCoder(ArticleCoder()), VarIntCoder()])


def _emit(kept: tuple[str, tuple[Article | None, int]]) -> Iterator[Article]:
    _, (article, copies) = kept
    if copies > 1:
        _DUPLICATES.inc(copies - 1)
    if article is not None:
        yield article


class _ExpiringDedupFn(beam.DoFn):
    """Streaming: one flag per id, cleared by an event-time timer `ttl` after publication."""

    SEEN = ReadModifyWriteStateSpec("seen", BooleanCoder())
    EXPIRY = TimerSpec("expiry", TimeDomain.WATERMARK)

    def __init__(self, ttl_seconds: float) -> None:
        self.ttl = ttl_seconds

    def process(self, element: tuple[str, Article],
                seen: Any = beam.DoFn.StateParam(SEEN),
                expiry: Any = beam.DoFn.TimerParam(EXPIRY)) -> Iterator[Article]:
        _, article = element
        if seen.read():
            _DUPLICATES.inc()
            return
        seen.write(True)
        expiry.set(Timestamp(to_epoch(article.published) + self.ttl))
        yield article

    @on_timer(EXPIRY)
    def expire(self, seen: Any = beam.DoFn.StateParam(SEEN)) -> None:
        seen.clear()


class Deduplicate(beam.PTransform):
    """Article -> Article, one per id; duplicates counted in metric mediamon/duplicates."""

    def __init__(self, ttl_seconds: float | None = None) -> None:
        super().__init__()
        self.ttl = ttl_seconds

    def expand(self, articles: beam.PCollection) -> beam.PCollection:
        keyed = articles | "KeyById" >> beam.Map(lambda a: (a.id, a)).with_output_types(KV[str, Article])
        if self.ttl is None:
            return (keyed
                    | "KeepFirst" >> beam.CombinePerKey(_KeepFirst())
                    | "CountDuplicates" >> beam.FlatMap(_emit).with_output_types(Article))
        return keyed | "ExpiringDedup" >> beam.ParDo(_ExpiringDedupFn(self.ttl)).with_output_types(Article)
