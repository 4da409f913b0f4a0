"""The Tagger's prefilter (necessary groups, prefix marks) never changes a result: the same
tags, evidence and keyword counts as evaluating every topic on every article, on random
topics mixing every operator and on the Syria pack over the real labelled dev set."""
from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest

from transforms.query import Document, parse_query
from transforms.topic_matcher import Tagger
from transforms.topic_rules import KeywordSpec, TopicSpec, VariantSpec, WeightSpec, \
    variants_table

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared" / "corpus" / "topics-dev" / "labelled.jsonl"
PACK = ROOT / "configs" / "topics" / "syria-2017.yaml"

# words with inflected forms, proclitics and look-alikes (ورقة is not الرقة), several scripts
WORDS = ["offensive", "offensives", "advance", "advancing", "advanced", "battle", "battles",
         "Raqqa", "Rakka", "Reqa", "siege", "sieges", "siège", "assiégé", "libération",
         "kuşatma", "kuşatması", "ilerliyor", "ilerledi", "Efrîn", "Efrînê", "Afrin",
         "الرقة", "والرقة", "بالرقة", "ورقة", "رقة", "هجوم", "الهجوم", "بالهجوم", "هجومها",
         "تقدم", "تقدمت", "يتقدم", "حصار", "حصاراً", "نزوح", "نزوحهم", "عفرين", "ئەفرین",
         "Deir", "ez", "Zor", "coalition", "strike", "strikes", "air", "football", "ISIS"]
TERMS = ["offensive", "advance", "battle", "Raqqa", "siege", "libération", "kuşatma",
         "ilerle*", "Efrîn", "الرقة", "هجوم", "تقدم", "حصار", "نزوح", "عفرين", "ورقة",
         "strike*", "football", "=ISIS", "coalition", "Deir ez-Zor", "offens*", "هجوم*"]
VARIANTS = [VariantSpec(("Raqqa", "Rakka", "Reqa", "الرقة")),
            VariantSpec(("Afrin", "Efrîn", "عفرين", "ئەفرین")),
            VariantSpec(("Deir ez-Zor", "Deir Zor"))]


def _term(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.15:
        return f'"{rng.choice(WORDS)} {rng.choice(WORDS)}"'
    term = rng.choice(TERMS)
    if kind < 0.25:
        return f'title:"{term.lstrip("=")}"' if " " in term else "title:" + term.lstrip("=")
    return f'"{term}"' if " " in term else term


def _query(rng: random.Random, depth: int = 0) -> str:
    if depth >= 2 or rng.random() < 0.3:
        return _term(rng)
    kind = rng.random()
    left, right = _query(rng, depth + 1), _query(rng, depth + 1)
    if kind < 0.35:
        return f"({left} OR {right})"
    if kind < 0.7:
        return f"({left} AND {right})"
    if kind < 0.85:
        return f"({left} AND NOT {right})"
    return f"({_term(rng)} NEAR/{rng.randint(1, 5)} ({_term(rng)} OR {_term(rng)}))"


def _topic(rng: random.Random, i: int) -> TopicSpec:
    morphology = rng.random() < 0.7
    if rng.random() < 0.5:
        return TopicSpec(f"t{i}", f"T{i}", _query(rng), morphology=morphology)
    weights = tuple(WeightSpec(_query(rng, 1), rng.choice((1, 1.5, 2, 3, -1, -2)))
                    for _ in range(rng.randint(1, 5)))
    positive = sum(w.weight for w in weights if w.weight > 0)
    if positive == 0:
        weights += (WeightSpec(_term(rng), 2),)
        positive = 2
    threshold = rng.uniform(0.5, positive)
    gate = _query(rng) if rng.random() < 0.2 else None
    return TopicSpec(f"t{i}", f"T{i}", gate, weights, threshold, morphology=morphology)


def _text(rng: random.Random, low: int, high: int) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(low, high))]
    return " ".join(w + rng.choice(("", "", "", ",", ".", " -")) for w in words)


class _Oracle:
    """A topic's rule read literally: gate and weights parsed alone and evaluated on a
    Document of their own (no Tagger, no prefilter)."""

    def __init__(self, topic: TopicSpec) -> None:
        table = variants_table(VARIANTS)
        self.topic = topic
        self.gate = parse_query(topic.query, table, topic.morphology) if topic.query else None
        self.rules = [(parse_query(w.term, table, topic.morphology), w.weight)
                      for w in topic.weights]

    def matches(self, title: str, summary: str) -> bool:
        doc = Document(title, summary, morphology=self.topic.morphology)
        if self.gate is not None and not self.gate.matches(doc):
            return False
        if not self.rules:
            return True
        score = sum(weight for rule, weight in self.rules if rule.matches(doc))
        return score >= (self.topic.threshold or 0.0)


@pytest.mark.parametrize("seed", range(6))
def test_prefilter_gives_the_same_results_as_evaluating_every_topic(seed: int) -> None:
    rng = random.Random(seed)
    topics = [_topic(rng, i) for i in range(80)]
    keywords = [KeywordSpec(f"k{i}", (rng.choice(TERMS).lstrip("="), rng.choice(WORDS)))
                for i in range(6)]
    fast = Tagger(topics, keywords, VARIANTS)
    every = Tagger(topics, keywords, VARIANTS, prefilter=False)
    oracles = [_Oracle(t) for t in topics]
    tagged = pruned = 0
    for _ in range(150):
        title, summary = _text(rng, 2, 6), _text(rng, 0, 14)
        result = fast.tag(title, summary)
        assert result == every.tag(title, summary), (title, summary)
        expected = tuple(sorted(o.topic.id for o in oracles if o.matches(title, summary)))
        assert result.topics == expected, (title, summary)
        tagged += len(result.topics)
        pruned += len(topics) - len(fast.candidates(fast.document(title, summary))[0])
    assert tagged > 50                    # the comparison is not vacuous...
    assert pruned > 150 * len(topics) // 2   # ...and the prefilter does skip most topics


def test_prefilter_keeps_prefix_and_phrase_conditions() -> None:
    topics = [TopicSpec("p", "P", "(offens* OR \"air strike\") AND هجوم*"),
              TopicSpec("w", "W", None, (WeightSpec("Raqqa", 3), WeightSpec("battle*", 1),
                                         WeightSpec("siege", 1)), 4)]
    tagger = Tagger(topics)
    assert tagger.tag("Offensives", "هجومها").topics == ("p",)
    assert tagger.tag("an air strike", "والهجومات").topics == ("p",)
    assert tagger.tag("air and strike", "هجومها").topics == ()
    assert tagger.tag("Rakka", "battles").topics == ()          # Raqqa is needed, by itself
    assert tagger.tag("Raqqa", "battlefield").topics == ("w",)
    assert tagger.tag("Raqqa", "nothing else").topics == ()


@pytest.mark.skipif(not DEV.exists() or not PACK.exists(), reason=f"dev set absent: {DEV}")
@pytest.mark.parametrize("morphology", [True, False])
def test_pack_over_the_dev_set_is_the_same_with_and_without_prefilter(morphology: bool) -> None:
    from pipeline.config import load_config
    cfg = load_config(str(PACK))
    topics = [dataclasses.replace(t, morphology=morphology) for t in cfg.topics]
    fast = Tagger(topics, cfg.keywords, cfg.variants)
    every = Tagger(topics, cfg.keywords, cfg.variants, prefilter=False)
    items = [json.loads(line) for line in DEV.read_text(encoding="utf-8").splitlines()
             if line.strip()]
    assert len(items) > 400
    tagged = 0
    for item in items:
        title, summary = str(item.get("title") or ""), str(item.get("summary") or "")
        result = fast.tag(title, summary)
        assert result == every.tag(title, summary), title
        tagged += len(result.topics)
    assert tagged > 300


def test_every_word_of_a_ligature_is_found_by_a_morphology_tagger() -> None:
    # ﷺ stands for four words sharing one surface form; each keeps its own keys
    tagger = Tagger([TopicSpec("a", "A", "عليه"), TopicSpec("b", "B", "وسلم AND محمد")])
    assert tagger.tag("", "محمد ﷺ").topics == ("a", "b")
    assert tagger.tag("", "محمد ﷺ").topics == ("a", "b")      # and again, from the memo
