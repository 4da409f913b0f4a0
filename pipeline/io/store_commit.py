"""CommitBatch: the last step of a stream micro-batch: articles + dead letters -> the state store.

Input:  the stages' articles (Article) and dead letters (DeadLetter) of ONE micro-batch.
Output: one BatchOutcome dict (what was new, duplicate, dead, late); the store holds the batch.

Everything meets under one key (a micro-batch is small: at most a few thousand records), so
one DoFn call commits the whole batch in one SQLite transaction (pipeline/store/streamstate.py).
The driver acknowledges the batch's messages only after the pipeline has finished and the
store says the batch is committed. A retried bundle commits nothing twice (batch id + article
ids). Items whose window closed (window end + allowed lateness before now) are counted `late`
and not stored, the rule `SplitLate` applies in the Beam streaming graph.
"""
from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence, cast

import apache_beam as beam

from pipeline.store.streamstate import StreamStore
from transforms.late import deadline
from transforms.stories import StoryOptions
from transforms.records import Article, ArticleCoder, DeadLetter, RawItem, RawItemCoder
from transforms.timeutil import to_epoch


_LENGTH = struct.Struct(">I")


def write_spool(path: Path, raws: Sequence[RawItem]) -> None:
    """A micro-batch's messages as one file of length-prefixed RawItems (what the pipeline reads:
    pickling them into a Create costs seconds per thousand items)."""
    coder = RawItemCoder()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        for raw in raws:
            data = coder.encode(raw)
            fh.write(_LENGTH.pack(len(data)))
            fh.write(data)


def _read_spool(path: str) -> Iterator[RawItem]:
    coder = RawItemCoder()
    with open(path, "rb") as fh:
        while header := fh.read(_LENGTH.size):
            (size,) = _LENGTH.unpack(header)
            yield coder.decode(fh.read(size))


class ReadSpool(beam.PTransform):
    """PBegin -> RawItem: the messages of one micro-batch, from its spool file."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = str(path)

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        return cast("beam.PCollection", pbegin | "SpoolFile" >> beam.Create([self.path], reshuffle=False)
                    | "Read" >> beam.FlatMap(_read_spool).with_output_types(RawItem))


class _CommitFn(beam.DoFn):
    def __init__(self, path: str, batch: str, messages: int, size: float, period: float | None,
                 allowed_lateness: float, stories: StoryOptions | None = None) -> None:
        self.stories = stories
        self.path = path
        self.batch = batch
        self.messages = messages
        self.size, self.period, self.lateness = size, period, allowed_lateness
        self.coder = ArticleCoder()

    def process(self, element: tuple[None, Iterable[tuple[str, Any]]]) -> Iterator[dict[str, int]]:
        _, records = element
        articles: list[Article] = []
        late: list[Article] = []
        dead: list[DeadLetter] = []
        now = time.time()
        for kind, value in records:
            if kind == "d":
                dead.append(value)
                continue
            article = self.coder.decode(value)
            due = deadline(to_epoch(article.published), self.size, self.period, self.lateness)
            (late if due <= now else articles).append(article)
        store = StreamStore(Path(self.path), self.size, self.period)
        try:
            outcome = store.commit_batch(self.batch, self.messages, articles, dead, late, self.stories)
        finally:
            store.close()
        yield dict(outcome)


class CommitBatch(beam.PTransform):
    """(articles, dead_letters) of one micro-batch -> committed to the store; yields its outcome."""

    def __init__(self, path: Path, batch: str, messages: int, size: float, period: float | None,
                 allowed_lateness: float, stories: StoryOptions | None = None) -> None:
        super().__init__()
        self.fn = _CommitFn(str(path), batch, messages, size, period, allowed_lateness, stories)

    def expand(self, pcolls: tuple[beam.PCollection, beam.PCollection]) -> beam.PCollection:
        articles, dead = pcolls
        coder = ArticleCoder()
        tagged_articles = articles | "TagArticles" >> beam.Map(lambda a: (None, ("a", coder.encode(a))))
        tagged_dead = dead | "TagDead" >> beam.Map(lambda d: (None, ("d", d)))
        return cast("beam.PCollection", (tagged_articles, tagged_dead)
                | "Together" >> beam.Flatten()
                | "OneBatch" >> beam.GroupByKey()
                | "Commit" >> beam.ParDo(self.fn))
