"""Morphology-aware matching: the stem keys of a folded word, per language family.

A query term matches a token when their folded forms agree (textnorm) or, with morphology on
(the default), when a stemmer gives both the same stem. Stems live in their own key space
(`~` + stemmer + stem), so an exact-form term (`=ISIS`) never meets them, and two stemmers
never meet each other (French `Homs` -> hom is not English `home` -> home).

The article's language is not trusted at tagging time and a term does not say its language,
so each word goes through every stemmer of its script:

* Latin script: Snowball English, French and Turkish (PyStemmer: the C build of the Snowball
  algorithms, the same stems as snowballstemmer and several times faster), and Kurmanji rules
  of our own (no maintained Kurmanji stemmer exists, see `kurmanji_stems`): after folding
  (ê = e, î = i) two stems, the word with its longest ending cut (one layer of ezafe, oblique
  case, indefinite, plural, -da/-de) and the word as written, each without final vowels, 4+
  letters kept: Efrînê = Efrîn, Reqayê = Reqa, Sûriyeyê = Sûriye = Sûrî, Erdoganê = Erdogan.
  The Turkish stemmer only sees words of 5+ letters (it cuts short foreign words badly:
  Duma -> t). A number keeps its Kurmanji ending apart (2026ê = 2026).
* Arabic script, Arabic words: Snowball Arabic on each proclitic-stripped lookup key (see
  textnorm), after two folding repairs of ours: the plural -ات becomes the singular -ه (ة is
  folded to ه, which Snowball does not know as feminine), and an imperfect verb's ي is dropped
  when 3+ letters remain (يتقدم = تقدم). A key that carries the article keeps it in front of the
  stem (`~ال` + stem), so the contract's article rule holds with morphology too: الرقة still
  matches بالرقة والرقة للرقة and still does not match ورقة.
* Arabic script, Sorani words (those with a letter Arabic does not use: ە ێ ۆ ڕ ڵ ڤ گ چ پ ژ):
  rules of our own (`sorani_stems`): endings cut layer by layer from the end (clitic,
  postposition, possessive/ezafe, definite/plural/indefinite), then final vowels, 4+ letters
  kept, and the word as written as a second stem (ڕەققەدا = ڕەققەکەدا = ڕەققە, ئەفرینی =
  ئەفرین; سەرێکانی is not سەر).

Stems shorter than 3 letters (Latin) or 2 (Arabic) are never used: the word then matches by
its exact form and its other stems. `one_letter_stems` lets config validation report a term
that a stemmer would cut to a single letter (ilerle -> i), so its author writes =term.
"""
from __future__ import annotations

import functools
import unicodedata

import Stemmer  # type: ignore[import-not-found,unused-ignore]

from transforms.textnorm import ARTICLE, fold, is_arabic, lookup_keys

STEM_MARK = "~"
MIN_STEM = 3          # a Latin-script stem shorter than this is not used
MIN_TURKISH = 5       # the Turkish stemmer cuts shorter foreign words badly (Duma -> t)

_EN = Stemmer.Stemmer("english")
_FR = Stemmer.Stemmer("french")
_TR = Stemmer.Stemmer("turkish")
_AR = Stemmer.Stemmer("arabic")

# Kurmanji endings (folded: ê = e, î = i), one layer each, the glide -y- and the attached
# postposition -da/-de included: oblique -ê/-î, ezafe -a/-ê/-ên, plural oblique -an,
# indefinite -ek/-eke/-ekê/-ekî/-eka, and after a vowel the same with -y-.
_KURMANJI_ENDINGS = tuple(sorted(
    ("yen", "yan", "yek", "yeke", "yeki", "yeka", "ye", "ya", "yi", "yeda", "yede",
     "eke", "eki", "eka", "ekan", "ek", "en", "an", "eda", "ede", "e", "a", "i"),
    key=len, reverse=True))
_KURMANJI_VOWELS = "aeiy"
# a Kurmanji stem keeps 4+ letters: every Latin word goes through these rules, and 3-letter
# stems met English and Kurmanji words (sure = Sûriye -> sur, req = Reqa, roja = Roj); only
# the oblique -ê of a 3-letter word is cut (Dêra Zorê, kampa Holê, Şamê)
_KURMANJI_KEEP = 4
# Sorani (folded: ی -> ي, ک -> ك by textnorm.fold), in layers from the end of the word:
# clitic -یش/-ش (also), postposition -دا/-(ە)وە, possessive/ezafe -ی -یان -مان -تان -ێ, then
# definite/plural/indefinite -(ە)کە -(ە)کان -ان -ێک -یەک. An ending's linking ە is left on
# the word and goes with its final vowels (ڕەققەکەدا -> ڕەققەکە -> ڕەققە -> ڕەقق), as a
# name's own final ە does (ڕەققە -> ڕەقق), so the two always meet.
_SORANI_LAYERS = tuple(tuple(sorted(layer, key=len, reverse=True)) for layer in (
    ("يش", "ش"),
    ("دا", "وە"),
    ("ي", "يان", "مان", "تان", "ێ"),
    ("كان", "كە", "يەكان", "يەكە", "ان", "ێك", "يەك"),
))
_SORANI_VOWELS = "ەێي"          # not ا: سووریا is not سوور (red)
_SORANI_AFTER_VOWEL = frozenset("ەاێۆوي")     # a bare -ش clitic only follows a vowel
_SORANI_SHORT = frozenset(("ان", "ش"))        # cut only when 4+ letters remain (ئێران, کۆبان)
_SORANI_KEEP = 4                               # and final vowels go only above 4 letters
_SORANI_LETTERS = frozenset("ەێۆڕڵڤگچپژ")


def _strip(word: str, endings: tuple[str, ...], rounds: int = 2, keep: int = MIN_STEM) -> str:
    for _ in range(rounds):
        for ending in endings:
            if word.endswith(ending) and len(word) - len(ending) >= keep:
                word = word[:-len(ending)]
                break
        else:
            break
    return word


def _canon(word: str, vowels: str, keep: int = MIN_STEM) -> str:
    """The word without its final vowels (and Kurmanji glide y), `keep` letters at least."""
    while len(word) > keep and word[-1] in vowels:
        word = word[:-1]
    return word


def kurmanji_stems(word: str) -> tuple[str, ...]:
    """The Kurmanji (folded Latin) stems of a word: with its longest ending cut (one layer:
    case, ezafe, indefinite, plural, -da/-de) and as written, each without its final vowels,
    4+ letters kept. A name and its inflected forms share one (Reqa = Reqayê, Sûriye =
    Sûriyeyê = Sûrî, Kobanî = Kobaniyê = Kobanê, Erdogan = Erdoganê, Efrîn = Efrînê = Efrîna =
    Efrînêda, Zor = Zorê); a short word keeps its other endings (Roj is not roja, day)."""
    cut = _strip(word, _KURMANJI_ENDINGS, rounds=1, keep=_KURMANJI_KEEP)
    if cut == word and word.endswith("e") and len(word) == _KURMANJI_KEEP:
        cut = word[:-1]           # the oblique -ê of a 3-letter name: Zorê, Babê, Holê, Şamê
    return tuple(dict.fromkeys((_canon(cut, _KURMANJI_VOWELS, _KURMANJI_KEEP),
                                _canon(word, _KURMANJI_VOWELS, _KURMANJI_KEEP))))


def kurmanji_stem(word: str) -> str:
    """Kurmanji (folded Latin) stem: case, ezafe, indefinite and plural endings removed (the
    first of `kurmanji_stems`)."""
    return kurmanji_stems(word)[0]


def sorani_stems(word: str) -> tuple[str, ...]:
    """The Sorani (folded Arabic-script) stems of a word: its endings cut layer by layer
    (clitic, postposition, possessive/ezafe, definite/plural/indefinite, each at most once, 3+
    letters kept; -ان and -ش only with 4+ left) and as written, each without its final vowels
    while 4+ letters remain (ە ێ ی): ڕەققە = ڕەققەدا = ڕەققەش, ئاوارە = ئاوارەکانیش,
    کۆبانی = کۆبانێ = کۆبانێدا, هێرش = هێرشێکی, هۆڵ = هۆڵی, ڕەقە = ڕەقەدا. Stems of three
    letters met other words (سەرێکانی -> سەر, head; ڕەقە -> ڕەق, hard; ئێرە), so a short root
    keeps its final vowel (شەڕەکانی is not شەڕ: write شەڕ*)."""
    cut = word
    for layer in _SORANI_LAYERS:
        for ending in layer:
            left = len(cut) - len(ending)
            if cut.endswith(ending) and left >= (_SORANI_KEEP if ending in _SORANI_SHORT
                                                 else MIN_STEM) and (
                    ending != "ش" or cut[-2] in _SORANI_AFTER_VOWEL):
                cut = cut[:-len(ending)]
                break
    return tuple(dict.fromkeys((_canon(cut, _SORANI_VOWELS, _SORANI_KEEP),
                                _canon(word, _SORANI_VOWELS, _SORANI_KEEP))))


def sorani_stem(word: str) -> str:
    """Sorani (folded Arabic-script) stem: definite, plural and ezafe endings removed (the first
    of `sorani_stems`)."""
    return sorani_stems(word)[0]


def is_sorani(word: str) -> bool:
    return any(ch in _SORANI_LETTERS for ch in word)


def arabic_stem(base: str) -> str:
    """Snowball Arabic on a folded, proclitic-free base, with the two repairs above."""
    if base.endswith("ات") and len(base) >= 5:
        base = base[:-2] + "ه"
    if base.startswith("ي") and len(base) >= 4:
        base = base[1:]
    stem = _AR.stemWord(base)
    return stem if len(stem) >= 2 else base


def _lower(surface: str) -> str:
    """What the Snowball stemmers read: the word lower-cased with its accents (they need é,
    ş, ı), Turkish dotted/dotless I kept apart."""
    text = unicodedata.normalize("NFKC", surface).replace("İ", "i").replace("I", "ı") \
        if any(ch in "şğıİçöü" for ch in surface.lower()) else unicodedata.normalize("NFKC", surface)
    return text.lower()


def _turkish(word: str) -> str:
    """Snowball Turkish to a fixed point (it removes one suffix layer a call: mülteciler ->
    mülteci -> mülteç), at most three rounds."""
    for _ in range(3):
        stem = _TR.stemWord(word)
        if stem == word or len(stem) < MIN_STEM:
            break
        word = stem
    return word


def _raw_stems(folded: str, surface: str = "") -> list[str]:
    """What the stemmers make of a query word before the length guard."""
    if not is_arabic(folded):
        lower = _lower(surface or folded)
        stems = [_EN.stemWord(lower), _FR.stemWord(lower), *kurmanji_stems(folded)]
        return stems + [_turkish(lower)] if len(folded) >= MIN_TURKISH else stems
    if is_sorani(folded):
        return list(sorani_stems(folded))
    base = folded[len(ARTICLE):] if folded.startswith(ARTICLE) and len(folded) > 3 else folded
    return [_AR.stemWord(base)]


@functools.lru_cache(maxsize=1 << 17)
def _latin_stems(word: str, surface: str) -> tuple[str, ...]:
    if len(word) < MIN_STEM:
        return ()
    if word.isdigit():
        return ("k:" + word,)
    if not word.isalpha():
        # a number with a Kurmanji ending (2026ê): the number; other mixed tokens: none
        stem = kurmanji_stem(word) if word[0].isdigit() else word
        return ("k:" + stem,) if stem != word and stem.isdigit() else ()
    lower = _lower(surface) if surface else word
    stems = ["e:" + fold(_EN.stemWord(lower)), "f:" + fold(_FR.stemWord(lower)),
             *("k:" + k for k in kurmanji_stems(word))]
    if len(word) >= MIN_TURKISH:
        stems.append("t:" + fold(_turkish(lower)))
    return tuple(dict.fromkeys(s for s in stems if len(s) >= MIN_STEM + 2))


@functools.lru_cache(maxsize=1 << 17)
def stem_keys(folded: str, surface: str = "") -> tuple[str, ...]:
    """The stem keys (`~stem`) a token can be found under; `surface` is the token as written
    (the Latin stemmers read it with its accents), the folded form when not given."""
    if not is_arabic(folded):
        return tuple(STEM_MARK + s for s in _latin_stems(folded, surface))
    if is_sorani(folded):
        return tuple(STEM_MARK + s for s in sorani_stems(folded))
    keys: list[str] = []
    for key in lookup_keys(folded):
        if key.startswith(ARTICLE) and len(key) - len(ARTICLE) >= 2:
            keys.append(STEM_MARK + ARTICLE + arabic_stem(key[len(ARTICLE):]))
        else:
            keys.append(STEM_MARK + arabic_stem(key))
    return tuple(dict.fromkeys(keys))


def term_stem_keys(folded: str, surface: str = "") -> tuple[str, ...]:
    """The stem keys a query word is looked up under: for an Arabic word only the stem of the
    word as written (its proclitics are the text's business, as in textnorm)."""
    if not is_arabic(folded):
        return stem_keys(folded, surface)
    if is_sorani(folded):
        return tuple(STEM_MARK + s for s in sorani_stems(folded))
    if folded.startswith(ARTICLE) and len(folded) - len(ARTICLE) >= 2:
        return (STEM_MARK + ARTICLE + arabic_stem(folded[len(ARTICLE):]),)
    return (STEM_MARK + arabic_stem(folded),)


def one_letter_stems(folded: str, surface: str = "") -> list[str]:
    """Stems of a query word that have a single letter (they would match almost anything)."""
    if sum(ch.isalnum() for ch in folded) <= 1:
        return []                     # a one-letter word is what it is, not a cut stem
    return [s for s in dict.fromkeys(_raw_stems(folded, surface))
            if sum(ch.isalnum() for ch in s) <= 1]
