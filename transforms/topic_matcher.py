"""Tag articles with topics and count keyword mentions, for any number of topics.

`Tagger` compiles every topic query, weighted rule and keyword form once. Per article it
tokenises title and summary once (`query.Document`), then runs one Aho-Corasick automaton
(pyahocorasick) over the article's lookup keys to find which topics and keywords could match
at all: each compiled query names a set of atoms of which at least one must occur
(`query.required_atoms`). Only those candidates are evaluated, so the cost grows with the text,
not with the number of topics. Topics that can match without any atom (a bare `NOT x`) are
evaluated for every article.

A Tagger pickles as its specs and rebuilds itself on unpickling; build it in `DoFn.setup`.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Sequence

import ahocorasick  # type: ignore[import-not-found,unused-ignore]

from transforms.morphology import stem_keys
from transforms.textnorm import is_arabic, lookup_keys
from transforms.query import Atom, Document, Match, Query, any_of, evidence, minimal, \
    evaluate as evaluate_node, parse_query, positive_matches, stem_keys_of, term_match, \
    trigger as _trigger
from transforms.topic_rules import KeywordSpec, TopicSpec, VariantSpec, variants_table

Evidence = tuple[tuple[str, tuple[tuple[str, tuple[str, ...]], ...]], ...]


@dataclass(frozen=True)
class TagResult:
    topics: tuple[str, ...]                            # sorted topic ids
    keyword_mentions: tuple[tuple[str, int], ...]      # (keyword id, occurrences > 0), sorted
    evidence: Evidence                                 # as Article.evidence

    @property
    def keywords(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.keyword_mentions)


@dataclass(eq=False)
class _Topic:
    id: str
    gate: Query | None
    weights: tuple[tuple[Query, float], ...]
    threshold: float

    def evaluate(self, doc: Document) -> tuple[Match, ...] | None:
        """The positive terms to report as evidence when the topic matches, else None."""
        found: list[Match] = []
        if self.gate is not None:
            if not self.gate.matches(doc):
                return None
            found.extend(self.gate_positives)
        if self.weights:
            # positive rules first, heaviest first, giving up once the threshold is out of
            # reach; negative rules only when it was reached (same result, less work)
            score, left, threshold = 0.0, self.positive_total, self.threshold
            for rule, weight, positives in self.ordered:
                if weight > 0:
                    if score + left < threshold:
                        return None
                    left -= weight
                elif score < threshold:
                    return None
                if evaluate_node(rule.root, doc):
                    score += weight
                    found.extend(positives)
            if score < threshold:
                return None
        return tuple(found)

    @functools.cached_property
    def gate_positives(self) -> tuple[Match, ...]:
        return tuple(positive_matches(self.gate.root)) if self.gate is not None else ()

    @functools.cached_property
    def ordered(self) -> tuple[tuple[Query, float, tuple[Match, ...]], ...]:
        """(rule, weight, the rule's evidence terms when positive), the order evaluate reads."""
        return tuple((rule, weight, tuple(positive_matches(rule.root)) if weight > 0 else ())
                     for rule, weight in sorted(self.weights,
                                                key=lambda rw: (rw[1] < 0, -abs(rw[1]))))

    @functools.cached_property
    def positive_total(self) -> float:
        return sum(w for _, w in self.weights if w > 0)

    def necessary(self) -> tuple[frozenset[Atom], ...]:
        """Groups of atoms, one of each must occur for the topic to match (the prefilter's
        test); () when the topic can match without any word (it is always evaluated)."""
        groups = list(self.gate.necessary()) if self.gate is not None else []
        if self.weights and self.threshold > 0:
            # the score is at most the sum of the positive weights that match: a rule
            # without which the others cannot reach the threshold is needed, and unless the
            # needed ones reach it alone, one of the other positive rules must match too
            # (a small margin keeps float sums from pruning a topic evaluate would tag)
            reach = self.threshold - 1e-9 * max(1.0, abs(self.threshold))
            positive = [(rule, w) for rule, w in self.weights if w > 0]
            total = sum(w for _, w in positive)
            needed = [(rule, w) for rule, w in positive if total - w < reach]
            for rule, _ in needed:
                groups.extend(rule.necessary())
            if sum(w for _, w in needed) < reach:
                groups.extend(any_of([rule.necessary() for rule, w in positive
                                      if total - w >= reach]))
        return minimal(tuple(dict.fromkeys(groups)))


def _lookup_only(folded: str, surface: str) -> tuple[str, ...]:
    return lookup_keys(folded)


def _trigger_cost(group: frozenset[Atom]) -> tuple[int, int]:
    """Which necessary group triggers a topic: one without prefixes (a key lookup), then
    the one with the fewest keys (fewer documents have one of them)."""
    return sum(a.prefix for a in group), sum(1 if a.prefix else len(a.keys()) for a in group)


class Tagger:
    """Compiled topics and keywords; `tag(title, summary)` gives a TagResult."""

    def __init__(self, topics: Sequence[TopicSpec], keywords: Sequence[KeywordSpec] = (),
                 variants: Sequence[VariantSpec] | None = ()) -> None:
        self._specs = (tuple(topics), tuple(keywords), tuple(variants or ()))
        table = variants_table(variants)
        self._topics = tuple(
            _Topic(t.id,
                   parse_query(t.query, table, t.morphology) if t.query is not None else None,
                   tuple((parse_query(w.term, table, t.morphology), w.weight)
                         for w in t.weights),
                   t.threshold if t.threshold is not None else 0.0)
            for t in topics)
        # keyword forms count mentions of the forms listed, exactly (no morphology)
        self._keywords = tuple(
            (k.id, tuple(term_match(form, table, morphology=False) for form in k.forms))
            for k in keywords)
        self._morphology = any(t.morphology for t in topics)
        # only the stem keys some query looks up are indexed (a token's other stems are noise)
        wanted: set[str] = set()
        for topic in self._topics:
            for query in ([topic.gate] if topic.gate is not None else []) + \
                    [rule for rule, _ in topic.weights]:
                wanted |= stem_keys_of(query.root)
        self._wanted = frozenset(wanted)
        # Latin stems only cut endings, so a word can only have a wanted stem if it starts
        # with the first three letters of one (`~e:offens` -> off): the others skip stemming
        self._latin_heads = frozenset(k[3:6] for k in wanted if k[2:3] == ":")
        self._memo: dict[str, tuple[str, ...]] = {}     # surface form -> index keys
        self._morphology = self._morphology and bool(wanted)

        # the prefilter. Each topic's necessary groups (one atom of each must occur) get ids:
        # topic i's trigger (its cheapest group) is group i, its other groups are numbered
        # from len(topics) on. A key of an exact atom names the groups the atom is in; an
        # automaton over the document's keys finds prefixes. A topic is a candidate when all
        # its groups are hit. A keyword is counted when the key word of one of its forms is.
        count = len(self._topics)
        group_keys: dict[str, set[int]] = {}
        group_prefixes: dict[str, set[int]] = {}
        keyword_keys: dict[str, set[int]] = {}
        keyword_prefixes: dict[str, set[int]] = {}

        def add(atom: Atom, i: int, keys: dict[str, set[int]],
                prefixes: dict[str, set[int]]) -> None:
            if atom.prefix:
                prefixes.setdefault(atom.key, set()).add(i)
            else:
                for key in atom.keys():
                    keys.setdefault(key, set()).add(i)

        always: list[int] = []
        several: dict[int, frozenset[int]] = {}
        next_id = count
        for i, topic in enumerate(self._topics):
            groups = sorted(topic.necessary(), key=_trigger_cost)
            if not groups:
                always.append(i)
                continue
            ids = [i]
            for k, group in enumerate(groups):
                if k:
                    ids.append(next_id)
                    next_id += 1
                for atom in group:
                    add(atom, ids[-1], group_keys, group_prefixes)
            if len(ids) > 1:
                several[i] = frozenset(ids)
        for i, (_, forms) in enumerate(self._keywords):
            for form in forms:
                for seq in form.alternatives:
                    add(_trigger(seq), i, keyword_keys, keyword_prefixes)
        self._always = tuple(always)
        self._several = several                       # topic -> all its group ids
        self._several_ids = frozenset(several)
        self._trigger_ids = frozenset(range(count))
        self._group_keys = {key: tuple(sorted(ids)) for key, ids in group_keys.items()}
        self._group_key_set = frozenset(group_keys)
        self._keyword_keys = {key: tuple(sorted(ids)) for key, ids in keyword_keys.items()}
        self._keyword_key_set = frozenset(keyword_keys)
        self._automaton: Any = None
        if group_prefixes or keyword_prefixes:
            automaton = ahocorasick.Automaton()
            for key in set(group_prefixes) | set(keyword_prefixes):
                automaton.add_word(" " + key, (tuple(sorted(group_prefixes.get(key, ()))),
                                               tuple(sorted(keyword_prefixes.get(key, ())))))
            automaton.make_automaton()
            self._automaton = automaton

    def __getstate__(self) -> tuple[Any, ...]:
        return self._specs

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.__init__(*state)  # type: ignore[misc]

    def _keys(self, folded: str, surface: str) -> tuple[str, ...]:
        """A token's lookup keys and the stem keys some query looks up (the Document keeps
        them per surface form in this tagger's memo)."""
        if not is_arabic(folded) and folded[:3] not in self._latin_heads:
            return lookup_keys(folded)
        wanted = self._wanted
        return lookup_keys(folded) + tuple(k for k in stem_keys(folded, surface) if k in wanted)

    def candidates(self, doc: Document) -> tuple[set[int], set[int]]:
        """Indices of topics and keywords that could match `doc` (the prefilter)."""
        keys = doc.index.keys()
        hit: set[int] = set().union(*map(self._group_keys.__getitem__,
                                         self._group_key_set.intersection(keys)))
        keywords: set[int] = set().union(*map(self._keyword_keys.__getitem__,
                                              self._keyword_key_set.intersection(keys)))
        if self._automaton is not None:
            line = " " + " ".join(keys) + " "
            for _, (group_ids, keyword_ids) in self._automaton.iter(line):
                hit.update(group_ids)
                keywords.update(keyword_ids)
        triggered = hit.intersection(self._trigger_ids)
        topics = triggered.difference(self._several_ids)
        several = self._several
        topics.update(i for i in triggered.intersection(self._several_ids) if several[i] <= hit)
        topics.update(self._always)
        return topics, keywords

    def document(self, title: str, summary: str) -> Document:
        """The article as this tagger's queries read it."""
        return Document(title, summary, self._morphology,
                        self._keys if self._morphology else _lookup_only, self._memo)

    def tag(self, title: str, summary: str) -> TagResult:
        doc = self.document(title, summary)
        topic_ids, keyword_ids = self.candidates(doc)
        tagged: list[tuple[str, Any]] = []
        for i in topic_ids:
            topic = self._topics[i]
            found = topic.evaluate(doc)
            if found is not None:
                tagged.append((topic.id, evidence(found, doc)))
        tagged.sort(key=lambda item: item[0])
        mentions: list[tuple[str, int]] = []
        for i in keyword_ids:
            keyword_id, forms = self._keywords[i]
            starts = {span[0] for form in forms for span in doc.spans(form)}
            if starts:
                mentions.append((keyword_id, len(starts)))
        mentions.sort()
        return TagResult(
            topics=tuple(dict.fromkeys(t for t, _ in tagged)),
            keyword_mentions=tuple(mentions),
            evidence=tuple((t, ev) for t, ev in tagged),
        )
