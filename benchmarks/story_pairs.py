"""Precision and recall of "same story" on the labelled pairs (tests/data/story_pairs.jsonl).

`.venv/bin/python -m benchmarks.story_pairs [--threshold 0.5] [--simhash]`: per language, the
matcher's decision (MinHash estimate of the Jaccard similarity of folded title + lede tokens >=
threshold) against the labels; recall by kind (wire-copy, rewrite, independent) and how many
hard negatives merged.  `--simhash` scores the SimHash alternative (64-bit, Hamming distance
<= k) on the same features for comparison.
"""
from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path
from typing import Any, Callable

from transforms.stories import DEFAULT_THRESHOLD, Signer, features, numbers_agree, similarity, title_numbers

PAIRS = Path(__file__).resolve().parents[1] / "tests" / "data" / "story_pairs.jsonl"
SAME_KINDS = ("wire-copy", "rewrite")


def load(path: Path = PAIRS) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]


def minhash_decider(threshold: float) -> Callable[[dict[str, Any], dict[str, Any]], bool]:
    signer = Signer()

    def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
        sa = signer.sign(features(a["title"], a["summary"]))
        sb = signer.sign(features(b["title"], b["summary"]))
        return similarity(sa, sb) >= threshold and numbers_agree(title_numbers(a["title"]), title_numbers(b["title"]))
    return same


def simhash_decider(k: int) -> Callable[[dict[str, Any], dict[str, Any]], bool]:
    from simhash import Simhash

    def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
        fa, fb = features(a["title"], a["summary"]), features(b["title"], b["summary"])
        if not fa or not fb:
            return False
        return (Simhash(sorted(fa)).distance(Simhash(sorted(fb))) <= k
                and numbers_agree(title_numbers(a["title"]), title_numbers(b["title"])))
    return same


def score(pairs: list[dict[str, Any]], same: Callable[[dict[str, Any], dict[str, Any]], bool]) -> dict[str, Any]:
    """Per language: precision over every pair, recall on wire copies + rewrites, recall on
    independent reports, and merged hard negatives."""
    table: dict[str, Any] = {}
    by_lang: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for p in pairs:
        by_lang[p["language"]].append(p)
    for lang, group in sorted(by_lang.items()):
        decided = [(p, same(p["a"], p["b"])) for p in group]
        tp = sum(1 for p, d in decided if d and p["label"] == "same")
        fp = sum(1 for p, d in decided if d and p["label"] == "different")
        kinds = collections.Counter(p["kind"] for p in group)
        hits = collections.Counter(p["kind"] for p, d in decided if d)
        rewrites = sum(kinds[k] for k in SAME_KINDS)
        table[lang] = {
            "pairs": len(group), "same": sum(p["label"] == "same" for p in group),
            "precision": tp / (tp + fp) if tp + fp else 1.0,
            "recall_rewrites": sum(hits[k] for k in SAME_KINDS) / rewrites if rewrites else 1.0,
            "recall_wire": hits["wire-copy"] / kinds["wire-copy"] if kinds["wire-copy"] else 1.0,
            "recall_rewrite": hits["rewrite"] / kinds["rewrite"] if kinds["rewrite"] else 1.0,
            "recall_independent": f"{hits['independent']}/{kinds['independent']}",
            "hard_negatives_merged": f"{hits['hard-negative']}/{kinds['hard-negative']}",
            "false_merges": fp,
        }
    return table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    ap.add_argument("--simhash", type=int, default=None, metavar="K", help="score SimHash with distance <= K")
    args = ap.parse_args(argv)
    pairs = load()
    decider = simhash_decider(args.simhash) if args.simhash is not None else minhash_decider(args.threshold)
    print(f"{len(pairs)} pairs from {PAIRS.name}; "
          + (f"SimHash k={args.simhash}" if args.simhash is not None else f"MinHash threshold {args.threshold}"))
    print("lang  pairs  same  precision  recall(wire+rewrite)  wire  rewrite  independent  hard-neg merged  false merges")
    for lang, r in score(pairs, decider).items():
        print(f"{lang:4} {r['pairs']:6} {r['same']:5} {r['precision']:10.3f} {r['recall_rewrites']:21.3f} "
              f"{r['recall_wire']:5.2f} {r['recall_rewrite']:8.2f} {r['recall_independent']:>12} "
              f"{r['hard_negatives_merged']:>16} {r['false_merges']:13}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
