"""Instructions per article of `Tagger.tag`, independent of the machine's load.

CPU time on a shared 2-core machine moves by 30-50% between runs (caches and hyperthreads are
shared); instruction counts do not. `benchmarks/topics_ir.sh CODE_DIR on|off TOPICS` runs this
script under valgrind's callgrind once with one timed pass and once without, and prints the
difference per article. Same synthetic corpus and topics as `topics_bench` (300 articles, tagger
warmed on them first). CODE_DIR can be another checkout (e.g. the code before issue 13): the
script only uses what both have.

Direct use: `python benchmarks/topics_ir.py on|off TOPICS PASSES` (with PYTHONPATH=CODE_DIR).
"""
from __future__ import annotations

import dataclasses
import sys

from benchmarks.topics_bench import Corpus
from transforms.topic_matcher import Tagger
from transforms.topic_rules import KeywordSpec, TopicSpec, VariantSpec

ARTICLES = 300


def main(argv: list[str]) -> None:
    on, count, passes = argv[0] == "on", int(argv[1]), int(argv[2])
    corpus = Corpus()
    docs = [corpus.article() for _ in range(ARTICLES)]
    keywords = [KeywordSpec(f"k{i}", (corpus.term(), corpus.term())) for i in range(20)]
    variants = [VariantSpec((corpus.latin[100 + i], corpus.latin[5000 + i])) for i in range(20)]
    has = "morphology" in {f.name for f in dataclasses.fields(TopicSpec)}
    topics = [dataclasses.replace(corpus.topic(i), morphology=on) if has else corpus.topic(i)
              for i in range(count)]
    tagger = Tagger(topics, keywords, variants)
    for title, summary in docs:
        tagger.tag(title, summary)
    for _ in range(passes):
        for title, summary in docs:
            tagger.tag(title, summary)


if __name__ == "__main__":
    main(sys.argv[1:])
