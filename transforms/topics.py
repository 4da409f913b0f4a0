"""Stage 4, TagTopics: Article -> Article with `topics`, `keywords` and match evidence.

A thin wrapper around transforms/tagging.py: the Tagger (compiled queries and the
multi-pattern prefilter) is built once per worker in setup() from small picklable specs.
"""
from __future__ import annotations

from typing import Any, Iterator, Sequence, cast

import apache_beam as beam

from transforms.deadletters import DEAD, dead_letter
from transforms.metrics import Counters
from transforms.records import Article
from transforms.topic_matcher import Tagger

STAGE = "topics"


def tag_article(article: Article, tagger: Tagger) -> Article:
    """The article with its topics, keyword ids and mention counts, and evidence (pure)."""
    result = tagger.tag(article.title, article.summary)
    return article.replace(
        topics=result.topics,
        keywords=tuple(k for k, _ in result.keyword_mentions),
        keyword_mentions=result.keyword_mentions,
        evidence=result.evidence,
    )


class _TagFn(beam.DoFn):
    def __init__(self, topics: Sequence[Any], keywords: Sequence[Any], variants: Any) -> None:
        self.specs = (tuple(topics), tuple(keywords), variants)
        self.tagger: Tagger | None = None
        self.by_topic = Counters("by_topic")

    def setup(self) -> None:
        topics, keywords, variants = self.specs
        self.tagger = Tagger(topics, keywords, variants)

    def process(self, article: Article) -> Iterator[Any]:
        assert self.tagger is not None, "setup() builds the tagger"
        try:
            tagged = tag_article(article, self.tagger)
        except Exception as exc:  # noqa: BLE001 - one article must not fail the job: dead letter
            yield dead_letter(STAGE, article, exc)
            return
        for topic in tagged.topics:
            self.by_topic.inc(topic)
        yield tagged


class TagTopics(beam.PTransform):
    """Article -> Article with topic ids, keyword ids (+ mention counts) and evidence: main
    output `articles`, tagged output `dead_letters` (an article the tagger raised on)."""

    DEAD = DEAD

    def __init__(self, topics: Sequence[Any], keywords: Sequence[Any], variants: Any = None) -> None:
        super().__init__()
        self.fn = _TagFn(topics, keywords, variants)

    def expand(self, articles: beam.PCollection) -> beam.pvalue.DoOutputsTuple:
        tag = beam.ParDo(self.fn).with_output_types(Article)
        return cast("beam.pvalue.DoOutputsTuple", articles | "Tag" >> tag.with_outputs(DEAD, main="articles"))
