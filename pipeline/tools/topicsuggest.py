"""`mediamon topics suggest`: what to change in a topic's rules, from a labelled file.

For each topic (or the one asked for), from the items it misses and the items it wrongly tags:

* words and two-word phrases frequent in the missed items and rare in the rest, per language,
  as the matcher sees them (folded, proclitics stripped, and stemmed: `~stem` keys are what a
  term with morphology matches): count in misses, count in the items that are not the
  topic's, and a query term to try;
* the rule terms behind false hits: each positive term of the topic's rules with how many
  false hits it matched (and how many true hits), so a term that mostly brings noise stands
  out; and for the false hits, words common there and rare in the true hits (candidates for a
  NOT or a negative weight).
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Sequence

from pipeline.tools.topictest import LabelledItem
from transforms.morphology import STEM_MARK, stem_keys
from transforms.textnorm import lookup_keys, tokenize
from transforms.topic_matcher import Tagger
from transforms.topic_rules import TopicSpec

MIN_COUNT = 2
_STOP = frozenset("""the a an of in on at to for and or by with from as is are was were be has have
had it its that this de la le les des du et en un une au aux sur par pour dans est qui que ve ile
bir bu da de için ve ku li ji bi di ya ye ne لە و بۆ کە في من على الى إلى عن مع ان أن التي الذي""".split())


def _keys(item: LabelledItem) -> set[str]:
    """The words (surface-folded), their stems and adjacent word pairs of an item."""
    out: set[str] = set()
    for text in (item.example.title, item.example.summary):
        tokens = tokenize(text)
        words = [t.folded for t in tokens]
        for token in tokens:
            w = token.folded
            if w in _STOP or len(w) < 3 or w.isdigit():
                continue
            keys = lookup_keys(w)
            base = keys[-1] if len(keys) > 1 else w
            out.add(base)
            for key in stem_keys(w, token.surface):    # one entry per distinct stem
                stem = key[len(STEM_MARK):]
                stem = stem.split(":", 1)[1] if stem[1:2] == ":" else stem
                if stem not in (w, base) and STEM_MARK + stem not in (w, base):
                    out.add(STEM_MARK + stem)
        for a, b in zip(words, words[1:]):
            if a not in _STOP and b not in _STOP:
                out.add(f'"{a} {b}"')
    return out


def _display(key: str) -> str:
    return key[len(STEM_MARK):] + " (stem)" if key.startswith(STEM_MARK) else key


def _contrast(focus: Iterable[LabelledItem], rest: Iterable[LabelledItem],
              top: int) -> list[dict[str, Any]]:
    focus_list, rest_list = list(focus), list(rest)
    hits: Counter[str] = Counter(k for item in focus_list for k in _keys(item))
    background: Counter[str] = Counter(k for item in rest_list for k in _keys(item))
    scored = [(n / len(focus_list) - background[k] / max(1, len(rest_list)), n, k)
              for k, n in hits.items() if n >= MIN_COUNT]
    scored.sort(key=lambda s: (-s[0], -s[1], s[2]))
    return [{"term": _display(k), "in": n, "of": len(focus_list), "elsewhere": background[k],
             "of_elsewhere": len(rest_list)} for _, n, k in scored[:top]]


def suggest(tagger: Tagger, topics: Sequence[TopicSpec], items: Sequence[LabelledItem],
            topic: str | None = None, top: int = 15) -> dict[str, Any]:
    """{topic id: {misses, false_hits, add (per language), noisy_terms, exclude}}."""
    results = [(item, tagger.tag(item.example.title, item.example.summary)) for item in items]
    out: dict[str, Any] = {}
    for spec in topics:
        if topic is not None and spec.id != topic:
            continue
        misses = [i for i, r in results if spec.id in i.topics and spec.id not in r.topics]
        false_hits = [(i, r) for i, r in results if spec.id not in i.topics and spec.id in r.topics]
        true_hits = [(i, r) for i, r in results if spec.id in i.topics and spec.id in r.topics]
        negatives = [i for i, _ in results if spec.id not in i.topics]
        add: dict[str, list[dict[str, Any]]] = {}
        for lang in sorted({i.language for i in misses}):
            add[lang] = _contrast([i for i in misses if i.language == lang],
                                  [i for i in negatives if i.language == lang], top)
        terms: Counter[str] = Counter()
        good: Counter[str] = Counter()
        for counter, group in ((terms, false_hits), (good, true_hits)):
            for _, result in group:
                for tid, evidence in result.evidence:
                    if tid == spec.id:
                        counter.update(term for term, _ in evidence)
        noisy = [{"term": t, "false_hits": n, "true_hits": good[t]}
                 for t, n in terms.most_common(top)]
        exclude = _contrast([i for i, _ in false_hits], [i for i, _ in true_hits], top) \
            if false_hits else []
        out[spec.id] = {"misses": len(misses), "false_hits": len(false_hits),
                        "true_hits": len(true_hits), "add": add, "noisy_terms": noisy,
                        "exclude": exclude}
    return out


def render_suggestions(found: dict[str, Any]) -> str:
    lines: list[str] = []
    for topic_id, s in found.items():
        lines.append(f"== {topic_id}: {s['misses']} missed, {s['false_hits']} false hits, "
                     f"{s['true_hits']} found")
        for lang, rows in s["add"].items():
            if rows:
                lines.append(f"  words to add [{lang}] (in misses / in the rest of {lang}):")
                lines.extend(f"    {r['term']:<32} {r['in']}/{r['of']}  "
                             f"{r['elsewhere']}/{r['of_elsewhere']}" for r in rows)
        if s["noisy_terms"]:
            lines.append("  rule terms behind false hits (false hits, true hits):")
            lines.extend(f"    {r['term']:<32} {r['false_hits']}  {r['true_hits']}"
                         for r in s["noisy_terms"])
        if s["exclude"]:
            lines.append("  words common in false hits, rare in true hits (for NOT / a "
                         "negative weight):")
            lines.extend(f"    {r['term']:<32} {r['in']}/{r['of']}  "
                         f"{r['elsewhere']}/{r['of_elsewhere']}" for r in s["exclude"])
    return "\n".join(lines)
