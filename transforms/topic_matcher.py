"""Tag articles with topics and count keyword mentions, for any number of topics.

`Tagger` compiles every topic query, weighted rule and keyword form once. Per article it
reads title and summary once (`query.Document`: one regex pass per field, each token's index
keys from a per-tagger memo keyed by the token as written), then prefilters with set
operations: every topic has necessary groups of atoms (`_Topic.necessary`: one atom of each
group must occur for the topic to match, from its ANDs, phrases, NEAR sides and the weighted
rules its threshold cannot do without), and a topic is evaluated only when each of its groups
has a key in the document. A wildcard prefix is found through a mark (`*offens`) the tagger
adds to the memoised keys of every token that starts with it. The cost grows with the text
and with the topics that nearly match, not with the number of topics. Topics that can match
without any word (a bare `NOT x`) are evaluated for every article. `prefilter=False`
evaluates everything (the same results; tests compare the two).

A Tagger pickles as its specs and rebuilds itself on unpickling; build it in `DoFn.setup`.
"""
from __future__ import annotations

import functools
from itertools import compress
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from transforms.morphology import stem_keys
from transforms.textnorm import is_arabic, lookup_keys
from transforms.query import MEMO_LIMIT, Atom, Document, Match, Query, any_of, evidence, minimal, \
    compile_node, parse_query, positive_matches, remembered_keys, stem_keys_of, term_match, \
    trigger as _trigger
from transforms.topic_rules import KeywordSpec, TopicSpec, VariantSpec, variants_table

PREFIX_MARK = "*"      # a prefix's key in a token's keys (no token has a '*')
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
        gate = self.gate_test
        if gate is not None:
            if not gate(doc):
                return None
            found.extend(self.gate_positives)
        if self.weights:
            # positive rules first, heaviest first, giving up once the threshold is out of
            # reach; negative rules only when it was reached (same result, less work)
            score, left, threshold = 0.0, self.positive_total, self.threshold
            for test, weight, positives in self.ordered:
                if weight > 0:
                    if score + left < threshold:
                        return None
                    left -= weight
                elif score < threshold:
                    return None
                if test(doc):
                    score += weight
                    found.extend(positives)
            if score < threshold:
                return None
        return tuple(found)

    @functools.cached_property
    def gate_test(self) -> Callable[[Document], bool] | None:
        return compile_node(self.gate.root) if self.gate is not None else None

    @functools.cached_property
    def gate_positives(self) -> tuple[Match, ...]:
        return tuple(positive_matches(self.gate.root)) if self.gate is not None else ()

    @functools.cached_property
    def ordered(self) -> tuple[tuple[Callable[[Document], bool], float, tuple[Match, ...]], ...]:
        """(rule's test, weight, the rule's evidence terms when positive), in the order
        evaluate reads them."""
        return tuple((compile_node(rule.root), weight,
                      tuple(positive_matches(rule.root)) if weight > 0 else ())
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


def _trigger_cost(group: frozenset[Atom]) -> tuple[int, int]:
    """Which necessary group triggers a topic: one without prefixes (a key lookup), then
    the one with the fewest keys (fewer documents have one of them)."""
    return sum(a.prefix for a in group), sum(1 if a.prefix else len(a.keys()) for a in group)


class Tagger:
    """Compiled topics and keywords; `tag(title, summary)` gives a TagResult."""

    def __init__(self, topics: Sequence[TopicSpec], keywords: Sequence[KeywordSpec] = (),
                 variants: Sequence[VariantSpec] | None = (), prefilter: bool = True) -> None:
        """`prefilter=False` evaluates every topic and keyword on every article (the same
        results, slower: for checking the prefilter)."""
        self._specs = (tuple(topics), tuple(keywords), tuple(variants or ()), prefilter)
        self._prefilter = prefilter
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
        self._word_ids: dict[str, tuple[int, ...]] = {}  # surface form -> prefilter ids
        self._morphology = self._morphology and bool(wanted)

        # the prefilter. Each topic's necessary groups (one atom of each must occur) get ids:
        # topic i's trigger (its cheapest group) is group i, its other groups are numbered
        # from len(topics) on. A key of an atom names the groups the atom is in (a prefix
        # atom's key is its mark, which the tagger adds to a token's keys when one of its
        # lookup keys starts with the prefix). A topic is a candidate when all its groups
        # are hit. A keyword is counted when the key word of one of its forms is there
        # (keywords are ids after the groups, in the same map: one pass over the hits).
        count = len(self._topics)
        group_keys: dict[str, set[int]] = {}
        prefixes: set[str] = set()

        def add(atom: Atom, i: int, keys: dict[str, set[int]]) -> None:
            if atom.prefix:
                prefixes.add(atom.key)
                keys.setdefault(PREFIX_MARK + atom.key, set()).add(i)
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
                    add(atom, ids[-1], group_keys)
            if len(ids) > 1:
                several[i] = frozenset(ids)
        self._keyword_base = next_id
        for i, (_, forms) in enumerate(self._keywords):
            for form in forms:
                for seq in form.alternatives:
                    add(_trigger(seq), next_id + i, group_keys)
        self._always = tuple(always)
        self._several = several                       # topic -> all its group ids
        self._several_ids = frozenset(several)
        self._trigger_ids = frozenset(range(count))
        self._keyword_ids = frozenset(range(next_id, next_id + len(self._keywords)))
        self._key_ids = {key: tuple(sorted(ids)) for key, ids in group_keys.items()}
        self._prefilter_keys = frozenset(group_keys)
        # the prefixes by length, so a token's keys are tested with one lookup per length
        lengths: dict[int, set[str]] = {}
        for prefix in prefixes:
            lengths.setdefault(len(prefix), set()).add(prefix)
        self._prefixes = tuple(sorted((n, frozenset(p)) for n, p in lengths.items()))

    def __getstate__(self) -> tuple[Any, ...]:
        return self._specs

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.__init__(*state)  # type: ignore[misc]

    def _keys(self, folded: str, surface: str) -> tuple[str, ...]:
        """A token's index keys: its lookup keys, the stem keys some query looks up, and
        the mark of each query prefix one of its lookup keys starts with (the Document
        keeps them per surface form in this tagger's memo)."""
        keys = lookup_keys(folded)
        found = keys
        if self._morphology and (is_arabic(folded) or folded[:3] in self._latin_heads):
            wanted = self._wanted
            found += tuple(k for k in stem_keys(folded, surface) if k in wanted)
        if self._prefixes:
            found += tuple(dict.fromkeys(PREFIX_MARK + key[:n] for key in keys
                                         for n, prefixes in self._prefixes
                                         if key[:n] in prefixes))
        return found

    def candidates(self, doc: Document) -> tuple[set[int], set[int]]:
        """Indices of topics and keywords that could match `doc` (the prefilter; set
        operations and maps only, so its cost is in C, not in Python loops)."""
        if not self._prefilter:
            return set(range(len(self._topics))), set(range(len(self._keywords)))
        hit = self._hit_ids(doc)
        base = self._keyword_base
        keywords = {i - base for i in hit.intersection(self._keyword_ids)}
        triggered = hit.intersection(self._trigger_ids)
        topics = triggered.difference(self._several_ids)
        several = list(triggered.intersection(self._several_ids))
        topics.update(compress(several, map(hit.issuperset,
                                            map(self._several.__getitem__, several))))
        topics.update(self._always)
        return topics, keywords

    def _hit_ids(self, doc: Document) -> set[int]:
        """The group and keyword ids of every key of the document: from each written word's
        ids, remembered per word (most words have none), or from the document's keys."""
        written = doc.written
        if written is None:
            hits = self._prefilter_keys.intersection(doc.index.keys())
            return set().union(*map(self._key_ids.__getitem__, hits))
        found = list(map(self._word_ids.get, written))
        if None in found:
            found = [self._ids_of(word) if ids is None else ids for word, ids in zip(written, found)]
        return set().union(*filter(None, found))

    def _ids_of(self, word: str) -> tuple[int, ...]:
        """The ids of a word's keys (as `_keys` gives them), remembered."""
        keys = remembered_keys(word, self._keys, self._memo)
        key_ids = self._key_ids
        ids = tuple(sorted({i for key in keys if key in key_ids for i in key_ids[key]}))
        if len(self._word_ids) >= MEMO_LIMIT:
            self._word_ids.clear()
        self._word_ids[word] = ids
        return ids

    def document(self, title: str, summary: str) -> Document:
        """The article as this tagger's queries read it."""
        return Document(title, summary, self._morphology, self._keys, self._memo)

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
