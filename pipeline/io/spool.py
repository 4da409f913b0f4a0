"""Spool files: how a stream micro-batch goes into its pipeline and comes back out.

In:  `write_spool` writes the batch's messages (RawItem, length-prefixed) to one file;
     `ReadSpool` is the pipeline's source (pickling them into a Create costs seconds per
     thousand items).
Out: `SpoolOutputs` is the pipeline's sink: the stages' articles and dead letters of the
     batch, gathered under one key and written by one DoFn call to one file (a retried
     bundle rewrites the same file); `read_outputs` gives them back to the driver, which
     commits them to the state store in one transaction (pipeline/store/streamstate.py) and
     only then acknowledges the messages.

The commit happens in the driver, not in a DoFn, because the store's story memory (the
signatures of one horizon, pipeline/store/articles.py) lives as long as the job: reloading
it in every micro-batch would cost more with every article stored.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Iterable, Iterator, Sequence, cast

import apache_beam as beam
from apache_beam.typehints import KV

from transforms.records import Article, ArticleCoder, DeadLetter, DeadLetterCoder, RawItem, RawItemCoder

_LENGTH = struct.Struct(">I")
_ARTICLE, _DEAD = b"a", b"d"


def _write_records(path: Path, records: Iterable[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as fh:
        for data in records:
            fh.write(_LENGTH.pack(len(data)))
            fh.write(data)
    os.replace(partial, path)


def _read_records(path: str | Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while header := fh.read(_LENGTH.size):
            (size,) = _LENGTH.unpack(header)
            yield fh.read(size)


def write_spool(path: Path, raws: Sequence[RawItem]) -> None:
    """A micro-batch's messages as one file of length-prefixed RawItems (what the pipeline reads)."""
    coder = RawItemCoder()
    _write_records(path, (coder.encode(raw) for raw in raws))


def _read_spool(path: str) -> Iterator[RawItem]:
    coder = RawItemCoder()
    return (coder.decode(data) for data in _read_records(path))


class ReadSpool(beam.PTransform):
    """PBegin -> RawItem: the messages of one micro-batch, from its spool file."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = str(path)

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        # an impulse and one DoFn (Create would add two more, each inspected on every run)
        path = self.path
        return cast("beam.PCollection", pbegin | "Start" >> beam.Impulse()
                    | "Read" >> beam.FlatMap(lambda _: _read_spool(path)).with_output_types(RawItem))


class _WriteOutputsFn(beam.DoFn):
    def __init__(self, path: str) -> None:
        self.path = path

    def process(self, element: tuple[str, Iterable[bytes]]) -> Iterator[int]:
        _, records = element
        written = list(records)
        _write_records(Path(self.path), written)
        yield len(written)


class SpoolOutputs(beam.PTransform):
    """(articles, dead_letters) of one micro-batch -> one file for the driver (`read_outputs`).
    The file appears only once complete (written aside, then renamed); with no records at all
    there is no file, which `read_outputs` reads as nothing."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = str(path)

    def expand(self, pcolls: tuple[beam.PCollection, beam.PCollection]) -> beam.PCollection:
        articles, dead_letters = pcolls
        article_coder, dead_coder = ArticleCoder(), DeadLetterCoder()

        def article(record: Article) -> tuple[str, bytes]:
            return "", _ARTICLE + article_coder.encode(record)

        def dead(record: DeadLetter) -> tuple[str, bytes]:
            return "", _DEAD + dead_coder.encode(record)

        # each kind is encoded before the flatten: the runner materialises a flatten of
        # PCollections from different fused stages with the flatten's coder, and that of
        # Article | DeadLetter is pickle (every article was pickled and unpickled there:
        # about 7% of a micro-batch's CPU); typed, so the shuffle's coders are str and bytes
        return cast("beam.PCollection", (
                    articles | "EncodeArticles" >> beam.Map(article).with_output_types(KV[str, bytes]),
                    dead_letters | "EncodeDeadLetters" >> beam.Map(dead).with_output_types(KV[str, bytes]))
                    | "Together" >> beam.Flatten().with_output_types(KV[str, bytes])
                    | "OneBatch" >> beam.GroupByKey()
                    | "WriteOutputs" >> beam.ParDo(_WriteOutputsFn(self.path)))


def read_outputs(path: Path) -> tuple[list[Article], list[DeadLetter]]:
    """What `SpoolOutputs` wrote: the batch's articles and dead letters."""
    if not path.exists():
        return [], []
    article_coder, dead_coder = ArticleCoder(), DeadLetterCoder()
    articles: list[Article] = []
    dead: list[DeadLetter] = []
    for data in _read_records(path):
        if data[:1] == _ARTICLE:
            articles.append(article_coder.decode(data[1:]))
        else:
            dead.append(dead_coder.decode(data[1:]))
    return articles, dead


