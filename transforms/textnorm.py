"""Folding and tokenising for topic queries and keyword counting.

Both the query terms and the article text go through the same two functions, so a term
matches a token when their folded forms agree:

* `fold(text)`: Unicode NFKC (presentation forms and ligatures to plain letters), case fold,
  Latin (and Greek/Cyrillic) diacritics removed (é = e, ç = c, ş = s, î = i), Turkish dotless ı
  folded to i (so `Irak`, `ırak` and `IRAK` agree), and for Arabic script: tashkeel (harakat,
  shadda, sukun, superscript alef, Quranic marks) and tatweel removed, أ إ آ ٱ folded to ا,
  ة to ه, ى to ي, Persian ezafe ۀ to ه (as هٔ); Persian/Kurdish ی and ک folded to Arabic
  ي and ك (same letters, different code points); Arabic-Indic digits to ASCII digits; zero-width joiners and marks removed.
* `tokenize(text)`: a token is a run of letters, digits and combining marks (so a vowelled
  Arabic word stays one token); everything else, including apostrophes and hyphens, separates
  tokens (`l'offensive` is `l` + `offensive`, `Rakka'da` is `rakka` + `da`, `Deir ez-Zor` is
  three tokens). Each token keeps its folded form, its surface form and its character span.

Arabic proclitics (`lookup_keys`): an Arabic-script token can be looked up under every form
left after stripping a proclitic sequence: optionally و or ف, then optionally ب ك or ل, then
optionally the article ال, where ل followed by ال is written لل. A query term is then simply
looked up among those keys, which gives these rules (the contract's, read the way analysts
expect):

* A term written with the article needs the article: `الرقة` matches الرقة بالرقة والرقة
  وبالرقة للرقة فالرقة, but not ورقة (و + رقة, no article) and not رقة.
* A term written without the article matches with or without it: `هجوم` matches هجوم الهجوم
  والهجوم بالهجوم وبهجوم. Analysts write common nouns bare and expect the definite form to
  count; to insist on the article they write it.
* Only proclitics are stripped, never suffixes: `هجوم` does not match هجومها; use `هجوم*`.
* At least two letters must remain after stripping, so short words are not eaten away.

Latin-script tokens are looked up under their folded form only.
"""
from __future__ import annotations

import functools
import re
import unicodedata
from typing import NamedTuple

# --- folding ------------------------------------------------------------------------------

_ARABIC_LETTER_MAP = {
    "أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا",
    "ة": "ه", "ى": "ي",
    "ۀ": "ه",                       # Persian ezafe heh (U+06C0), as هٔ folds to ه
    "ی": "ي", "ک": "ك",
    "ـ": "",                        # tatweel
}
_DROP = {"\u200c", "\u200d", "\u200e", "\u200f", "\u00ad", "\ufeff", "\u2060"}
_DIGITS = {**{chr(0x0660 + i): str(i) for i in range(10)},
           **{chr(0x06F0 + i): str(i) for i in range(10)}}


def _is_arabic_block(ch: str) -> bool:
    cp = ord(ch)
    return (0x0600 <= cp <= 0x06FF or 0x0750 <= cp <= 0x077F or 0x08A0 <= cp <= 0x08FF
            or 0xFB50 <= cp <= 0xFDFF or 0xFE70 <= cp <= 0xFEFF)


def _fold_char(ch: str) -> str:
    """What one (already NFKC-normalised, case-folded) character folds to."""
    if ch in _ARABIC_LETTER_MAP:
        return _ARABIC_LETTER_MAP[ch]
    if ch in _DIGITS:
        return _DIGITS[ch]
    if ch in _DROP:
        return ""
    if ch == "ı":
        return "i"
    if unicodedata.category(ch) == "Mn":
        # combining marks: Latin diacritics written apart, Arabic tashkeel and Quranic marks
        return ""
    if _is_arabic_block(ch):
        return ch                   # never decompose ؤ ئ etc.: only the rules above apply
    decomposed = unicodedata.normalize("NFD", ch)
    if len(decomposed) > 1:
        return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")
    return ch


class _FoldTable(dict[int, str]):
    """A lazily filled `str.translate` table: each code point is worked out once."""

    def __missing__(self, cp: int) -> str:
        folded = _fold_char(chr(cp))
        self[cp] = folded
        return folded


_TABLE = _FoldTable()


def fold(text: str) -> str:
    """Fold `text` for matching (see the module docstring); lengths may change."""
    return unicodedata.normalize("NFKC", text).casefold().translate(_TABLE)


# --- tokenising ---------------------------------------------------------------------------

_MARKS = "\u0300-\u036f\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u08d3-\u08ff\u200c\u200d"
TOKEN_RE = re.compile(rf"(?:[^\W_]|[{_MARKS}])+")


class Token(NamedTuple):
    folded: str
    surface: str
    start: int
    end: int


@functools.lru_cache(maxsize=1 << 17)
def fold_token(surface: str) -> str:
    """Folded form of one token; characters that fold to separators are dropped."""
    folded = fold(surface)
    if TOKEN_RE.fullmatch(folded):
        return folded
    return "".join(TOKEN_RE.findall(folded))


# Arabic phrase signs that Unicode gives no decomposition (so NFKC leaves them, as a symbol)
_PHRASE_SIGNS = {
    "\ufdfd": "بسم الله الرحمن الرحيم",
    "\ufdfe": "سبحانه وتعالى",
    "\ufdff": "عز وجل",
}


def tokenize(text: str) -> list[Token]:
    """Tokens of `text` with folded form, surface form and span; empty folds are skipped.

    Compatibility characters are expanded (NFKC) *before* splitting, so a ligature that stands
    for several words gives several tokens (`ﷺ` is صلى الله عليه وسلم, `﷽` is بسم الله الرحمن
    الرحيم, a symbol that would otherwise vanish). Spans and surfaces stay those of `text`:
    the tokens of one ligature all share its span.
    """
    if unicodedata.is_normalized("NFKC", text) and not any(ch in text for ch in _PHRASE_SIGNS):
        return _tokens(text, None)
    pieces: list[str] = []
    origin: list[int] = []          # index in `text` of each character of the expanded text
    for i, ch in enumerate(text):
        expanded = _PHRASE_SIGNS.get(ch) or unicodedata.normalize("NFKC", ch)
        pieces.append(expanded)
        origin.extend([i] * len(expanded))
    origin.append(len(text))
    return _tokens("".join(pieces), origin, text)


def token_surfaces(text: str) -> list[str] | None:
    """What `tokenize` reads as tokens when `text` needs no compatibility expansion (the
    common case): the surface of each, in order, before dropping those whose `fold_token`
    is empty (tokenize skips them). None when `text` needs `tokenize` itself."""
    if unicodedata.is_normalized("NFKC", text) and not any(ch in text for ch in _PHRASE_SIGNS):
        return TOKEN_RE.findall(text)
    return None


def _tokens(norm: str, origin: list[int] | None, text: str = "") -> list[Token]:
    tokens: list[Token] = []
    for m in TOKEN_RE.finditer(norm):
        if origin is None:
            start, end, surface = m.start(), m.end(), m.group()
        else:
            start, end = origin[m.start()], origin[m.end() - 1] + 1
            surface = text[start:end]
        folded = fold_token(m.group())
        if folded:
            tokens.append(Token(folded, surface, start, end))
    return tokens


# --- Arabic proclitics --------------------------------------------------------------------

ARTICLE = "ال"
_MIN_STEM = 2


def _proclitic_prefixes() -> tuple[tuple[str, bool], ...]:
    """(written prefix, ends with the article) for every stacked proclitic sequence."""
    out: set[tuple[str, bool]] = set()
    for conj in ("", "و", "ف"):
        for prep in ("", "ب", "ك", "ل"):
            out.add((conj + prep, False))
            out.add((conj + ("لل" if prep == "ل" else prep + ARTICLE), True))
    out.discard(("", False))
    # longest first, for readability of the generated keys only
    return tuple(sorted(out, key=lambda p: (-len(p[0]), p[0])))


PROCLITIC_PREFIXES = _proclitic_prefixes()


def is_arabic(token: str) -> bool:
    """True when the (folded) token starts with an Arabic-script letter."""
    return bool(token) and _is_arabic_block(token[0])


@functools.lru_cache(maxsize=1 << 17)
def lookup_keys(token: str) -> tuple[str, ...]:
    """Every key a folded token can be looked up under (itself first).

    For `وبالرقة`: itself, `بالرقة` (و stripped), `الرقة` (وب stripped), `رقة` (وبال
    stripped). For `للرقة`: itself, `لرقة`, and `رقة` plus `الرقة` (لل is ل + ال).
    """
    keys = [token]
    if not is_arabic(token):
        return tuple(keys)
    for prefix, has_article in PROCLITIC_PREFIXES:
        if len(token) - len(prefix) >= _MIN_STEM and token.startswith(prefix):
            stem = token[len(prefix):]
            keys.append(stem)
            if has_article:
                keys.append(ARTICLE + stem)
    return tuple(dict.fromkeys(keys))


def wildcard_letters(prefix: str) -> int:
    """Letters that count towards a wildcard's minimum: a leading Arabic article does not."""
    if is_arabic(prefix) and prefix.startswith(ARTICLE):
        prefix = prefix[len(ARTICLE):]
    return sum(1 for ch in prefix if ch.isalpha())
