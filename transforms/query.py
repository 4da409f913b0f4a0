"""The topic query language: parser, compiled form and matcher (no Beam in here).

Grammar (operators are upper-case words; precedence from loose to tight: OR, AND, NOT, NEAR):

    query    := or_expr
    or_expr  := and_expr ("OR" and_expr)*
    and_expr := unary (["AND"] unary)*          # juxtaposition is AND; "A NOT B" = A AND NOT B
    unary    := "NOT" unary | near
    near     := primary [("NEAR" | "NEAR/n") primary]
    primary  := "(" or_expr ")" | term | "quoted phrase" | title:term | title:"quoted phrase"

Decisions (see also transforms/textnorm.py for folding and Arabic proclitics):

* Operators are the upper-case words AND, OR, NOT, NEAR, NEAR/n, as in analysts' tools; the
  same words in lower or mixed case are a syntax error (write them in quotes to search for the
  word, e.g. the French "or"), because a silent AND on the word "and" is never what was meant.
* Matching is case-insensitive and folded; a term is one word, a word written with inner
  punctuation (`ez-Zor`, `l'offensive`) is the phrase of its tokens.
* `term*` is a prefix wildcard, allowed at the end of any word of a term or phrase, with at
  least 3 letters before `*` (a leading Arabic article ال does not count).
* `A NEAR/n B`: a token of A and a token of B at most n tokens apart, either order, in the same
  field (title or summary), without overlapping: NEAR/1 means adjacent. `NEAR` is NEAR/4;
  n is 1..1000. The sides of NEAR are terms, phrases, or parenthesised ORs of them.
* A phrase matches consecutive tokens of one field: never across the title/summary boundary.
* `title:` restricts a term or phrase to the title. `NOT` looks at title and summary together.
* A config-level variant set (e.g. Raqqa, Raqqah, Rakka) turns a term or phrase written as
  one of its members into "any member"; inside a longer phrase, each word that is a one-word
  member stands for its set (`"قوات سوريا الديمقراطية"` also matches الديموقراطية), while a
  multi-word member (Deir ez-Zor) is only expanded when it is the whole term or phrase.
  Wildcard words are never expanded. Evidence names the term as written.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import re
import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Collection, Iterable, Mapping, Sequence, Union

from transforms.morphology import stem_keys, term_stem_keys
from transforms.textnorm import Token, fold_token, lookup_keys, token_surfaces, tokenize, \
    wildcard_letters

DEFAULT_NEAR = 4
MAX_NEAR = 1000
MIN_WILDCARD_LETTERS = 3
SUMMARY_BASE = 1 << 24   # summary positions start here, so title and summary never touch


class QuerySyntaxError(ValueError):
    """A malformed query: `position` is the 0-based character offset, `expected` says what
    would have been valid there."""

    def __init__(self, position: int, expected: str, found: str = "") -> None:
        message = f"at position {position}: expected {expected}"
        if found:
            message += f", found {found}"
        super().__init__(message)
        self.position = position
        self.expected = expected
        self.found = found


# --- compiled form ------------------------------------------------------------------------

@dataclass(frozen=True)
class Atom:
    """One folded word of a term: exact, or a prefix when written with `*`; `stems` are the
    morphology keys (`~stem`) it also matches under (empty for exact forms and prefixes)."""

    key: str
    prefix: bool = False
    stems: tuple[str, ...] = ()
    surface: str = field(default="", compare=False, repr=False)   # as written in the query
    morph: bool = field(default=False, compare=False, repr=False)  # morphology asked for

    def keys(self) -> tuple[str, ...]:
        """Every index key the atom matches (not for prefixes)."""
        return (self.key, *self.stems)


def stem_keys_of(node: "Node") -> set[str]:
    """Every stem key the compiled query can look up (what a Document needs to index)."""
    if isinstance(node, Match):
        return {k for seq in node.alternatives for a in seq for k in a.stems}
    if isinstance(node, Near):
        return {k for m in (*node.left, *node.right) for k in stem_keys_of(m)}
    if isinstance(node, (And, Or)):
        return {k for c in node.children for k in stem_keys_of(c)}
    if isinstance(node, Not):
        return stem_keys_of(node.child)
    return set()


def stemmed(atom: Atom) -> Atom:
    """The atom with its morphology keys (prefixes stay as they are)."""
    if atom.prefix or atom.morph:
        return atom
    return Atom(atom.key, False, term_stem_keys(atom.key, atom.surface), atom.surface, True)


Seq = tuple[Atom, ...]                 # consecutive words


@dataclass(frozen=True, eq=False)
class Match:
    """A term or phrase as written (`label`), with its variant alternatives."""

    label: str
    alternatives: tuple[Seq, ...]
    title_only: bool = False
    # the exact one-word keys when every alternative is one, for a fast presence test
    simple: tuple[str, ...] = field(init=False, repr=False)
    # the keys of every alternative's rarest-looking exact word: none in a document = no match
    needed: frozenset[str] | None = field(init=False, repr=False)
    # the words when every alternative is one word (spans are then their positions)
    words: tuple[Atom, ...] | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "words", tuple(s[0] for s in self.alternatives)
                           if all(len(s) == 1 for s in self.alternatives) else None)
        needed: set[str] = set()
        for seq in self.alternatives:
            exact = [a for a in seq if not a.prefix]
            if not exact:
                needed = set()
                break
            needed.update(max(exact, key=lambda a: len(a.key)).keys())
        object.__setattr__(self, "needed", frozenset(needed) if needed else None)
        simple = not self.title_only and all(len(s) == 1 and not s[0].prefix
                                             for s in self.alternatives)
        object.__setattr__(self, "simple", tuple(dict.fromkeys(
            k for s in self.alternatives for k in s[0].keys())) if simple else ())


@dataclass(frozen=True, eq=False)
class Near:
    left: tuple[Match, ...]
    right: tuple[Match, ...]
    distance: int


@dataclass(frozen=True, eq=False)
class And:
    children: tuple["Node", ...]


@dataclass(frozen=True, eq=False)
class Or:
    children: tuple["Node", ...]
    # the exact keys of the one-word children, tested at once; the other children after
    simple: frozenset[str] = field(init=False, repr=False)
    rest: tuple["Node", ...] = field(init=False, repr=False)
    rest_needed: frozenset[str] | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        simple = [c for c in self.children if isinstance(c, Match) and c.simple]
        object.__setattr__(self, "simple", frozenset(k for c in simple for k in c.simple))
        object.__setattr__(self, "rest", tuple(c for c in self.children
                                               if not (isinstance(c, Match) and c.simple)))
        # when every other child is a term or phrase: the keys one of them needs
        needed: set[str] = set()
        for c in self.rest:
            if not isinstance(c, Match) or c.needed is None:
                needed = set()
                break
            needed |= c.needed
        object.__setattr__(self, "rest_needed", frozenset(needed) if needed else None)


@dataclass(frozen=True, eq=False)
class Not:
    child: "Node"


Node = Union[Match, Near, And, Or, Not]
VariantTable = Mapping[tuple[str, ...], tuple[Seq, ...]]
Span = tuple[int, int]                 # first and last token position, inclusive


# --- the prepared document ----------------------------------------------------------------

@functools.lru_cache(maxsize=1 << 17)
def token_keys(folded: str, surface: str) -> tuple[str, ...]:
    """A token's lookup keys (textnorm) and stem keys (morphology), no duplicates."""
    return lookup_keys(folded) + stem_keys(folded, surface)


def _lookup_only(folded: str, surface: str) -> tuple[str, ...]:
    return lookup_keys(folded)


MEMO_LIMIT = 1 << 18          # surface forms remembered per memo before it starts again
_MORPH_MEMO: dict[str, tuple[str, ...]] = {}
_LOOKUP_MEMO: dict[str, tuple[str, ...]] = {}


def remembered_keys(surface: str, keys: "Callable[[str, str], tuple[str, ...]]",
                    memo: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """A word's index keys (`keys(folded, surface)`, () when it folds to nothing), kept in
    `memo`, which starts again once it holds MEMO_LIMIT words."""
    found = memo.get(surface)
    if found is None:
        if len(memo) >= MEMO_LIMIT:
            memo.clear()
        folded = fold_token(surface)
        found = memo[surface] = keys(folded, surface) if folded else ()
    return found


class Document:
    """Title and summary tokenised once; answers where atoms, terms and phrases occur.

    Memoises per document, keyed by the identity of the compiled nodes, so a Document must
    only be used with queries that outlive it (always the case inside a Tagger).
    """

    __slots__ = ("title", "summary", "_title_tokens", "_summary_tokens", "index",
                 "_prefix_memo", "_span_memo", "_sorted_keys", "_atom_memo", "_surfaces", "written")

    def __init__(self, title: str, summary: str, morphology: bool = True,
                 keys: "Callable[[str, str], tuple[str, ...]] | None" = None,
                 memo: dict[str, tuple[str, ...]] | None = None) -> None:
        """`keys(folded, surface)` gives every index key of a token (the Tagger's keeps only
        the stems its queries use); by default its lookup keys and, with `morphology`, all
        its stem keys. `memo` keeps them by surface form (the Tagger's own; by default one
        per mode), as the surface determines the folded form."""
        self.title = title
        self.summary = summary
        self._title_tokens: list[Token] | None = None
        self._summary_tokens: list[Token] | None = None
        if keys is None:
            keys = token_keys if morphology else _lookup_only
            memo = _MORPH_MEMO if morphology else _LOOKUP_MEMO
        elif memo is None:
            memo = {}
        index: dict[str, list[int]] = defaultdict(list)
        # the surface of each token by position, per field, when the fast path read it and
        # kept every match (None: ask the Tokens)
        self._surfaces: list[list[str] | None] = [None, None]
        # every word as written, both fields (a word that folds to nothing included), when
        # both were read by the fast path; else None
        self.written: list[str] | None = []
        for base, text in ((0, title), (SUMMARY_BASE, summary)):
            surfaces = token_surfaces(text)
            if surfaces is None:               # compatibility characters: the full tokeniser
                self.written = None
                tokens = tokenize(text)
                if base:
                    self._summary_tokens = tokens
                else:
                    self._title_tokens = tokens
                for position, token in enumerate(tokens, base):
                    for key in keys(token.folded, token.surface):
                        index[key].append(position)
                continue
            position = base
            get = memo.get
            if self.written is not None:
                self.written += surfaces
            for surface in surfaces:
                found = get(surface)
                if found is None:
                    found = remembered_keys(surface, keys, memo)
                if not found:
                    continue                    # folds to nothing: not a token
                for key in found:
                    index[key].append(position)
                position += 1
            if position - base == len(surfaces):
                self._surfaces[1 if base else 0] = surfaces
        self.index = index
        self._atom_memo: dict[int, Collection[int]] = {}
        self._prefix_memo: dict[str, frozenset[int]] = {}
        self._span_memo: dict[int, tuple[Span, ...]] = {}
        self._sorted_keys: list[str] | None = None

    @property
    def title_tokens(self) -> list[Token]:
        if self._title_tokens is None:
            self._title_tokens = tokenize(self.title)
        return self._title_tokens

    @property
    def summary_tokens(self) -> list[Token]:
        if self._summary_tokens is None:
            self._summary_tokens = tokenize(self.summary)
        return self._summary_tokens

    def keys(self) -> Iterable[str]:
        """Every lookup key of every token (what the prefilter scans)."""
        return self.index.keys()

    def positions(self, atom: Atom) -> Collection[int]:
        if atom.stems:
            memo = self._atom_memo.get(id(atom))
            if memo is None:
                index = self.index
                present = [index[k] for k in atom.keys() if k in index]
                memo = () if not present else present[0] if len(present) == 1 else \
                    frozenset(p for positions in present for p in positions)
                self._atom_memo[id(atom)] = memo
            return memo
        if not atom.prefix:
            return self.index.get(atom.key, ())
        found = self._prefix_memo.get(atom.key)
        if found is None:
            if self._sorted_keys is None:
                self._sorted_keys = sorted(self.index)
            keys, prefix = self._sorted_keys, atom.key
            positions: set[int] = set()
            for i in range(bisect.bisect_left(keys, prefix), len(keys)):
                if not keys[i].startswith(prefix):
                    break
                positions.update(self.index[keys[i]])
            found = frozenset(positions)
            self._prefix_memo[atom.key] = found
        return found

    def occurs(self, match: Match) -> bool:
        """Does `match` occur at all (cheaper than `spans` for one-word terms)?"""
        if match.simple:
            return not self.index.keys().isdisjoint(match.simple)
        return bool(self.spans(match))

    def spans(self, match: Match) -> tuple[Span, ...]:
        """Where `match` occurs, sorted; honours `title:`."""
        memo = self._span_memo.get(id(match))
        if memo is not None:
            return memo
        if match.needed is not None and self.index.keys().isdisjoint(match.needed):
            self._span_memo[id(match)] = ()
            return ()
        words = match.words
        if words is not None:               # one-word alternatives: their positions
            if len(words) == 1:
                positions = self.positions(words[0])
                # an index list is already sorted (tokens are indexed in order)
                at = positions if isinstance(positions, list) else sorted(positions)
            else:
                at = sorted({p for atom in words for p in self.positions(atom)})
            if match.title_only:
                at = [p for p in at if p < SUMMARY_BASE]
            spans = tuple(zip(at, at))
            self._span_memo[id(match)] = spans
            return spans
        found: set[Span] = set()
        for seq in match.alternatives:
            starts = set(self.positions(seq[0]))
            for i, atom in enumerate(seq[1:], start=1):
                if not starts:
                    break
                here = self.positions(atom)
                starts = {p for p in starts if p + i in here}
            found.update((p, p + len(seq) - 1) for p in starts)
        if match.title_only:
            found = {s for s in found if s[0] < SUMMARY_BASE}
        spans = tuple(sorted(found))
        self._span_memo[id(match)] = spans
        return spans

    def surface(self, span: Span) -> str:
        """The text as written for a span of tokens."""
        start, end = span
        if start == end:
            surfaces = self._surfaces[1 if start >= SUMMARY_BASE else 0]
            if surfaces is not None:
                return surfaces[start - SUMMARY_BASE if start >= SUMMARY_BASE else start]
        if start >= SUMMARY_BASE:
            text, tokens, start, end = self.summary, self.summary_tokens, \
                start - SUMMARY_BASE, end - SUMMARY_BASE
        else:
            text, tokens = self.title, self.title_tokens
        return text[tokens[start].start:tokens[end].end]


# --- matching -----------------------------------------------------------------------------

def _near(doc: Document, node: Near) -> bool:
    left = [s for m in node.left for s in doc.spans(m)]
    if not left:
        return False
    right = [s for m in node.right for s in doc.spans(m)]
    for a_start, a_end in left:
        for b_start, b_end in right:
            if (a_start >= SUMMARY_BASE) != (b_start >= SUMMARY_BASE):
                continue
            if a_end < b_start:
                gap = b_start - a_end
            elif b_end < a_start:
                gap = a_start - b_end
            else:
                continue                       # overlapping: one word cannot be both sides
            if gap <= node.distance:
                return True
    return False


def evaluate(node: Node, doc: Document) -> bool:
    """True when `node` matches the document."""
    if isinstance(node, Match):
        return doc.occurs(node)
    if isinstance(node, And):
        return all(evaluate(c, doc) for c in node.children)
    if isinstance(node, Or):
        keys = doc.index.keys()
        if node.simple and not keys.isdisjoint(node.simple):
            return True
        if node.rest_needed is not None and keys.isdisjoint(node.rest_needed):
            return False
        return any(evaluate(c, doc) for c in node.rest)
    if isinstance(node, Not):
        return not evaluate(node.child, doc)
    return _near(doc, node)


def compile_node(node: Node) -> Callable[[Document], bool]:
    """`evaluate(node, doc)` as a function of the document (same answers, less dispatch;
    closures, so a holder of them rebuilds them rather than pickling them)."""
    if isinstance(node, Match):
        if node.simple:
            simple = node.simple
            return lambda doc: not doc.index.keys().isdisjoint(simple)
        return lambda doc: bool(doc.spans(node))
    if isinstance(node, And):
        tests = tuple(compile_node(c) for c in node.children)
        if len(tests) == 2:
            first, second = tests
            return lambda doc: first(doc) and second(doc)
        return lambda doc: all(test(doc) for test in tests)
    if isinstance(node, Or):
        one_word, rest_needed = node.simple, node.rest_needed
        rest = tuple(compile_node(c) for c in node.rest)

        def any_child(doc: Document) -> bool:
            keys = doc.index.keys()
            if one_word and not keys.isdisjoint(one_word):
                return True
            if rest_needed is not None and keys.isdisjoint(rest_needed):
                return False
            for test in rest:
                if test(doc):
                    return True
            return False
        return any_child
    if isinstance(node, Not):
        child = compile_node(node.child)
        return lambda doc: not child(doc)
    return lambda doc: _near(doc, node)


def positive_matches(node: Node) -> list[Match]:
    """The terms and phrases not under a NOT, in query order (what evidence reports)."""
    if isinstance(node, Match):
        return [node]
    if isinstance(node, Near):
        return [*node.left, *node.right]
    if isinstance(node, (And, Or)):
        return [m for c in node.children for m in positive_matches(c)]
    return []


def evidence(matches: Sequence[Match], doc: Document) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """((term as written, (surface forms seen, in text order)), ...) for terms that occur."""
    found: dict[str, dict[str, None]] = {}
    for match in matches:
        spans = doc.spans(match)
        if spans:
            forms = found.setdefault(match.label, {})
            for span in spans:
                forms.setdefault(doc.surface(span), None)
    return tuple((label, tuple(forms)) for label, forms in found.items())


MAX_GROUPS = 8          # an OR of conjunctions is expanded while it gives at most this many


def trigger(seq: Seq) -> Atom:
    """The word of a phrase the prefilter looks for: an exact word before a prefix, the
    longest (rarest-looking) first."""
    return max(seq, key=lambda a: (not a.prefix, len(a.key)))


def necessary_groups(node: Node) -> tuple[frozenset[Atom], ...]:
    """Sets of atoms such that, for each set, one of its atoms must occur for `node` to
    match: a necessary condition in conjunctive form (the prefilter's). () when nothing is
    necessary (a node that can match without any of its words, e.g. NOT x)."""
    if isinstance(node, Match):
        if len(node.alternatives) == 1:        # every word of the one phrase must occur
            return tuple(dict.fromkeys(frozenset((a,)) for a in node.alternatives[0]))
        return (frozenset(trigger(seq) for seq in node.alternatives),)
    if isinstance(node, Near):
        return all_of([any_of([necessary_groups(m) for m in node.left]),
                         any_of([necessary_groups(m) for m in node.right])])
    if isinstance(node, And):
        return all_of([necessary_groups(c) for c in node.children])
    if isinstance(node, Or):
        return any_of([necessary_groups(c) for c in node.children])
    return ()


def all_of(parts: Sequence[tuple[frozenset[Atom], ...]]) -> tuple[frozenset[Atom], ...]:
    """Every part must hold: all their groups."""
    return tuple(dict.fromkeys(g for part in parts for g in part))


def any_of(parts: Sequence[tuple[frozenset[Atom], ...]]) -> tuple[frozenset[Atom], ...]:
    """One of the parts must hold: each group of the result takes one group of every part
    (all combinations while they are few, else the smallest group of each part)."""
    if not parts or any(not part for part in parts):
        return ()
    count = 1
    for part in parts:
        count *= len(part)
    if count > MAX_GROUPS:
        parts = [(min(part, key=_cost),) for part in parts]
    out = (frozenset().union(*combo) for combo in itertools.product(*parts))
    return minimal(tuple(dict.fromkeys(out)))


def _cost(group: frozenset[Atom]) -> tuple[int, int, int]:
    """Smaller first: fewer atoms, fewer prefixes, longer words (rarer-looking)."""
    return len(group), sum(a.prefix for a in group), -sum(len(a.key) for a in group)


def minimal(groups: tuple[frozenset[Atom], ...]) -> tuple[frozenset[Atom], ...]:
    """Drop a group that contains another (it says less)."""
    return tuple(g for g in groups if not any(h < g for h in groups))


# --- parsing ------------------------------------------------------------------------------

_OPERATORS = ("AND", "OR", "NOT")
_NEAR_RE = re.compile(r"NEAR(?:/(\d+))?")
_NEARISH_RE = re.compile(r"near(?:/.*)?", re.IGNORECASE)
_FIELD_RE = re.compile(r"([A-Za-z]+):")


@dataclass(frozen=True)
class _Lex:
    kind: str            # LP RP TERM PHRASE AND OR NOT NEAR EOF
    text: str
    pos: int             # offset of the token in the query
    text_pos: int = 0    # offset of `text` itself (after title: and the opening quote)
    title: bool = False
    distance: int = 0
    exact: bool = False          # written with a leading '=': no morphology


def _describe(tok: _Lex) -> str:
    return "the end of the query" if tok.kind == "EOF" else repr(tok.text)


def _lex(query: str) -> list[_Lex]:
    out: list[_Lex] = []
    i, n = 0, len(query)

    def phrase(at: int, start: int, title: bool) -> int:
        close = query.find('"', at + 1)
        if close < 0:
            raise QuerySyntaxError(at, 'a closing " for the phrase opened here')
        out.append(_Lex("PHRASE", query[at + 1:close], start, at + 1, title))
        return close + 1

    while i < n:
        ch = query[i]
        if ch.isspace():
            i += 1
        elif ch in "()":
            out.append(_Lex("LP" if ch == "(" else "RP", ch, i))
            i += 1
        elif ch == '"':
            i = phrase(i, i, False)
        elif ch == "=" and i + 1 < n and query[i + 1] == '"':
            i = phrase(i + 1, i, False)
            out[-1] = dataclasses.replace(out[-1], exact=True)
        else:
            j = i
            while j < n and not query[j].isspace() and query[j] not in '()"':
                j += 1
            word = query[i:j]
            field = _FIELD_RE.match(word)
            if field:
                if field.group(1).lower() != "title":
                    raise QuerySyntaxError(i, "a term, or the field title: (the only field)",
                                           f"field {field.group(0)!r}")
                rest = word[field.end():]
                if rest.startswith("=") and len(rest) > 1:
                    out.append(_Lex("TERM", rest[1:], i, i + field.end() + 1, True, exact=True))
                elif rest:
                    out.append(_Lex("TERM", rest, i, i + field.end(), True))
                elif j < n and query[j] == '"':
                    j = phrase(j, i, True)
                else:
                    raise QuerySyntaxError(j, 'a term or "phrase" right after title:')
            elif word in _OPERATORS:
                out.append(_Lex(word, word, i))
            elif _NEAR_RE.fullmatch(word):
                digits = _NEAR_RE.fullmatch(word).group(1)  # type: ignore[union-attr]
                distance = DEFAULT_NEAR if digits is None else int(digits)
                if not 1 <= distance <= MAX_NEAR:
                    raise QuerySyntaxError(i, f"NEAR/n with n from 1 to {MAX_NEAR}", word)
                out.append(_Lex("NEAR", word, i, distance=distance))
            elif word.upper() in _OPERATORS or _NEARISH_RE.fullmatch(word):
                raise QuerySyntaxError(
                    i, "an upper-case operator (AND, OR, NOT, NEAR, NEAR/n) or a quoted word",
                    f"{word!r}: write it in upper case for the operator, or in quotes "
                    f"(\"{word}\") to search for the word")
            elif word.startswith("=") and len(word) > 1:
                out.append(_Lex("TERM", word[1:], i, i + 1, exact=True))
            else:
                out.append(_Lex("TERM", word, i, i))
            i = j
    out.append(_Lex("EOF", "", n))
    return out


def compile_words(text: str, position: int = 0, *, wildcards: bool = True) -> Seq:
    """The atoms of a term or phrase as written; `position` is its offset in the query."""
    tokens = tokenize(text)
    ends = {t.end for t in tokens}
    for k, ch in enumerate(text):
        if ch != "*":
            continue
        if not wildcards:
            raise QuerySyntaxError(position + k, "a word without a wildcard here", "'*'")
        if k not in ends or (k + 1 < len(text) and text[k + 1] not in " *"
                             and tokenize(text[k + 1:k + 2])):
            raise QuerySyntaxError(position + k, "'*' only at the end of a word, as in offens*",
                                   repr(text))
    if not tokens:
        raise QuerySyntaxError(position, "a term with letters or digits",
                               f"{text!r}, which can never match")
    atoms = []
    for token in tokens:
        prefix = text[token.end:token.end + 1] == "*"
        if prefix and wildcard_letters(token.folded) < MIN_WILDCARD_LETTERS:
            raise QuerySyntaxError(position + token.start,
                                   f"at least {MIN_WILDCARD_LETTERS} letters before '*'",
                                   repr(text[token.start:token.end + 1]))
        atoms.append(Atom(token.folded, prefix, surface=token.surface))
    return tuple(atoms)


def variant_table(sets: Iterable[Sequence[str]]) -> dict[tuple[str, ...], tuple[Seq, ...]]:
    """Variant sets (lists of spellings) as a lookup from a folded word sequence to all
    members; raises QuerySyntaxError for a member that cannot be a term."""
    table: dict[tuple[str, ...], tuple[Seq, ...]] = {}
    for members in sets:
        seqs = tuple(dict.fromkeys(compile_words(m, wildcards=False) for m in members))
        for seq in seqs:
            table[tuple(a.key for a in seq)] = seqs
    return table


def term_match(text: str, variants: VariantTable, *, title_only: bool = False,
               position: int = 0, morphology: bool = True) -> Match:
    """A term or phrase (no operators) with its variant alternatives: also keyword forms.
    With `morphology`, every non-wildcard word also matches its inflected forms."""
    seq = compile_words(text, position)
    whole = variants.get(tuple(a.key for a in seq)) if not any(a.prefix for a in seq) else None
    if whole is not None:
        if morphology:
            whole = tuple(dict.fromkeys(tuple(stemmed(a) for a in s) for s in whole))
        return Match(text, whole, title_only)
    # otherwise each word of a phrase that is a one-word variant stands for its whole set
    options = [((a,),) if a.prefix else variants.get((a.key,), ((a,),)) for a in seq]
    alternatives = tuple(dict.fromkeys(
        tuple(stemmed(atom) if morphology else atom for part in combo for atom in part)
        for combo in itertools.product(*options)))
    return Match(text, alternatives, title_only)


class _Parser:
    def __init__(self, query: str, variants: VariantTable, morphology: bool = True) -> None:
        self.tokens = _lex(query)
        self.i = 0
        self.variants = variants
        self.morphology = morphology

    def peek(self) -> _Lex:
        return self.tokens[self.i]

    def take(self) -> _Lex:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def parse(self) -> Node:
        if self.peek().kind == "EOF":
            raise QuerySyntaxError(0, "a query", "an empty query")
        node = self.or_expr()
        tok = self.peek()
        if tok.kind != "EOF":
            raise QuerySyntaxError(tok.pos, "AND, OR, NOT or the end of the query",
                                   _describe(tok))
        return node

    def or_expr(self) -> Node:
        items = [self.and_expr()]
        while self.peek().kind == "OR":
            self.take()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Node:
        items = [self.unary()]
        while self.peek().kind in ("AND", "NOT", "TERM", "PHRASE", "LP"):
            if self.peek().kind == "AND":
                self.take()
            items.append(self.unary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def unary(self) -> Node:
        if self.peek().kind == "NOT":
            self.take()
            return Not(self.unary())
        return self.near()

    def near(self) -> Node:
        left_tok = self.peek()
        left = self.primary()
        if self.peek().kind != "NEAR":
            return left
        op = self.take()
        right_tok = self.peek()
        right = self.primary()
        near = Near(self.side(left, left_tok), self.side(right, right_tok), op.distance)
        if self.peek().kind == "NEAR":
            raise QuerySyntaxError(self.peek().pos, "AND, OR or the end of the query "
                                   "(NEAR joins two terms; it cannot be chained)", "NEAR")
        return near

    @staticmethod
    def side(node: Node, tok: _Lex) -> tuple[Match, ...]:
        if isinstance(node, Match):
            return (node,)
        if isinstance(node, Or) and all(isinstance(c, Match) for c in node.children):
            return tuple(node.children)  # type: ignore[arg-type]
        raise QuerySyntaxError(tok.pos, "a term, a \"phrase\" or a parenthesised OR of them "
                               "beside NEAR", "a group with AND, NOT or NEAR")

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind == "LP":
            node = self.or_expr()
            close = self.take()
            if close.kind != "RP":
                raise QuerySyntaxError(close.pos, f"a closing ) for the ( at position {tok.pos}",
                                       _describe(close))
            return node
        if tok.kind in ("TERM", "PHRASE"):
            return term_match(tok.text, self.variants, title_only=tok.title,
                              position=tok.text_pos,
                              morphology=self.morphology and not tok.exact)
        raise QuerySyntaxError(tok.pos, 'a term, a "phrase", ( or NOT', _describe(tok))


@dataclass(frozen=True, eq=False)
class Query:
    """A compiled query: `matches(doc)`, `evidence(doc)`, `necessary` atoms for prefilters."""

    text: str
    root: Node

    def matches(self, doc: Document) -> bool:
        return evaluate(self.root, doc)

    def evidence(self, doc: Document) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return evidence(positive_matches(self.root), doc)

    def necessary(self) -> tuple[frozenset[Atom], ...]:
        return necessary_groups(self.root)


def parse_query(text: str, variants: VariantTable | None = None,
                morphology: bool = True) -> Query:
    """Parse and compile `text`; raises QuerySyntaxError with the position and what was
    expected. `morphology=False` matches every term in its exact (folded) forms only."""
    return Query(text, _Parser(text, variants or {}, morphology).parse())


def morphology_warnings(query: Query) -> list[str]:
    """Words of the query whose stem would be one letter (reported by config validation)."""
    from transforms.morphology import one_letter_stems
    out = []
    for match in positive_matches(query.root) + _negated_matches(query.root):
        for seq in match.alternatives:
            for atom in seq:
                if atom.morph:
                    for stem in one_letter_stems(atom.key, atom.surface):
                        out.append(f"{match.label!r}: the word {atom.key!r} stems to "
                                   f"{stem!r}, which would match almost anything; write "
                                   f"={match.label} for the exact form")
    return list(dict.fromkeys(out))


def _negated_matches(node: Node) -> list[Match]:
    if isinstance(node, Not):
        return positive_matches(node.child) + _negated_matches(node.child)
    if isinstance(node, (And, Or)):
        return [m for c in node.children for m in _negated_matches(c)]
    return []


def matches(query: str | Query, title: str, summary: str = "") -> bool:
    """Convenience for tests and one-off use: does `query` match this title and summary?"""
    compiled = parse_query(query) if isinstance(query, str) else query
    return compiled.matches(Document(title, summary))
