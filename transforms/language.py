"""Stage 3, DetectLanguage: Article -> Article with `language` and `language_confidence`.

A thin wrapper: the detector (transforms/langid.py) is built once per worker in setup(),
never pickled in from the driver.  Detection never raises: text with no letters is `und`.
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence, cast

import apache_beam as beam

from transforms.deadletters import DEAD, dead_letter
from transforms.langid import LanguageDetector
from transforms.metrics import Counters
from transforms.records import Article

STAGE = "language"


def detection_text(article: Article) -> str:
    return f"{article.title}\n{article.summary}" if article.summary else article.title


class _DetectFn(beam.DoFn):
    def __init__(self, allowed: Sequence[str] | None, aliases: Mapping[str, str],
                 second_opinion: bool) -> None:
        self.allowed = tuple(allowed) if allowed else None
        self.aliases = dict(aliases)
        self.second_opinion = second_opinion
        self.detector: LanguageDetector | None = None
        self.by_language = Counters("by_language")

    def setup(self) -> None:
        self.detector = LanguageDetector(allowed=self.allowed, aliases=self.aliases,
                                         second_opinion=self.second_opinion)

    def process(self, article: Article) -> Iterator[Any]:
        assert self.detector is not None, "setup() builds the detector"
        try:
            code, confidence = self.detector.detect(detection_text(article), hint=article.language_hint)
        except Exception as exc:  # noqa: BLE001 - one article must not fail the job: dead letter
            yield dead_letter(STAGE, article, exc)
            return
        self.by_language.inc(code)
        yield article.replace(language=code, language_confidence=confidence)


class DetectLanguage(beam.PTransform):
    """Article -> Article with language set (ISO 639-1, or `und`): main output `articles`,
    tagged output `dead_letters` (an article the detector raised on)."""

    DEAD = DEAD

    def __init__(self, allowed: Sequence[str] | None = None, aliases: Mapping[str, str] | None = None,
                 second_opinion: bool = True) -> None:
        super().__init__()
        self.fn = _DetectFn(allowed, aliases or {}, second_opinion)

    def expand(self, articles: beam.PCollection) -> beam.pvalue.DoOutputsTuple:
        detect = beam.ParDo(self.fn).with_output_types(Article)
        return cast("beam.pvalue.DoOutputsTuple", articles | "Detect" >> detect.with_outputs(DEAD, main="articles"))
