"""Stories: near-duplicate articles (wire copies, rewrites) grouped into one story.

Pure logic first (no Beam), then the stage `GroupStories`.

* `features(title, summary)`: the folded tokens (the folding of topic matching,
  transforms/textnorm.py; Arabic proclitics و ف ب ك ل ال stripped, tashkeel and Latin
  diacritics folded) of the title, without a trailing outlet tag (`- Reuters`, `| Al Jazeera`),
  and of the lede (the summary's first sentence, at most `LEDE_WORDS` words).  A title of
  fewer than `min_title_tokens` tokens gives no features: such an item never merges.
* `signature(features)`: a datasketch MinHash (`num_perm` 32-bit values, so 4 * num_perm
  bytes per remembered article).
* `StoryMatcher`: per language, articles in (published, id) order; an article joins the story
  of the most similar earlier article (estimated Jaccard >= `threshold`) published within
  `horizon` seconds of it, else it starts its own story, whose id is its own id.  Candidates
  come from an LSH band index (`Bands`: datasketch's bands and rows for a lower threshold than
  the verification, so the index does not decide; each bucket keeps its newest ids, so a query
  costs at most bands x keep candidates, scored at once); articles older than the horizon leave
  the index: memory is bounded by the articles of one horizon (and `max_remembered`).

The stage (`GroupStories`): batch groups each language's articles under one key (as
compressed bytes) and runs the matcher in order, so the result does not depend on the runner
or on bundle order; every article gets `story` and `story_size` (the story's size in the
run).  Streaming keeps per language the remembered signatures in state (expired by an
event-time timer `horizon` after their published time, and at most `max_remembered`), and
an article gets the story and its size so far.
"""
from __future__ import annotations

import functools
import re
import uuid
import zlib
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence, cast

import apache_beam as beam
import numpy as np
from apache_beam.coders import PickleCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import GlobalWindows
from apache_beam.typehints import KV
from apache_beam.utils.timestamp import Timestamp
from datasketch import MinHash, MinHashLSH
from datasketch import __version__ as datasketch_version
from datasketch.hashfunc import sha1_hash32

from transforms.deadletters import DEAD, dead_letter
from transforms.records import Article, ArticleCoder
from transforms.textnorm import TOKEN_RE, fold, is_arabic, lookup_keys
from transforms.timeutil import to_epoch

DEFAULT_HORIZON = 3 * 86400.0
DEFAULT_THRESHOLD = 0.4
TITLE_WEIGHT = 3                      # a title token counts as this many features (lede tokens: 1)
MAX_NUMBERS = 4
DEFAULT_NUM_PERM = 128
DEFAULT_MIN_TITLE_TOKENS = 3
DEFAULT_MAX_REMEMBERED = 50_000       # per language: batch matcher and streaming state
DEFAULT_BUCKET_KEEP = 8              # an LSH bucket keeps its newest ids (see Bands)
LEDE_WORDS = 40
_SEED = 1

STAGE = "stories"
_MERGED = Metrics.counter("mediamon", "story_merges")
_STORIES = Metrics.counter("mediamon", "stories")      # articles that start a story

# a trailing outlet tag: " - Reuters", " | Al Jazeera", " — AFP" (at most 5 words after it)
_TAG = re.compile(r"\s+[-|–—:]\s+[^-|–—:]{1,60}$")
_SENTENCE = re.compile(r"(?<=[.!?؟。])\s+")


def strip_outlet(title: str) -> str:
    """`Title - Outlet` -> `Title` when the tag is short (at most 5 words) and the rest long."""
    match = _TAG.search(title)
    if match and len(match.group(0).split()) <= 6 and len(title[:match.start()].split()) >= 3:
        return title[:match.start()]
    return title


def lede(summary: str) -> str:
    """The summary's first sentence, at most LEDE_WORDS words."""
    first = _SENTENCE.split(summary.strip(), maxsplit=1)[0] if summary.strip() else ""
    return " ".join(first.split()[:LEDE_WORDS])


@functools.lru_cache(maxsize=1 << 17)
def _key(token: str) -> str:
    """A folded token's comparison key: Arabic proclitics stripped; "" for a short function word."""
    if is_arabic(token):
        keys = lookup_keys(token)
        token = min(keys, key=len) if keys else token
    return token if len(token) >= MIN_TOKEN or token.isdigit() else ""


MIN_TOKEN = 3      # shorter tokens (of, in, le, de, ve, في, من) are mostly function words: left out


def words(text: str) -> list[str]:
    """Comparison keys of a text: folded once (as topic matching folds), split into tokens."""
    return [k for k in map(_key, TOKEN_RE.findall(fold(text))) if k]


def title_tokens(title: str) -> list[str]:
    """The title's folded tokens, outlet tag stripped, numbers kept, words under 3 letters left out."""
    return words(strip_outlet(title))


def features(title: str, summary: str, min_title_tokens: int = DEFAULT_MIN_TITLE_TOKENS,
             tokens: Sequence[str] | None = None) -> set[str]:
    """The set compared between articles; empty (never merges) when the title is too short.

    Title tokens count TITLE_WEIGHT times (`1:token`, `2:token` beside `token`): the title
    carries the story, and outlets replace the lede more often than the title.  `tokens`: the
    title's `title_tokens`, when the caller has them."""
    head = set(title_tokens(title) if tokens is None else tokens)
    if len(head) < min_title_tokens:
        return set()
    feats = head | set(words(lede(summary)))
    for copy in range(1, TITLE_WEIGHT):
        feats |= {f"{copy}:{t}" for t in head}
    return feats


def title_numbers(title: str, tokens: Sequence[str] | None = None) -> tuple[str, ...]:
    """The numbers in the title (at most MAX_NUMBERS): a follow-up with another toll or round
    number ("3 killed" / "6 killed", "round 19" / "round 21") is another story."""
    return tuple(sorted({t for t in (title_tokens(title) if tokens is None else tokens)
                         if t.isdigit()}))[:MAX_NUMBERS]


def signed(article: Article, signer: "Signer",
           min_title_tokens: int = DEFAULT_MIN_TITLE_TOKENS) -> tuple[np.ndarray | None, tuple[str, ...]]:
    """What an article is matched by: its signature (None: too short a title) and title numbers
    (the title is tokenised once for both)."""
    tokens = title_tokens(article.title)
    return (signer.sign(features(article.title, article.summary, min_title_tokens, tokens)),
            title_numbers(article.title, tokens))


def numbers_agree(a: Sequence[str], b: Sequence[str]) -> bool:
    return not a or not b or bool(set(a) & set(b))


@functools.lru_cache(maxsize=1 << 18)
def _feature_hash(data: bytes) -> int:
    """datasketch's default 32-bit hash of a feature, remembered: the same words recur in
    article after article, and SHA-1 was most of the cost of signing."""
    return int(sha1_hash32(data))


FEATURE_ROWS = 1 << 15      # a Signer remembers the permuted hash row of this many features (16 MB)


class Signer:
    """Feature sets -> MinHash signatures, equal to datasketch's `MinHash(num_perm, seed=1)`
    updated with the features (its default affine32 scheme: a feature's 32-bit hash, mixed by
    `_fmix`, through `num_perm` affine permutations; the signature is the column minimum).

    A feature's row of `num_perm` permuted values depends on the feature only, and the same
    words recur article after article: the rows of the last FEATURE_ROWS features are kept in
    one array (oldest reused first), so signing an article is mostly one gather and one
    minimum; only new features are hashed and permuted, all at once.  Refilling a datasketch
    MinHash per article cost 90-140 us, most of it a dozen numpy calls on small arrays (the
    stream job's driver signs every article).  Not shared between threads."""

    def __init__(self, num_perm: int = DEFAULT_NUM_PERM, remember: int = FEATURE_ROWS) -> None:
        minhash = MinHash(num_perm=num_perm, seed=_SEED, hashfunc=_feature_hash)
        self.num_perm = num_perm
        self._a, self._b = (np.asarray(x, dtype=np.uint32) for x in minhash.permutations)
        self._capacity = max(1, remember)
        self._rows = np.empty((min(1024, self._capacity), num_perm), dtype=np.uint32)
        self._slot: dict[str, int] = {}            # feature -> its row
        self._owner: list[str] = []                # row -> feature
        self._next = 0                             # the row to reuse next, once full
        probe = ["mediamon", "1:raqqa", "الرقة"]
        minhash.update_batch([f.encode("utf-8") for f in probe])
        if not np.array_equal(self.permuted(probe).min(axis=0), minhash.hashvalues):
            raise RuntimeError(f"datasketch {datasketch_version}'s MinHash (scheme "
                               f"{getattr(minhash, 'scheme', '?')!r}) no longer computes what "
                               "stories.Signer does (its affine32 scheme): signatures would differ")

    def permuted(self, feats: Sequence[str]) -> np.ndarray:
        """The features' rows of permuted hash values (len(feats) x num_perm), as datasketch's
        affine32 scheme makes them: the 32-bit hash, MurmurHash3's finalizer, then a*h + b,
        all modulo 2**32 (uint32 arithmetic wraps)."""
        hv = np.fromiter((_feature_hash(f.encode("utf-8")) for f in feats), dtype=np.uint32,
                         count=len(feats)).reshape(-1, 1)
        hv ^= hv >> np.uint32(16)
        hv *= np.uint32(0x85EBCA6B)
        hv ^= hv >> np.uint32(13)
        hv *= np.uint32(0xC2B2AE35)
        hv ^= hv >> np.uint32(16)
        return cast(np.ndarray, hv * self._a + self._b)

    def sign(self, feats: Iterable[str]) -> np.ndarray | None:
        items = feats if isinstance(feats, (set, frozenset, list, tuple)) else list(feats)
        if not items:
            return None
        slot = self._slot
        rows = [slot.get(f, -1) for f in items]
        if -1 not in rows:
            return cast(np.ndarray, self._rows[rows].min(axis=0))
        new = list(dict.fromkeys(f for f, r in zip(items, rows) if r < 0))
        fresh = self.permuted(new)
        known = [r for r in rows if r >= 0]
        signature = fresh.min(axis=0)
        if known:                                  # gathered before any row is reused below
            np.minimum(signature, self._rows[known].min(axis=0), out=signature)
        self._keep(new, fresh)
        return cast(np.ndarray, signature)

    def _keep(self, feats: list[str], rows: np.ndarray) -> None:
        """Remember new features' rows: the array grows to its capacity, then the oldest rows
        are reused."""
        feats, rows = feats[-self._capacity:], rows[-self._capacity:]
        while len(self._owner) + len(feats) > len(self._rows) and len(self._rows) < self._capacity:
            grown = np.empty((min(2 * len(self._rows), self._capacity), self.num_perm), dtype=np.uint32)
            grown[:len(self._owner)] = self._rows[:len(self._owner)]
            self._rows = grown
        for feat, row in zip(feats, rows):
            if len(self._owner) < len(self._rows):
                at = len(self._owner)
                self._owner.append(feat)
            else:
                at = self._next
                self._next = (at + 1) % len(self._rows)
                del self._slot[self._owner[at]]
                self._owner[at] = feat
            self._rows[at] = row
            self._slot[feat] = at


def similarity(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Estimated Jaccard similarity of two signatures (0 when either is missing)."""
    if a is None or b is None:
        return 0.0
    return float(np.count_nonzero(a == b)) / len(a)


@dataclass
class Remembered:
    """One article the matcher remembers: about 4 * num_perm + 100 bytes."""

    id: str
    published: float
    story: str
    signature: np.ndarray
    numbers: tuple[str, ...] = ()


@functools.lru_cache(maxsize=16)
def _band_shape(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) that datasketch's MinHashLSH picks for this threshold (it integrates
    false positive and negative rates: 40 ms, so once per setting)."""
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return lsh.b, lsh.r


class Bands:
    """LSH banding of MinHash signatures: `bands` x `rows` as datasketch's MinHashLSH chooses
    them for the index threshold, but each bucket keeps only its `keep` most recently added ids.

    A recurring headline template ("N killed in X", a daily briefing) puts thousands of
    articles in the same buckets that never merge (their numbers differ); an uncapped index
    makes each query scan them all (quadratic over a day).  The newest members of a bucket
    are the ones a new article joins (the newest wins a tie), so capping loses little: an
    article is still found through any band in which it is among the `keep` newest."""

    def __init__(self, threshold: float, num_perm: int, keep: int = DEFAULT_BUCKET_KEEP) -> None:
        self.bands, self.rows = _band_shape(threshold, num_perm)
        self.keep = keep
        # a bucket is one id (most buckets: unrelated articles rarely share a band) or a list
        # of at most `keep` ids, oldest first: about 80 bytes per band per article
        self.tables: list[dict[bytes, str | list[str]]] = [{} for _ in range(self.bands)]

    def keys(self, signature: np.ndarray) -> list[bytes]:
        """Each band's bucket key: the bytes of its `rows` values."""
        raw = signature[:self.bands * self.rows].tobytes()
        step = 4 * self.rows
        return [raw[i:i + step] for i in range(0, len(raw), step)]

    def insert(self, ident: str, keys: Sequence[bytes]) -> None:
        """Add an id under its signature's `keys`."""
        for key, table, bucket in zip(keys, self.tables, map(dict.get, self.tables, keys)):
            if bucket is None:
                table[key] = ident
            elif isinstance(bucket, str):
                table[key] = [bucket, ident]
            else:
                bucket.append(ident)
                if len(bucket) > self.keep:
                    del bucket[0]

    def query(self, keys: Sequence[bytes]) -> set[str]:
        """The ids in the buckets of a signature's `keys`."""
        found: set[str] = set()
        for bucket in map(dict.get, self.tables, keys):
            if bucket is None:
                continue
            if isinstance(bucket, str):
                found.add(bucket)
            else:
                found.update(bucket)
        return found


class StoryMatcher:
    """One language's stories: feed articles in (published, id) order to `assign`."""

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, horizon: float = DEFAULT_HORIZON,
                 num_perm: int = DEFAULT_NUM_PERM, max_remembered: int = DEFAULT_MAX_REMEMBERED,
                 signer: "Signer | None" = None) -> None:
        self.threshold = threshold
        self.horizon = horizon
        self.num_perm = num_perm
        self.max_remembered = max_remembered
        self.signer = signer or Signer(num_perm)
        self.bands = self._index()
        self.remembered: dict[str, Remembered] = {}     # insertion order = published order
        self.sizes: dict[str, int] = {}
        self._stale = 0                                  # forgotten ids still in the index
        self._last: tuple[np.ndarray | None, list[bytes]] = (None, [])
        # the remembered articles as rows, so a query's candidates are scored with one
        # fancy index instead of stacking their signatures: each entry's `signature` is a
        # view of its row (one copy in memory); rows of forgotten articles are reused when
        # the index is rebuilt
        self._signatures = np.zeros((0, num_perm), dtype=np.uint32)
        self._published = np.zeros(0, dtype=np.float64)
        self._row: dict[str, int] = {}
        self._by_row: list[Remembered] = []

    def _index(self) -> Bands:
        # a lower threshold than the verification, so the index does not decide
        return Bands(max(0.1, self.threshold - 0.2), self.num_perm)

    def expire(self, moment: float) -> None:
        """Forget articles published before `moment` (in the order they were remembered) and
        the oldest beyond `max_remembered`."""
        while self.remembered:
            oldest = next(iter(self.remembered.values()))
            if oldest.published >= moment and len(self.remembered) < self.max_remembered:
                break
            del self.remembered[oldest.id]
            del self._row[oldest.id]
            self._stale += 1
        self._maybe_rebuild()

    def _maybe_rebuild(self) -> None:
        if self._stale > max(1000, len(self.remembered)):   # rebuild: amortised O(1) per article
            self.bands = self._index()
            self._rows(list(self.remembered.values()), capacity=2 * len(self.remembered))
            for entry in self.remembered.values():
                self.bands.insert(entry.id, self.bands.keys(entry.signature))
            self._stale = 0

    def _rows(self, entries: list[Remembered], capacity: int) -> None:
        """Lay `entries` out as the first rows of new arrays with room for `capacity` rows."""
        signatures = np.zeros((max(64, capacity), self.num_perm), dtype=np.uint32)
        published = np.zeros(len(signatures), dtype=np.float64)
        for row, entry in enumerate(entries):
            signatures[row] = entry.signature
            published[row] = entry.published
            entry.signature = signatures[row]
            if self.remembered.get(entry.id) is entry:     # not a forgotten one kept till a rebuild
                self._row[entry.id] = row
        self._signatures, self._published, self._by_row = signatures, published, entries

    def remember(self, entry: Remembered) -> None:
        """Add an article whose story is already known (from the state store)."""
        if entry.id in self.remembered:
            return
        row = len(self._by_row)
        if row == len(self._signatures):     # full: twice the room (amortised O(1))
            self._rows(self._by_row, capacity=2 * row)
        keys = self._keys(entry.signature)
        self._signatures[row] = entry.signature
        self._published[row] = entry.published
        entry.signature = self._signatures[row]
        self._row[entry.id] = row
        self._by_row.append(entry)
        self.remembered[entry.id] = entry
        self.bands.insert(entry.id, keys)
        self.sizes[entry.story] = self.sizes.get(entry.story, 0) + 1

    def forget(self, ident: str) -> None:
        """Undo `remember` (a commit that rolled back)."""
        entry = self.remembered.pop(ident, None)
        if entry is None:
            return
        del self._row[ident]
        self._stale += 1
        left = self.sizes.get(entry.story, 1) - 1
        if left > 0:
            self.sizes[entry.story] = left
        else:
            self.sizes.pop(entry.story, None)
        self._maybe_rebuild()

    def match(self, signature: np.ndarray | None, published: float,
              numbers: tuple[str, ...] = ()) -> str | None:
        """The story of the most similar remembered article within the horizon, if any
        (ties: the earliest published, then the greatest story id)."""
        if signature is None:
            return None
        rows = [row for row in map(self._row.get, self.bands.query(self._keys(signature)))
                if row is not None]                         # None: forgotten, still in the index
        if not rows:
            return None
        # scored at once; the per-candidate test of title numbers only for the rest
        scores = np.count_nonzero(self._signatures[rows] == signature, axis=1) / len(signature)
        near = (scores >= self.threshold) & (np.abs(self._published[rows] - published) <= self.horizon)
        best: tuple[float, float, str] | None = None
        mine = frozenset(numbers)                           # numbers_agree, set built once
        for i in np.flatnonzero(near):
            other = self._by_row[rows[i]]
            if mine and other.numbers and mine.isdisjoint(other.numbers):
                continue
            candidate = (float(scores[i]), -other.published, other.story)
            if best is None or candidate > best:
                best = candidate
        return best[2] if best else None

    def _keys(self, signature: np.ndarray) -> list[bytes]:
        """The signature's band keys; those of the last one asked are kept (an article is
        matched, then remembered under the same keys)."""
        if signature is not self._last[0]:
            self._last = (signature, self.bands.keys(signature))
        return self._last[1]

    def assign(self, ident: str, published: float, signature: np.ndarray | None,
               numbers: tuple[str, ...] = ()) -> str:
        """This article's story id (its own id when it starts a story)."""
        self.expire(published - self.horizon)
        story = self.match(signature, published, numbers) or ident
        (_MERGED if story != ident else _STORIES).inc()
        if signature is not None:
            self.remember(Remembered(ident, published, story, signature, numbers))
        else:
            self.sizes[story] = self.sizes.get(story, 0) + 1
        return story


def order_key(article: Article) -> tuple[float, str, str]:
    return (to_epoch(article.published), article.fetched, article.id)


Prepared = tuple[Article, float, "np.ndarray | None", tuple[str, ...]]


def prepare(article: Article, matcher: StoryMatcher,
            min_title_tokens: int = DEFAULT_MIN_TITLE_TOKENS) -> Prepared:
    """What matching needs of one article: its time, signature and title numbers (may raise)."""
    return (article, to_epoch(article.published), *signed(article, matcher.signer, min_title_tokens))


def assign_prepared(prepared: Sequence[Prepared], matcher: StoryMatcher) -> list[Article]:
    """Prepared articles of one language, matched in (published, fetched, id) order."""
    ordered = sorted(prepared, key=lambda p: (p[1], p[0].fetched, p[0].id))
    stories = [matcher.assign(a.id, published, sig, numbers) for a, published, sig, numbers in ordered]
    return [p[0].replace(story=s, story_size=matcher.sizes[s]) for p, s in zip(ordered, stories)]


def group_articles(articles: Sequence[Article], matcher: StoryMatcher,
                   min_title_tokens: int = DEFAULT_MIN_TITLE_TOKENS) -> list[Article]:
    """One language's articles -> the same articles with `story` and `story_size` set."""
    return assign_prepared([prepare(a, matcher, min_title_tokens) for a in articles], matcher)


# ---------------------------------------------------------------- the stage

@dataclass(frozen=True)
class StoryOptions:
    threshold: float = DEFAULT_THRESHOLD
    horizon: float = DEFAULT_HORIZON
    num_perm: int = DEFAULT_NUM_PERM
    min_title_tokens: int = DEFAULT_MIN_TITLE_TOKENS
    max_remembered: int = DEFAULT_MAX_REMEMBERED

    def matcher(self, signer: "Signer | None" = None) -> StoryMatcher:
        return StoryMatcher(self.threshold, self.horizon, self.num_perm, self.max_remembered, signer)


_CODER = ArticleCoder()


def _pack(article: Article) -> tuple[str, bytes]:
    return article.language, zlib.compress(_CODER.encode(article), 1)


class _GroupLanguageFn(beam.DoFn):
    def __init__(self, options: StoryOptions) -> None:
        self.options = options

    def process(self, element: tuple[str, Iterable[bytes]]) -> Iterator[Any]:
        _, packed = element
        matcher = self.options.matcher()
        prepared: list[Prepared] = []
        for data in packed:
            article = _CODER.decode(zlib.decompress(data))
            try:
                prepared.append(prepare(article, matcher, self.options.min_title_tokens))
            except Exception as exc:  # noqa: BLE001 - one article must not fail its language
                yield dead_letter(STAGE, article, exc)
        yield from assign_prepared(prepared, matcher)


class _Memory:
    """One language's remembered articles, as the streaming stage keeps them in state: rows
    0..n-1 of the arrays (unordered; the arrays have room to grow), `live` the remembered
    rows per story (a story's size is kept while it has one), and a `token` that every
    write changes, so a worker knows whether the matcher it built still fits the state."""

    def __init__(self, num_perm: int) -> None:
        self.ids: list[str] = []
        self.stories: list[str] = []
        self.numbers: list[tuple[str, ...]] = []
        self.published = np.zeros(64, dtype=np.float64)
        self.signatures = np.zeros((64, num_perm), dtype=np.uint32)
        self.sizes: dict[str, int] = {}
        self.live: dict[str, int] = {}
        self.token = ""

    @classmethod
    def of(cls, value: Any, num_perm: int) -> "_Memory":
        """The state as read: a `_Memory`, nothing yet, or the columns dict an earlier version
        of this stage kept (a Dataflow job updated in place keeps its state)."""
        if value is None or isinstance(value, _Memory):
            return value or cls(num_perm)
        mem = cls(num_perm)
        for row, ident in enumerate(value["ids"]):
            mem.add(Remembered(ident, float(value["published"][row]), value["stories"][row],
                               value["signatures"][row], tuple(value["numbers"][row])))
        mem.sizes = {k: n for k, n in value["sizes"].items() if k in mem.live}
        return mem

    def __len__(self) -> int:
        return len(self.ids)

    def __getstate__(self) -> dict[str, Any]:
        n = len(self.ids)          # the rows in use only: the room to grow is not state
        return {**self.__dict__, "published": self.published[:n], "signatures": self.signatures[:n]}

    def entries(self) -> Iterator[Remembered]:
        """The remembered articles in (published) order, as a matcher is rebuilt from them."""
        for row in np.argsort(self.published[:len(self)], kind="stable"):
            yield Remembered(self.ids[row], float(self.published[row]), self.stories[row],
                             self.signatures[row], self.numbers[row])

    def add(self, entry: Remembered) -> None:
        row = len(self.ids)
        if row == len(self.published):          # full: twice the room (amortised O(1))
            grown = max(64, 2 * row)
            self.published = np.resize(self.published, grown)
            self.signatures = np.resize(self.signatures, (grown, self.signatures.shape[1]))
        self.published[row] = entry.published
        self.signatures[row] = entry.signature
        self.ids.append(entry.id)
        self.stories.append(entry.story)
        self.numbers.append(entry.numbers)
        self.live[entry.story] = self.live.get(entry.story, 0) + 1

    def oldest(self) -> float:
        return float(self.published[:len(self)].min())

    def drop(self, rows: Iterable[int]) -> list[str]:
        """Forget these rows (the last row moves into each freed one); their ids."""
        gone = []
        for row in sorted(rows, reverse=True):
            last = len(self.ids) - 1
            gone.append(self.ids[row])
            story = self.stories[row]
            self.live[story] -= 1
            if not self.live[story]:
                del self.live[story]
                self.sizes.pop(story, None)
            self.ids[row], self.stories[row] = self.ids[last], self.stories[last]
            self.numbers[row] = self.numbers[last]
            del self.ids[last], self.stories[last], self.numbers[last]
            self.published[row] = self.published[last]
            self.signatures[row] = self.signatures[last]
        return gone


class _StreamingStoriesFn(beam.DoFn):
    """Per language: the remembered articles of one horizon in state (`_Memory`), expired by
    an event-time timer and capped at `max_remembered` (the oldest published goes first).

    Each article is matched as the batch and exactly-once modes match, by a `StoryMatcher`
    (LSH candidates, the same rule and tie-break).  The matcher is built from the state and
    kept by the worker while the state's token says it is the one it built on: an article
    costs its candidates, not a scan of everything remembered; a worker that did not write
    the state last (another worker, a retried bundle) builds it again."""

    MEMORY = ReadModifyWriteStateSpec("memory", PickleCoder())
    EXPIRY = TimerSpec("expiry", TimeDomain.WATERMARK)

    def __init__(self, options: StoryOptions) -> None:
        self.options = options

    def setup(self) -> None:
        self.signer = Signer(self.options.num_perm)
        self.matchers: dict[str, tuple[str, StoryMatcher]] = {}
        self.rebuilds = 0

    def _matcher(self, key: str, mem: _Memory) -> StoryMatcher:
        cached = self.matchers.get(key)
        if cached is not None and cached[0] == mem.token:
            return cached[1]
        matcher = self.options.matcher(self.signer)
        for entry in mem.entries():
            matcher.remember(entry)
        self.matchers[key] = (mem.token, matcher)
        self.rebuilds += 1
        return matcher

    def _write(self, key: str, mem: _Memory, matcher: StoryMatcher | None, memory: Any) -> None:
        mem.token = uuid.uuid4().hex
        memory.write(mem)
        if matcher is not None:
            self.matchers[key] = (mem.token, matcher)

    def process(self, element: tuple[str, Article],
                memory: Any = beam.DoFn.StateParam(MEMORY),
                expiry: Any = beam.DoFn.TimerParam(EXPIRY)) -> Iterator[Any]:
        key, article = element
        opts = self.options
        try:
            published = to_epoch(article.published)
            sig, numbers = signed(article, self.signer, opts.min_title_tokens)
        except Exception as exc:  # noqa: BLE001 - one article must not fail the job
            yield dead_letter(STAGE, article, exc)
            return
        mem = _Memory.of(memory.read(), opts.num_perm)
        matcher = self._matcher(key, mem)
        known = matcher.remembered.get(article.id)
        if known is not None:       # delivered again: the story it has, counted once
            yield article.replace(story=known.story, story_size=mem.sizes.get(known.story, 1))
            return
        story = matcher.match(sig, published, numbers) or article.id
        (_MERGED if story != article.id else _STORIES).inc()
        size = mem.sizes.get(story, 0) + 1
        if sig is not None:       # an article that cannot match is a story of one: nothing to keep
            mem.sizes[story] = size
            entry = Remembered(article.id, published, story, sig, numbers)
            mem.add(entry)
            matcher.remember(entry)
            if len(mem) > opts.max_remembered:
                for gone in mem.drop([int(np.argmin(mem.published[:len(mem)]))]):
                    matcher.forget(gone)
            self._write(key, mem, matcher, memory)
            expiry.set(Timestamp(mem.oldest() + opts.horizon))
        yield article.replace(story=story, story_size=size)

    @on_timer(EXPIRY)
    def expire(self, key: Any = beam.DoFn.KeyParam,
               memory: Any = beam.DoFn.StateParam(MEMORY),
               expiry: Any = beam.DoFn.TimerParam(EXPIRY),
               now: Any = beam.DoFn.TimestampParam) -> None:
        mem = _Memory.of(memory.read(), self.options.num_perm)
        if not mem:
            return
        cutoff = float(now) - self.options.horizon      # an entry lives until published + horizon
        old = np.flatnonzero(mem.published[:len(mem)] <= cutoff)
        if not len(old):          # a timer that fired early (Prism's may): nothing to forget
            expiry.set(Timestamp(mem.oldest() + self.options.horizon))
            return
        if len(old) == len(mem):
            memory.clear()
            self.matchers.pop(key, None)
            return
        cached = self.matchers.get(key)
        matcher = cached[1] if cached is not None and cached[0] == mem.token else None
        for gone in mem.drop(old.tolist()):
            if matcher is not None:
                matcher.forget(gone)
        self._write(key, mem, matcher, memory)
        expiry.set(Timestamp(mem.oldest() + self.options.horizon))


class GroupStories(beam.PTransform):
    """Article -> Article with `story` (first article's id) and `story_size`, per language:
    main output `articles`, tagged output `dead_letters` (an article matching raised on).

    Batch: all of a language's articles in one group, matched in (published, id) order.
    Streaming (`streaming=True`): per-language state of one horizon, bounded."""

    DEAD = DEAD

    def __init__(self, options: StoryOptions | None = None, streaming: bool = False) -> None:
        super().__init__()
        self.options = options or StoryOptions()
        self.streaming = streaming

    def expand(self, articles: beam.PCollection) -> beam.pvalue.DoOutputsTuple:
        if not self.streaming:
            grouped = (articles
                       | "PackByLanguage" >> beam.Map(_pack).with_output_types(KV[str, bytes])
                       | "GroupByLanguage" >> beam.GroupByKey()
                       | "MatchStories" >> beam.ParDo(_GroupLanguageFn(self.options))
                       .with_output_types(Article).with_outputs(DEAD, main="articles"))
            return cast("beam.pvalue.DoOutputsTuple", grouped)
        streamed = (articles
                    | "GlobalWindow" >> beam.WindowInto(GlobalWindows())
                    | "KeyByLanguage" >> beam.Map(lambda a: (a.language, a)).with_output_types(KV[str, Article])
                    | "MatchStories" >> beam.ParDo(_StreamingStoriesFn(self.options))
                    .with_output_types(Article).with_outputs(DEAD, main="articles"))
        return cast("beam.pvalue.DoOutputsTuple", streamed)
