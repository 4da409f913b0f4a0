"""The streaming graph's story stage (`transforms/stories.py: _StreamingStoriesFn`): CPU per
article once a language remembers N articles, and the state a bundle commits.

    .venv/bin/python -m benchmarks.stream_stories_bench --remembered 2000 20000 50000

Articles: `stream_bench`'s ten templates (six languages' wording, eight places, random numbers),
one second apart, all under one key (the stage keys by language).  The state is held as the
Python SDK holds a cached ReadModifyWriteState (the object, no decoding per element); what a
bundle commits is timed apart: one `PickleCoder` encoding of the state.
"""
from __future__ import annotations

import argparse
import pickle
import time
from typing import Any

from benchmarks.stream_bench import make_items
from transforms.records import Article
from transforms.stories import StoryOptions, _StreamingStoriesFn
from transforms.timeutil import from_epoch


class _CachedState:
    def __init__(self) -> None:
        self.value: Any = None

    def read(self) -> Any:
        return self.value

    def write(self, value: Any) -> None:
        self.value = value

    def clear(self) -> None:
        self.value = None


class _Timer:
    def set(self, at: Any) -> None:
        pass


def articles(n: int) -> list[Article]:
    out = []
    for i, item in enumerate(x for x in make_items(int(n * 1.03) + 10, 0, seed=11) if x):
        if len(out) == n:
            break
        at = from_epoch(1_500_000_000 + i)
        out.append(Article(id=f"a{i}", url=item["url"], title=item["title"], summary=item["summary"],
                           source=item["source"], published=at, fetched=at, language="xx"))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--remembered", type=int, nargs="+", default=[2000, 20000, 50000])
    ap.add_argument("--probe", type=int, default=500, help="articles timed after the fill")
    args = ap.parse_args(argv)
    print("| remembered | CPU per article | state a bundle commits (pickled) | fill (CPU) |")
    print("|---:|---:|---:|---:|")
    for n in args.remembered:
        fn = _StreamingStoriesFn(StoryOptions())
        fn.setup()
        state, timer = _CachedState(), _Timer()
        arts = articles(n + args.probe)
        t0 = time.process_time()
        for a in arts[:n]:
            for _ in fn.process(("xx", a), memory=state, expiry=timer):
                pass
        fill = time.process_time() - t0
        t0 = time.process_time()
        for a in arts[n:]:
            for _ in fn.process(("xx", a), memory=state, expiry=timer):
                pass
        per = (time.process_time() - t0) / args.probe
        t0 = time.process_time()
        data = pickle.dumps(state.value)
        commit = time.process_time() - t0
        print(f"| {n:,} | {per * 1e3:.2f} ms | {commit * 1e3:.0f} ms, {len(data) / 1e6:.1f} MB | {fill:.1f} s |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
