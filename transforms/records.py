"""Typed records passed between the pipeline's stages.

Every stage boundary carries one of these frozen dataclasses.  `to_json()` gives the
record exactly as the contract (docs/CONTRACT in the README) writes it; internal-only
fields (guid, hints, mention counts) stay out of the written form.
"""
from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass
from typing import Any, cast

from apache_beam import coders as beam_coders

RAW_LIMIT = 4096  # bytes of the offending input kept in a dead letter
# One item (a JSONL line, a message, a feed entry's text) larger than this is a dead letter: a
# 20 MB summary would cost gigabytes on its way through HTML stripping, language detection and
# tagging. Real items are a few KiB; a whole feed document has its own cap (`fetch.max_bytes`).
MAX_ITEM_BYTES = 1 << 20


@dataclass(frozen=True)
class FeedDocument:
    """One fetched (or read) feed body, not yet parsed."""

    source: str                    # feed name from the config (host or file name by default)
    url: str                       # URL or path it came from (after redirects)
    body: bytes
    fetched: str                   # ISO-8601 UTC
    content_type: str = ""         # HTTP Content-Type header, for the charset
    language_hint: str | None = None


@dataclass(frozen=True)
class RawItem:
    """One item in JSON form, not yet parsed: a JSONL line or a Pub/Sub message."""

    source: str                    # file path or subscription it was read from
    data: bytes
    fetched: str                   # ISO-8601 UTC (read time)
    attributes: tuple[tuple[str, str], ...] = ()
    language_hint: str | None = None


@dataclass(frozen=True)
class Article:
    """A news item from parse onwards; later stages fill language, topics, keywords."""

    id: str
    url: str
    title: str
    summary: str
    source: str
    published: str                 # ISO-8601 UTC; falls back to `fetched`
    fetched: str
    language: str = "und"
    language_confidence: float = 0.0
    topics: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    # internal fields, not part of the written article record
    guid: str = ""
    language_hint: str | None = None
    keyword_mentions: tuple[tuple[str, int], ...] = ()   # keyword id -> occurrences
    evidence: tuple[tuple[str, tuple[tuple[str, tuple[str, ...]], ...]], ...] = ()
    # evidence: ((topic id, ((term, (surface forms seen, ...)), ...)), ...)
    story: str = ""                # id of the story's first-seen article ("" before GroupStories)
    story_size: int = 0            # articles of the story known so far (0: unknown)

    def replace(self, **changes: Any) -> "Article":
        """`dataclasses.replace`, without the frozen __init__ (one object.__setattr__ per field:
        6 us an article, and every stage replaces each article once)."""
        unknown = changes.keys() - _ARTICLE_FIELD_SET
        if unknown:
            raise TypeError(f"Article has no field {sorted(unknown)[0]!r}")
        return cast("Article", _assembled(Article, {**self.__dict__, **changes}))

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "id": self.id,
            "url": self.url,
            "title": self.title,
            "summary": self.summary,
            "source": self.source,
            "published": self.published,
            "fetched": self.fetched,
            "language": self.language,
            "language_confidence": round(self.language_confidence, 4),
            "topics": list(self.topics),
            "keywords": list(self.keywords),
            "story": self.story or self.id,
        }
        if self.story_size:
            record["story_size"] = self.story_size
        if self.evidence:
            record["evidence"] = {
                topic: {term: list(forms) for term, forms in terms}
                for topic, terms in self.evidence
            }
        return record


def _assembled(cls: type, values: dict[str, Any]) -> Any:
    """A record of dataclass `cls` from a value for every field (its own or another record's),
    as its __init__ would make it, but without setting the frozen fields one by one."""
    record: Any = object.__new__(cls)
    record.__dict__.update(values)
    return record


def article_to_state(article: Article) -> dict[str, Any]:
    """Every field, internal ones included, as JSON-able data (for the run store): tuples stay
    tuples (json writes them as lists); shallow, because asdict's deep copy is slow."""
    return {name: getattr(article, name) for name in _ARTICLE_FIELDS}


_ARTICLE_FIELDS = tuple(f.name for f in dataclasses.fields(Article))
_ARTICLE_FIELD_SET = frozenset(_ARTICLE_FIELDS)


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def article_from_state(data: dict[str, Any]) -> Article:
    fields = _ARTICLE_FIELD_SET
    return Article(**{k: _tuples(v) if v.__class__ is list else v for k, v in data.items() if k in fields})


@dataclass(frozen=True)
class KeywordCount:
    window_start: str
    window_end: str
    keyword: str
    language: str
    articles: int
    mentions: int
    stories: int = 0               # distinct stories among those articles

    def to_json(self) -> dict[str, Any]:
        return {"window_start": self.window_start, "window_end": self.window_end, "keyword": self.keyword,
                "language": self.language, "articles": self.articles, "stories": self.stories,
                "mentions": self.mentions}


@dataclass(frozen=True)
class TopicCount:
    window_start: str
    window_end: str
    topic: str
    language: str
    articles: int
    stories: int = 0               # distinct stories among those articles

    def to_json(self) -> dict[str, Any]:
        return {"window_start": self.window_start, "window_end": self.window_end, "topic": self.topic,
                "language": self.language, "articles": self.articles, "stories": self.stories}


@dataclass(frozen=True)
class StoryRecord:
    """One story in one window (`what: stories`): its articles in that window."""

    window_start: str
    window_end: str
    story: str                     # id of the story's first-seen article
    headline: str                  # title of the story's first article in the window
    url: str                       # its url
    outlets: tuple[str, ...]       # distinct sources, sorted
    languages: tuple[str, ...]
    size: int                      # articles of the story in the window
    first_seen: str                # earliest / latest published time in the window
    last_seen: str
    topics: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        for key in ("outlets", "languages", "topics"):
            record[key] = list(record[key])
        return record


@dataclass(frozen=True)
class Alert:
    topic: str
    window_start: str
    window_end: str
    count: int
    baseline: float
    score: float
    rule: str
    articles: tuple[str, ...]
    at: str

    def to_json(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        record["articles"] = list(self.articles)
        return record


@dataclass(frozen=True)
class DeadLetter:
    """Anything that could not become an article, with the reason and the input."""

    stage: str
    error: str
    source: str
    raw: str
    at: str

    @staticmethod
    def of(stage: str, error: str, source: str, raw: bytes | str, at: str) -> "DeadLetter":
        if isinstance(raw, bytes):
            raw = raw[:RAW_LIMIT].decode("utf-8", errors="replace")
        else:  # backslashreplace: a lone surrogate in the input must not make the letter unwritable
            raw = raw.encode("utf-8", "backslashreplace")[:RAW_LIMIT].decode("utf-8", errors="ignore")
        return DeadLetter(stage=stage, error=_text(error), source=_text(source), raw=raw, at=_text(at))

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _text(value: str) -> str:
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


# Natural keys: what makes two records "the same row" in a sink (upsert in SQLite).
NATURAL_KEYS: dict[str, tuple[str, ...]] = {
    "articles": ("id",),
    "counts": ("window_start", "window_end", "keyword", "language"),
    "topics": ("window_start", "window_end", "topic", "language"),
    "alerts": ("topic", "window_start", "window_end", "rule"),
    "dead_letters": ("stage", "source", "raw", "error"),
    "stories": ("window_start", "window_end", "story"),
}

RECORD_FIELDS: dict[str, tuple[str, ...]] = {
    "articles": ("id", "url", "title", "summary", "source", "published", "fetched", "language",
                 "language_confidence", "topics", "keywords", "story", "story_size"),
    # CSV columns and SQLite columns: `stories` last, so positional CSV readers keep working
    "counts": ("window_start", "window_end", "keyword", "language", "articles", "mentions", "stories"),
    "topics": ("window_start", "window_end", "topic", "language", "articles", "stories"),
    "alerts": tuple(f.name for f in dataclasses.fields(Alert)),
    "dead_letters": tuple(f.name for f in dataclasses.fields(DeadLetter)),
    "stories": tuple(f.name for f in dataclasses.fields(StoryRecord)),
}


# ---------------------------------------------------------------- coders
# Records cross shuffles and process boundaries by the million: encode each as the tuple of its
# field values with Beam's fast primitives coder (deterministic, about 3x faster and 20% smaller
# than pickling the dataclass), instead of the pickling fallback.

class _RecordCoder(beam_coders.Coder):
    """A record dataclass <-> the tuple of its field values, in field order."""

    record: type = object

    def __init__(self) -> None:
        self._names = tuple(f.name for f in dataclasses.fields(self.record))
        self._values = operator.attrgetter(*self._names)
        self._tuple = beam_coders.FastPrimitivesCoder().get_impl()

    def encode(self, value: Any) -> bytes:
        return cast("bytes", self._tuple.encode(self._values(value)))

    def decode(self, encoded: bytes) -> Any:
        values = self._tuple.decode(encoded)
        if len(values) != len(self._names):      # not written by this version: let __init__ say so
            return self.record(*values)
        return _assembled(self.record, dict(zip(self._names, values)))

    def is_deterministic(self) -> bool:
        return True

    def to_type_hint(self) -> Any:
        return self.record

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))


class ArticleCoder(_RecordCoder):
    record = Article


class RawItemCoder(_RecordCoder):
    record = RawItem


class DeadLetterCoder(_RecordCoder):
    record = DeadLetter


class KeywordCountCoder(_RecordCoder):
    record = KeywordCount


class TopicCountCoder(_RecordCoder):
    record = TopicCount


class StoryRecordCoder(_RecordCoder):
    record = StoryRecord


for _coder in (ArticleCoder, RawItemCoder, DeadLetterCoder, KeywordCountCoder, TopicCountCoder,
               StoryRecordCoder):
    beam_coders.registry.register_coder(_coder.record, _coder)
