"""Language detection for news text, pure Python (no Beam): clean, route by script, then decide.

`LanguageDetector.detect(text, hint)` returns `(code, confidence)`:

1. Cleaning: HTML entities and leftover tags, URLs, e-mail addresses, @handles and digits are
   removed, and ALL-CAPS words are folded to lower case (langdetect ignores all-caps words).
2. Writing-system router: the script with the most letters decides the candidates. A script
   that only one allowed language uses (Hebrew -> he, Greek -> el, Hangul -> ko ...) is decided
   here and never reaches a statistical model. No letters at all -> ("und", 0.0).
3. Arabic script: Sorani Kurdish (`ckb`) is recognised by its own letters (ڕ ڵ ۆ ێ ە), which
   Arabic, Persian and Urdu do not use; the rest goes to langdetect (ar, fa, ur).
   Latin script: Kurmanji Kurdish (`kmr`) is recognised by py3langid's `ku` model (langdetect
   has no Kurdish); the rest goes to langdetect.
4. Screen: py3langid, restricted to the routed script's allowed languages, is asked first (it
   is 5-10x cheaper); when it is at least `screen` (0.995) sure, its answer stands. On the
   corpus langdetect gave the same answer for every such text (95% of sentences, 55% of short
   texts), so this only saves langdetect's time.
5. langdetect (the core detector) decides every other text: seeded and restricted to the
   allowed languages of the routed script, so the same text gets the same answer in every run,
   process and worker. The models read at most the first `MODEL_CHARS` characters.
6. A weak langdetect answer (confidence below `min_confidence`) may be revised by a second
   opinion (py3langid, blended with langdetect) and, last, broken in favour of the feed's `hint`.

Profiles and models are loaded once per process and shared by every detector.
"""
from __future__ import annotations

import functools
import html
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import langdetect
import numpy as np
from langdetect.detector import Detector
from langdetect.detector_factory import DetectorFactory
from langdetect.lang_detect_exception import ErrorCode, LangDetectException
from langdetect.utils.ngram import NGram

UND = "und"
SEED = 0
DEFAULT_MIN_CONFIDENCE = 0.9
# A statistical answer on fewer letters than this is scaled down: headlines are short.
FULL_EVIDENCE_LETTERS = 40
# langdetect averages this many seeded random walks; its default 7 is 2-3x slower for the same
# accuracy here (see docs/language.md).
LANGDETECT_TRIALS = 2
# Weight of langdetect in the blend with the second opinion (py3langid gets the rest).
LANGDETECT_WEIGHT = 0.2
# py3langid's probability at or above which its answer stands and langdetect is not asked: on
# the corpus langdetect (with the blend) gave the same answer for every such text (3,813 of
# 3,813 sentences, 2,206 of 2,206 short texts; see docs/language.md).
DEFAULT_SCREEN = 0.995
# The models read at most this many characters of the cleaned text (about 330 letters), cut at
# a word boundary: enough for any language decision, and long summaries cost no more.
MODEL_CHARS = 400

_PROFILE_DIR = Path(langdetect.__file__).resolve().parent / "profiles"

# Output code -> langdetect profile name (only where they differ).
_PROFILE_NAME = {"zh": "zh-cn"}

# Script -> the languages we can report for it. A script with one language needs no model.
_SCRIPT_LANGS: dict[str, tuple[str, ...]] = {
    "latin": ("af", "ca", "cs", "cy", "da", "de", "en", "es", "et", "fi", "fr", "hr", "hu", "id",
              "it", "kmr", "lt", "lv", "nl", "no", "pl", "pt", "ro", "sk", "sl", "so", "sq", "sv",
              "sw", "tl", "tr", "vi"),
    "arabic": ("ar", "ckb", "fa", "ur"),
    "cyrillic": ("bg", "mk", "ru", "uk"),
    "devanagari": ("hi", "mr", "ne"),
    "hebrew": ("he",),
    "greek": ("el",),
    "bengali": ("bn",),
    "gurmukhi": ("pa",),
    "gujarati": ("gu",),
    "tamil": ("ta",),
    "telugu": ("te",),
    "kannada": ("kn",),
    "malayalam": ("ml",),
    "thai": ("th",),
    "hangul": ("ko",),
    "kana": ("ja",),
    "han": ("zh", "ja"),
}

_SCRIPT_CHARS: dict[str, str] = {
        "latin": "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff",
        "arabic": "\u0620-\u064a\u066e-\u06d5\u06fa-\u06ff\u0750-\u077f\u08a0-\u08ff"
                  "\ufb50-\ufdff\ufe70-\ufefc",
        "cyrillic": "\u0400-\u0481\u048a-\u052f",
        "devanagari": "\u0900-\u0963\u0971-\u097f",
        "hebrew": "\u05d0-\u05ea\u05f0-\u05f2\ufb1d-\ufb4f",
        "greek": "\u0370-\u03ff\u1f00-\u1fff",
        "bengali": "\u0980-\u09e3\u09f0-\u09ff",
        "gurmukhi": "\u0a00-\u0a65\u0a70-\u0a7f",
        "gujarati": "\u0a80-\u0ae5\u0af0-\u0aff",
        "tamil": "\u0b80-\u0be5\u0bf0-\u0bff",
        "telugu": "\u0c00-\u0c65\u0c70-\u0c7f",
        "kannada": "\u0c80-\u0ce5\u0cf0-\u0cff",
        "malayalam": "\u0d00-\u0d65\u0d70-\u0d7f",
        "thai": "\u0e00-\u0e4f\u0e5a-\u0e7f",
        "hangul": "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af",
        "kana": "\u3040-\u30ff",
        "han": "\u3400-\u4dbf\u4e00-\u9fff",
}
_SCRIPT_RE = {name: re.compile(f"[{chars}]") for name, chars in _SCRIPT_CHARS.items()}
# Everything but this script's letters and word separators, to drop other scripts from mixed text.
_FOREIGN_RE = {name: re.compile(f"[^{chars}\\s'\u2019-]+") for name, chars in _SCRIPT_CHARS.items()}
# Latin letters in non-Latin text are mostly names, brands and site boilerplate, while the
# reverse is rare: a non-Latin letter counts this many times when choosing the script.
_NON_LATIN_WEIGHT = 3

SUPPORTED_LANGUAGES: frozenset[str] = frozenset(
    code for codes in _SCRIPT_LANGS.values() for code in codes)
# `ku` in an allowed list means "Kurdish, both scripts, reported as ku".
_KURDISH = ("ckb", "kmr")

# Letters Sorani writes and Arabic, Persian and Urdu do not: ڕ ڵ ۆ ێ ە.
_SORANI_RE = re.compile("[\u0695\u06b5\u06c6\u06ce\u06d5]")

_ENTITY_RE = re.compile(r"&(?:#\d+|#x[0-9a-fA-F]+|[a-zA-Z]{2,8});")
_TAG_RE = re.compile(r"</?[a-zA-Z!][^<>]{0,300}>")
_URL_RE = re.compile(r"(?:[a-zA-Z][a-zA-Z0-9+.-]*://|www\.)\S*")
_EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_HANDLE_RE = re.compile(r"@\w+")
_DIGITS_RE = re.compile(r"[\d_]+")


def clean(text: str) -> str:
    """Keep only what says something about the language: no markup, links, numbers or shouting."""
    if "&" in text:
        text = _ENTITY_RE.sub(lambda m: html.unescape(m.group(0)), text)
    if "<" in text:
        text = _TAG_RE.sub(" ", text)
    if "/" in text or "www." in text:
        text = _URL_RE.sub(" ", text)
    if "@" in text:
        text = _HANDLE_RE.sub(" ", _EMAIL_RE.sub(" ", text))
    text = _DIGITS_RE.sub(" ", text)
    return " ".join(w.lower() if w.isupper() else w for w in text.split())


# Character -> its writing system ("" for none), memoised: what `_SCRIPT_RE` says of it.
_CHAR_SCRIPT: dict[str, str] = {}


def _char_script(ch: str) -> str:
    script = _CHAR_SCRIPT.get(ch)
    if script is None:
        script = _CHAR_SCRIPT[ch] = next(
            (name for name, pattern in _SCRIPT_RE.items() if pattern.match(ch)), "")
    return script


def script_counts(text: str) -> dict[str, int]:
    """Letters per writing system (only systems with at least one letter)."""
    counts: dict[str, int] = {}
    for ch, n in Counter(text).items():
        script = _CHAR_SCRIPT.get(ch)
        if script is None:
            script = _char_script(ch)
        if script:
            counts[script] = counts.get(script, 0) + n
    return counts


@functools.lru_cache(maxsize=None)
def _langdetect_factory(codes: tuple[str, ...]) -> DetectorFactory:
    """A seeded langdetect factory holding only `codes` (at least two); one per process."""
    factory = DetectorFactory()
    profiles = [(_PROFILE_DIR / _PROFILE_NAME.get(c, c)).read_text(encoding="utf-8")
                for c in codes]
    factory.load_json_profile(profiles)
    factory.set_seed(SEED)
    return factory


@functools.lru_cache(maxsize=None)
def _py3langid_model() -> Any:
    """py3langid's full model with normalised probabilities, loaded once per process (about 1 s)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


@functools.lru_cache(maxsize=None)
def _py3langid_restricted(codes: tuple[str, ...]) -> Any:
    """A py3langid identifier over `codes` only, sharing the full model's arrays.

    One per language set and never changed afterwards, so threads of one worker can share it
    (`set_languages` on a shared identifier would race).
    """
    from py3langid.langid import LanguageIdentifier
    full = _py3langid_model()
    nb_ptc, nb_pc, nb_classes = full._full_model
    model = LanguageIdentifier(nb_ptc, nb_pc, nb_classes, full.tk_nextmove, full.tk_output,
                               norm_probs=True, tk_row=full.tk_row)
    model.set_languages(list(codes))
    return model


def _py3langid_labels() -> frozenset[str]:
    return frozenset(_py3langid_model().labels)


def _py3langid_rank(codes: tuple[str, ...], text: str) -> dict[str, float]:
    """py3langid probabilities over `codes` only (deterministic: no sampling)."""
    return dict(_py3langid_restricted(codes).rank(text))


class _Py3Features:
    """py3langid's byte n-gram counts for one text, walked once and scored for any language set.

    `probs(codes)` equals `dict(_py3langid_restricted(codes).rank(text))` (tested): the same
    encoding, feature walk, scoring and normalisation as py3langid 0.4's `_decide` with
    `norm_probs=True`, but the per-byte walk (the costly part) is done once per text rather than
    once per language set (the Kurmanji check, the screen and the blend each need one).
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self._walked = False
        self._visits: Any = None
        self._scale = 1.0

    def probs(self, codes: tuple[str, ...]) -> dict[str, float]:
        from py3langid.langid import visit_counts
        model = _py3langid_restricted(codes)
        if not self._walked:
            encoded = model._encode(self.text)
            self._visits = visit_counts(model.tk_nextmove, model._rowbase, model.tk_output,
                                        encoded)
            self._scale = 1.0 / math.sqrt(len(encoded) or 1)
            self._walked = True
        if self._visits:
            scores = model._sparse_score(self._visits, model.nb_ptc)
            scores *= self._scale
            np.exp(scores - scores.max(), out=scores)
            scores /= scores.sum()
        else:  # no features: py3langid's uniform answer
            scores = np.full(len(model.nb_classes), 1.0 / len(model.nb_classes), dtype=np.float32)
        for i, j in model._alias_pairs:
            scores[i] += scores[j]
            scores[j] = 0.0
        ranked: dict[str, float] = {}
        for lang, score in zip(model.nb_classes, scores.tolist()):
            ranked.setdefault(lang, score)
        return ranked


# Kurmanji is told from every Latin-script language py3langid knows, allowed or not, so that a
# text in a language outside the allowed list is not called Kurmanji for want of rivals.
_KURMANJI_RIVALS = ("af", "ca", "cs", "cy", "da", "de", "en", "es", "et", "fi", "fr", "hr", "hu",
                    "id", "it", "ku", "lt", "lv", "nl", "no", "pl", "pt", "ro", "sk", "sl", "so",
                    "sq", "sv", "sw", "tl", "tr", "vi")


def _profile_to_code(name: str) -> str:
    return "zh" if name.startswith("zh") else name


class LanguageDetector:
    """Deterministic language detection restricted to an allowed list; build once per worker.

    `allowed`: ISO 639-1 codes (plus `ckb`, `kmr`; `ku` means both, reported as `ku`), or None
    for every supported language. `aliases` renames codes on output (e.g. `{"ckb": "ku"}`).
    `second_opinion`: blend py3langid into langdetect answers weaker than `min_confidence`.
    `screen`: py3langid is asked first (it is 5-10x cheaper), and when it gives one of the
    routed script's allowed languages at least this probability its answer stands; langdetect
    decides every other text. None: langdetect on every text that needs a model.
    `min_confidence`: below this a detection is weak, and only then do the second opinion and
    the hint have a say. Confidence is the model's probability times the share of letters in
    the routed script, times min(1, letters / FULL_EVIDENCE_LETTERS) for statistical answers,
    so a three-word headline is never "certain".
    """

    def __init__(self, allowed: Sequence[str] | None = None,
                 aliases: Mapping[str, str] | None = None, second_opinion: bool = True,
                 min_confidence: float = DEFAULT_MIN_CONFIDENCE,
                 screen: float | None = DEFAULT_SCREEN) -> None:
        out_aliases: dict[str, str] = {}
        if allowed is None:
            codes = set(SUPPORTED_LANGUAGES)
        else:
            codes = set()
            for code in allowed:
                if code == "ku":
                    codes.update(_KURDISH)
                    out_aliases.update({k: "ku" for k in _KURDISH})
                else:
                    codes.add(code)
            unknown = sorted(codes - SUPPORTED_LANGUAGES)
            if unknown:
                raise ValueError(f"unsupported language code(s) {unknown}; "
                                 f"supported: {sorted(SUPPORTED_LANGUAGES | {'ku'})}")
        out_aliases.update(aliases or {})
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be within 0..1, not {min_confidence}")
        if screen is not None and not 0.5 < screen <= 1.0:
            raise ValueError(f"screen must be within 0.5..1 (or None), not {screen}")
        self.allowed: frozenset[str] = frozenset(codes)
        self.aliases: dict[str, str] = out_aliases
        self.second_opinion = second_opinion
        self.min_confidence = min_confidence
        self.screen = screen
        # script -> allowed candidates for it (scripts with none are absent)
        self._candidates: dict[str, tuple[str, ...]] = {
            script: tuple(c for c in langs if c in codes)
            for script, langs in _SCRIPT_LANGS.items() if any(c in codes for c in langs)
        }
        # script -> seeded langdetect factory over its non-Kurdish candidates (when two or more);
        # built here so that DoFn.setup() pays for loading, shared by every detector in the process
        self._factories: dict[str, DetectorFactory] = {}
        for script, cands in self._candidates.items():
            statistical = tuple(c for c in cands if c not in _KURDISH)
            if script != "han" and len(statistical) >= 2:
                self._factories[script] = _langdetect_factory(statistical)
        # script -> the py3langid languages among its statistical candidates (two or more)
        self._py3_cands: dict[str, tuple[str, ...]] = {}
        if "kmr" in codes or second_opinion or screen is not None:
            labels = _py3langid_labels()
            for script in self._factories:
                known = tuple(sorted(c for c in self._candidates[script] if c in labels))
                if len(known) >= 2:
                    self._py3_cands[script] = known
                    _py3langid_restricted(known)
            if "kmr" in codes:
                _py3langid_restricted(_KURMANJI_RIVALS)

    def detect(self, text: str, hint: str | None = None) -> tuple[str, float]:
        """(code, confidence in 0..1) for `text`; ("und", 0.0) when there is nothing to go on.

        `hint` (the feed's declared language, after aliasing) only breaks a near-tie in a weak
        detection; it never overrides a confident one and is ignored when not allowed.
        """
        cleaned = clean(text)
        counts = script_counts(cleaned)
        if not counts:
            return UND, 0.0
        weighted = {s: n if s == "latin" else n * _NON_LATIN_WEIGHT for s, n in counts.items()}
        script = max(weighted, key=lambda s: (weighted[s], s))
        share = weighted[script] / sum(weighted.values())
        cands = self._candidates.get(script)
        if not cands:
            return UND, 0.0
        if len(counts) > 1:
            cleaned = _FOREIGN_RE[script].sub(" ", cleaned)
        if len(cleaned) > MODEL_CHARS:
            cut = cleaned[:MODEL_CHARS + 1]
            cleaned = cut.rsplit(None, 1)[0] if " " in cut else cut[:MODEL_CHARS]
        decided = self._by_script(script, cands, cleaned)
        if decided is not None:
            return self._out(decided, share) if decided != UND else (UND, 0.0)
        evidence = share * min(1.0, counts[script] / FULL_EVIDENCE_LETTERS)
        probs = self._statistical(script, cands, cleaned, evidence)
        if not probs:
            return UND, 0.0
        lang, p = max(probs.items(), key=lambda kv: (kv[1], kv[0]))
        if p * evidence < self.min_confidence and hint:
            lang, p = _tie_break(lang, p, probs, hint, self.aliases)
        return self._out(lang, p * evidence)

    def _out(self, lang: str, conf: float) -> tuple[str, float]:
        return self.aliases.get(lang, lang), round(conf, 4)

    def _by_script(self, script: str, cands: tuple[str, ...], text: str) -> str | None:
        """The language when the script (or its letters) alone decide it, else None."""
        if script == "han":
            return "ja" if "ja" in cands and _SCRIPT_RE["kana"].search(text) else cands[0]
        if script == "arabic" and "ckb" in cands and _SORANI_RE.search(text):
            return "ckb"
        if script in self._factories or (script == "latin" and "kmr" in cands):
            return None
        only = [c for c in cands if c not in _KURDISH]
        return only[0] if only else UND

    def _statistical(self, script: str, cands: tuple[str, ...], text: str,
                     evidence: float) -> dict[str, float]:
        """Candidate -> probability from the models (empty when the text has no usable n-grams)."""
        features = _Py3Features(text)
        if script == "latin" and "kmr" in cands:
            kurmanji = features.probs(_KURMANJI_RIVALS).get("ku", 0.0)
            if kurmanji >= 0.5:
                return {"kmr": kurmanji}
        factory = self._factories.get(script)
        if factory is None:  # Kurmanji is the only allowed Latin-script language, and this is not it
            return {}
        known = self._py3_cands.get(script)
        first: dict[str, float] | None = None
        if self.screen is not None and known is not None:
            first = features.probs(known)
            if max(first.values()) >= self.screen:
                return first
        probs = _langdetect(factory, text)
        if (probs and known is not None and self.second_opinion
                and max(probs.values()) * evidence < self.min_confidence):
            probs = _blend(probs, first if first is not None else features.probs(known))
        return probs


def _langdetect(factory: DetectorFactory, text: str) -> dict[str, float]:
    """langdetect's probabilities (seeded, so deterministic); empty when it finds no features."""
    detector = _FastDetector(factory)
    detector.n_trial = LANGDETECT_TRIALS
    detector.append(text)
    try:
        ranked = detector.get_probabilities()
    except LangDetectException:  # no usable n-grams: the text says nothing about its language
        return {}
    return {_profile_to_code(r.lang): r.prob for r in ranked}


# langdetect's per-character normalisation (NGram.normalize), memoised: it is a pure function of
# the character, and calling it costs a binary search over Unicode blocks per character.
_NGRAM_NORMAL: dict[str, str] = {}
_SPACE_RUN_RE = re.compile(" {2,}")


class _FastDetector(Detector):  # type: ignore[misc]  # langdetect ships no type hints
    """langdetect 1.0.x's `Detector` with its three hot loops rewritten, same arithmetic.

    `append`, `cleaning_text`, `_extract_ngrams` and the seeded random walk of `_detect_block`
    do exactly what langdetect 1.0.9 does (same n-grams in the same order, the same calls to the
    seeded `random.Random`, the same floating-point operations in the same order), so the
    probabilities are bit-for-bit those of the stock `Detector` (tested); only the Python-level
    overhead (a method call and a Unicode-block binary search per character, string
    concatenation per character, a method call per random-walk step) is gone.
    """

    text: str
    max_text_length: int

    def append(self, text: str) -> None:
        text = self.URL_RE.sub(" ", text)
        text = self.MAIL_RE.sub(" ", text)
        text = NGram.normalize_vi(text)
        self.text += _SPACE_RUN_RE.sub(" ", text[:self.max_text_length])

    def cleaning_text(self) -> None:
        text = self.text
        latin = sum(1 for ch in text if "A" <= ch <= "z")
        non_latin = sum(1 for ch in text if ch >= "\u0300" and not "\u1e00" <= ch <= "\u1eff")
        if latin * 2 < non_latin:
            self.text = "".join(ch for ch in text if ch < "A" or "z" < ch)

    def _extract_ngrams(self) -> list[str]:
        known = self.word_lang_prob_map
        normal = _NGRAM_NORMAL
        result: list[str] = []
        grams = " "
        capital = False
        for ch in self.text:
            norm = normal.get(ch)
            if norm is None:
                norm = normal[ch] = NGram.normalize(ch)
            ch = norm
            last = grams[-1]
            if last == " ":
                grams = " "
                capital = False
                if ch == " ":
                    continue
            elif len(grams) >= 3:
                grams = grams[1:]
            grams += ch
            if ch.isupper():
                if last.isupper():
                    capital = True
            else:
                capital = False
            if capital:
                continue
            # the 1-, 2- and 3-grams ending here ("" and " " are never profile entries)
            if ch != " " and ch in known:
                result.append(ch)
            if len(grams) >= 2:
                w = grams[-2:]
                if w in known:
                    result.append(w)
                if len(grams) >= 3 and grams in known:
                    result.append(grams)
        return result

    def _detect_block(self) -> None:
        self.cleaning_text()
        ngrams = self._extract_ngrams()
        if not ngrams:
            raise LangDetectException(ErrorCode.CantDetectError, "No features in text.")
        word_probs = self.word_lang_prob_map
        size = len(self.langlist)
        n_trial = self.n_trial
        rand = self.random
        choice = rand.choice
        limit = self.ITERATION_LIMIT
        threshold = self.CONV_THRESHOLD
        langprob = [0.0] * size
        rand.seed(self.seed)
        for _ in range(n_trial):
            prob = list(self.prior_map) if self.prior_map is not None else [1.0 / size] * size
            alpha = self.alpha + rand.gauss(0.0, 1.0) * self.ALPHA_WIDTH
            weight = alpha / self.BASE_FREQ
            factors: dict[str, list[float]] = {}
            i = 0
            while True:
                word = choice(ngrams)
                factor = factors.get(word)
                if factor is None:
                    factor = factors[word] = [weight + p for p in word_probs[word]]
                prob = [p * f for p, f in zip(prob, factor)]
                if i % 5 == 0:
                    total = sum(prob)
                    prob = [p / total for p in prob]
                    if max(prob) > threshold or i >= limit:
                        break
                i += 1
            for j in range(size):
                langprob[j] += prob[j] / n_trial
        self.langprob = langprob


def _blend(probs: dict[str, float], other: dict[str, float]) -> dict[str, float]:
    """Weighted mean of langdetect's and py3langid's probabilities over the same candidates."""
    keys = set(probs) | set(other)
    return {c: LANGDETECT_WEIGHT * probs.get(c, 0.0) + (1 - LANGDETECT_WEIGHT) * other.get(c, 0.0)
            for c in keys}


def _tie_break(lang: str, p: float, probs: dict[str, float], hint: str,
               aliases: Mapping[str, str]) -> tuple[str, float]:
    """The hinted language instead of `lang` if it scored at least half as well."""
    hinted = [c for c in probs if c == hint or aliases.get(c) == hint]
    if not hinted:
        return lang, p
    best = max(hinted, key=lambda c: probs[c])
    return (best, probs[best]) if probs[best] * 2 >= p else (lang, p)
