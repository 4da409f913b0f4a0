"""Accuracy and speed of `transforms.langid` on the shared labelled corpus (issue 4).

Run: `.venv/bin/python -m benchmarks.langid_bench [--corpus DIR] [--repeat N]`.
Prints a markdown table: accuracy per language on full sentences and on short texts (the first
3 to 6 words, 3 + line number mod 4, so the choice is the same on every run), Arabic precision
on short texts, Kurdish accuracy, and texts/s for the detection step alone on one core, for
three set-ups: langdetect alone (no screen, no second opinion), the previous default (langdetect
on every text, py3langid blended into weak answers) and the default (py3langid screen first,
then langdetect with the blend). texts/s are counted in CPU time of this process (fastest of
`--repeat` passes), which a busy shared machine disturbs much less than wall time; wall-time
rates and the load average are printed too. The corpus is test input only, read in place.
"""
from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from transforms.langid import LanguageDetector

ALLOWED = ("ar", "en", "fr", "de", "es", "ru", "tr", "fa", "he", "ur", "ckb", "kmr")
DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "langid"


def short_text(sentence: str, line_number: int) -> str:
    """The headline-like head of a sentence: its first 3 to 6 words, chosen by line number."""
    return " ".join(sentence.split()[:3 + line_number % 4])


def load_corpus(root: Path) -> dict[str, list[str]]:
    """Language -> labelled sentences, from `lingua-sentences/` and `kurdish-dev/`."""
    corpus: dict[str, list[str]] = {}
    for lang in ALLOWED:
        folder = "kurdish-dev" if lang in ("ckb", "kmr") else "lingua-sentences"
        path = root / folder / f"{lang}.txt"
        corpus[lang] = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                        if line.strip()]
    return corpus


@dataclass(frozen=True)
class Result:
    """Predictions for one text set, with the detection time of one pass."""

    gold: list[str]
    predicted: list[str]
    seconds: float
    wall_seconds: float

    def accuracy(self, lang: str | None = None) -> float:
        pairs = [(g, p) for g, p in zip(self.gold, self.predicted) if lang is None or g == lang]
        return sum(g == p for g, p in pairs) / len(pairs)

    def precision(self, lang: str) -> float:
        called = [g for g, p in zip(self.gold, self.predicted) if p == lang]
        return sum(g == lang for g in called) / len(called) if called else 0.0

    def rate(self) -> float:
        return len(self.gold) / self.seconds

    def wall_rate(self) -> float:
        return len(self.gold) / self.wall_seconds


def run(detector: LanguageDetector, texts: Sequence[tuple[str, str]], repeat: int) -> Result:
    """Detect every text `repeat` times (after one warm-up pass); keep the fastest pass."""
    predicted = [detector.detect(text)[0] for _, text in texts]
    best = best_wall = float("inf")
    for _ in range(repeat):
        start, start_wall = time.process_time(), time.perf_counter()
        for _, text in texts:
            detector.detect(text)
        best = min(best, time.process_time() - start)
        best_wall = min(best_wall, time.perf_counter() - start_wall)
    return Result([g for g, _ in texts], predicted, best, best_wall)


# label -> LanguageDetector keyword arguments (besides `allowed`)
SETUPS: dict[str, dict[str, object]] = {
    "langdetect alone": {"second_opinion": False, "screen": None},
    "previous default": {"second_opinion": True, "screen": None},
    "default": {},
}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--repeat", type=int, default=3, help="timed passes; the fastest counts")
    args = parser.parse_args(argv)

    corpus = load_corpus(args.corpus)
    full = [(lang, s) for lang, sentences in corpus.items() for s in sentences]
    short = [(lang, short_text(s, n)) for lang, sentences in corpus.items()
             for n, s in enumerate(sentences)]

    results: dict[str, tuple[Result, Result]] = {}
    for label, kwargs in SETUPS.items():
        detector = LanguageDetector(allowed=ALLOWED, **kwargs)  # type: ignore[arg-type]
        results[label] = (run(detector, full, args.repeat), run(detector, short, args.repeat))

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"Corpus: {args.corpus}; allowed = {' '.join(ALLOWED)}; short = first 3-6 words; "
          f"{os.cpu_count()} CPUs, load average before the table {load}.\n")
    print("| language | n | " + " | ".join(f"sentences ({label}) | short ({label})"
                                         for label in SETUPS) + " |")
    print("|---|---:|" + "---:|" * (2 * len(SETUPS)))
    for lang in ALLOWED:
        cells = [f"{100 * r.accuracy(lang):.1f}%" for pair in results.values() for r in pair]
        print(f"| {lang} | {len(corpus[lang])} | " + " | ".join(cells) + " |")
    rows: list[tuple[str, Callable[[Result], str]]] = [
        ("**overall, all 12**", lambda r: f"{100 * r.accuracy():.2f}%"),
        ("overall, 10 lingua languages", lambda r: f"{100 * _accuracy_except(r, ('ckb', 'kmr')):.2f}%"),
        ("Kurdish (ckb + kmr)", lambda r: f"{100 * _accuracy_only(r, ('ckb', 'kmr')):.2f}%"),
        ("Arabic precision (called ar and is ar)", lambda r: f"{100 * r.precision('ar'):.2f}%"),
        ("texts/s, detection alone, one core (CPU time)", lambda r: f"{r.rate():,.0f}"),
        ("texts/s, wall time (machine shared)", lambda r: f"{r.wall_rate():,.0f}"),
    ]
    for name, cell in rows:
        print(f"| {name} | | "
              + " | ".join(cell(r) for pair in results.values() for r in pair) + " |")


def _accuracy_only(result: Result, langs: tuple[str, ...]) -> float:
    pairs = [(g, p) for g, p in zip(result.gold, result.predicted) if g in langs]
    return sum(g == p for g, p in pairs) / len(pairs)


def _accuracy_except(result: Result, langs: tuple[str, ...]) -> float:
    pairs = [(g, p) for g, p in zip(result.gold, result.predicted) if g not in langs]
    return sum(g == p for g, p in pairs) / len(pairs)


if __name__ == "__main__":
    main()
