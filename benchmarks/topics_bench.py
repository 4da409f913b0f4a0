"""Topic tagging speed against the number of topics (issue 3's scale target).

Run: `.venv/bin/python -m benchmarks.topics_bench [--articles N] [--topics 10,100,1000]`.

Generates a deterministic synthetic multilingual corpus (Arabic words with stacked proclitics,
Latin-script words with diacritics; Zipf-distributed vocabulary, a title and a summary per
article) and, for each topic count, as many generated topics mixing every operator (OR groups,
AND, AND NOT, phrases, wildcards, NEAR/n, title:, weighted rules) plus a few keywords. Reports
build time, articles/s of `Tagger.tag` (CPU time of the process, best of 3 passes, the topic
counts taking turns), topics tagged per article, and the process's peak
memory so far (getrusage). One untimed pass first fills the per-token folding caches, as
in a long-running worker. Target: the 1,000-topic rate at least half the 10-topic rate.

`--morphology on,off` runs every topic count with morphology on (the default for topics) and
off, and prints the cost ratio per article (issue 13's target: on within 1.5x of off).
`--pack CONFIG --labelled FILE` also times a real pack over real labelled items both ways.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import random
import resource
import time
from typing import Sequence

from transforms.topic_matcher import Tagger
from transforms.topic_rules import KeywordSpec, TopicSpec, VariantSpec, WeightSpec

ARABIC = "ابتثجحخدذرزسشصضطظعغفقكلمنهوي" + "ةأإى"
LATIN = "abcdefghijklmnoprstuvyzéèçşğüöîêû"
PROCLITICS = ("", "", "", "و", "ب", "ال", "وال", "بال", "لل", "فال")
VOCABULARY = 20_000


def _words(rng: random.Random, alphabet: str, count: int) -> list[str]:
    seen: dict[str, None] = {}
    while len(seen) < count:
        seen[("".join(rng.choice(alphabet) for _ in range(rng.randint(3, 9))))] = None
    return list(seen)


class Corpus:
    """Vocabularies and a Zipf sampler; articles and topics drawn from the same words."""

    def __init__(self, seed: int = 17) -> None:
        self.rng = random.Random(seed)
        self.arabic = _words(self.rng, ARABIC, VOCABULARY)
        self.latin = _words(self.rng, LATIN, VOCABULARY)
        self.weights = [1.0 / (rank + 1) for rank in range(VOCABULARY)]

    def sample(self, words: list[str], k: int) -> list[str]:
        return self.rng.choices(words, cum_weights=None, weights=self.weights, k=k)

    def article(self) -> tuple[str, str]:
        if self.rng.random() < 0.4:
            words = [self.rng.choice(PROCLITICS) + w for w in self.sample(self.arabic, 70)]
        else:
            words = self.sample(self.latin, 70)
            words = [w.capitalize() if self.rng.random() < 0.1 else w for w in words]
        return " ".join(words[:9]), ". ".join(" ".join(words[i:i + 12])
                                              for i in range(9, 70, 12))

    def term(self) -> str:
        """A topic term: a mid-frequency word, as named entities and event words are."""
        words = self.arabic if self.rng.random() < 0.4 else self.latin
        word = words[self.rng.randint(20, 3000)]
        if words is self.arabic and self.rng.random() < 0.3:
            return "ال" + word
        return word

    def topic(self, i: int) -> TopicSpec:
        t = [self.term() for _ in range(8)]
        kind = i % 5
        if kind == 0:
            query = f"({t[0]} OR {t[1]} OR {t[2]}) AND ({t[3]} OR {t[4]}*)"
        elif kind == 1:
            query = f'"{t[0]} {t[1]}" OR ({t[2]} NEAR/5 {t[3]})'
        elif kind == 2:
            query = f"({t[0]} OR {t[1]}) AND NOT {t[2]}"
        elif kind == 3:
            query = f"title:{t[0]} OR ({t[1]} {t[2]} {t[3]})"
        else:
            return TopicSpec(f"t{i}", f"T{i}", None,
                             (WeightSpec(f"{t[0]} OR {t[1]}", 3), WeightSpec(t[2], 2),
                              WeightSpec(f"{t[3]}*", 1), WeightSpec(t[4], -2)), 4)
        return TopicSpec(f"t{i}", f"T{i}", query)


def _with_morphology(topic: TopicSpec, on: bool) -> TopicSpec:
    """The topic with morphology on or off; as it is with code from before morphology
    (issue 13), so this script also times that code: `PYTHONPATH=<old checkout>`."""
    if "morphology" not in {f.name for f in dataclasses.fields(TopicSpec)}:
        return topic
    return dataclasses.replace(topic, morphology=on)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(articles: int, topic_counts: Sequence[int], morphology: bool = True) -> list[str]:
    corpus = Corpus()
    docs = [corpus.article() for _ in range(articles)]
    keywords = [KeywordSpec(f"k{i}", (corpus.term(), corpus.term())) for i in range(20)]
    variants = [VariantSpec((corpus.latin[100 + i], corpus.latin[5000 + i])) for i in range(20)]
    all_topics = [_with_morphology(corpus.topic(i), morphology)
                  for i in range(max(topic_counts))]
    lines = [f"{articles:,} synthetic articles (40% Arabic, ~70 tokens each), 20 keywords, "
             f"20 variant sets; one core; morphology {'on' if morphology else 'off'}",
             "", "| topics | build s | articles/s | tagged per article | peak RSS MB |",
             "|---:|---:|---:|---:|---:|"]
    rates = {}
    warm = Tagger(all_topics[:1], keywords, variants)
    for title, summary in docs:       # fill the folding caches once, as a long-lived worker has
        warm.tag(title, summary)
    taggers, built = {}, {}
    for count in topic_counts:
        start = time.perf_counter()
        taggers[count] = Tagger(all_topics[:count], keywords, variants)
        built[count] = time.perf_counter() - start
        for title, summary in docs[:2000]:   # this tagger's own per-token memo, warmed
            taggers[count].tag(title, summary)
    # CPU time, best of REPEATS; the topic counts take turns, so a busy spell of the shared
    # machine slows every count alike instead of one
    elapsed = dict.fromkeys(topic_counts, float("inf"))
    tagged = dict.fromkeys(topic_counts, 0)
    for _ in range(REPEATS):
        for count in topic_counts:
            tagger = taggers[count]
            start = time.process_time()
            found = 0
            for title, summary in docs:
                found += len(tagger.tag(title, summary).topics)
            elapsed[count] = min(elapsed[count], time.process_time() - start)
            tagged[count] = found
    for count in topic_counts:
        rates[count] = articles / elapsed[count]
        lines.append(f"| {count:,} | {built[count]:.2f} | {rates[count]:,.0f} | "
                     f"{tagged[count] / articles:.2f} | {peak_mb():.0f} |")
    lo, hi = min(topic_counts), max(topic_counts)
    lines.append("")
    lines.append(f"{hi:,}-topic rate / {lo:,}-topic rate = {rates[hi] / rates[lo]:.2f} "
                 f"(target >= 0.5)")
    RATES[morphology] = rates
    return lines


RATES: dict[bool, dict[int, float]] = {}
REPEATS = 3


def run_pack(config: str, labelled: str, rounds: int = 20) -> list[str]:
    """The pack over the labelled items, `rounds` times, morphology on and off."""
    from pipeline.config import load_config
    cfg = load_config(config)
    items = [json.loads(line) for line in pathlib.Path(labelled).read_text(encoding="utf-8")
             .splitlines() if line.strip()]
    docs = [(str(i.get("title") or ""), str(i.get("summary") or "")) for i in items]
    lines = ["", f"pack {config} over {len(docs)} labelled items x {rounds}",
             "| morphology | articles/s | topics per article |", "|---|---:|---:|"]
    rates = {}
    for on in (False, True):
        topics = [dataclasses.replace(t, morphology=on) for t in cfg.topics]
        tagger = Tagger(topics, cfg.keywords, cfg.variants)
        for title, summary in docs:
            tagger.tag(title, summary)
        start, tagged = time.process_time(), 0
        for _ in range(rounds):
            for title, summary in docs:
                tagged += len(tagger.tag(title, summary).topics)
        rates[on] = len(docs) * rounds / (time.process_time() - start)
        lines.append(f"| {'on' if on else 'off'} | {rates[on]:,.0f} | "
                     f"{tagged / len(docs) / rounds:.2f} |")
    lines.append(f"cost per article, on / off = {rates[False] / rates[True]:.2f} (target <= 1.5)")
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--articles", type=int, default=100_000,
                        help="number of synthetic articles (default 100000)")
    parser.add_argument("--topics", default="10,100,1000",
                        help="comma-separated topic counts (default 10,100,1000)")
    parser.add_argument("--morphology", default="on",
                        help="on, off or on,off (default on)")
    parser.add_argument("--pack", help="also time this topic config over --labelled items")
    parser.add_argument("--labelled", help="labelled JSONL for --pack")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.topics.split(",")]
    modes = [m.strip() == "on" for m in args.morphology.split(",")]
    for on in modes:
        print("\n".join(run(args.articles, counts, on)), end="\n\n")
    if len(RATES) == 2:
        for count in counts:
            print(f"{count:,} topics: cost per article, morphology on / off = "
                  f"{RATES[False][count] / RATES[True][count]:.2f} (target <= 1.5)")
    if args.pack:
        if not args.labelled:
            parser.error("--pack needs --labelled")
        print("\n".join(run_pack(args.pack, args.labelled)))


if __name__ == "__main__":
    main()
