"""End-to-end batch throughput: `mediamon run` on each local runner beside a plain-Python loop.

Run: `.venv/bin/python -m benchmarks.pipeline_bench [--sizes 100000,1000000] [--quick] [--cases ...]`.

For each size N it generates N JSONL items (titles of 6-12 words, summaries of 25-45 words, in
ar/en/fr/tr/ku/fa, about a third on the Raqqa offensive, ~10% re-reads of an earlier item under
a syndicating source) and a config with topics and keywords like configs/demo.yaml. Then:

- each Beam case runs as a subprocess `python -m pipeline run CFG --quiet --summary S -- ARGS`
  inside a small wrapper process, which reports `getrusage(RUSAGE_CHILDREN).ru_maxrss` (the
  largest single process of the tree); the benchmark also samples the summed RSS of the whole
  process tree from /proc every 0.2 s (workers included) and reports its peak;
- the plain loop does the same per-item work with the same pure functions, stage by stage
  (parse JSON item + ids, dedup by id in a dict, LanguageDetector.detect, Tagger.tag, window
  counting, writing the JSONL records), so each stage's time is measured on its own; it is
  also timed with the language detection left out, to show that stage's share.

The result is a markdown table on stdout (and `--readme` rewrites benchmarks/README.md's table).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

ROOT = Path(__file__).resolve().parents[1]

# Small hand-written word banks (not copied from any corpus): content words per language.
WORDS: dict[str, list[str]] = {
    "en": ("government minister said people city forces military attack residents report week "
           "officials talks economy market prices water school hospital children families "
           "support president election council security border aid agency announced local "
           "during after before against between country region international police camp "
           "workers village streets power statement meeting plan years new several many").split(),
    "fr": ("gouvernement ministre selon habitants ville forces militaires attaque semaine "
           "responsables négociations économie marché prix eau école hôpital enfants familles "
           "soutien président élection conseil sécurité frontière aide agence annoncé pendant "
           "après avant contre entre pays région internationale police camp travailleurs "
           "village rues pouvoir déclaration réunion plan années nouveau plusieurs beaucoup").split(),
    "tr": ("hükümet bakan göre halkı şehir güçleri askeri saldırı sakinleri haftası yetkililer "
           "görüşmeler ekonomi piyasa fiyatlar su okul hastane çocuklar aileler destek "
           "cumhurbaşkanı seçim meclis güvenlik sınır yardım ajansı açıkladı sırasında sonra "
           "önce karşı arasında ülke bölge uluslararası polis kamp işçiler köy sokaklar").split(),
    "ku": ("hikûmet wezîr li gorî xelk bajar hêz leşkerî êrîş niştecih hefte berpirsiyar "
           "danûstandin aborî bazar biha av dibistan nexweşxane zarok malbat piştgirî serok "
           "hilbijartin meclîs ewlehî sînor alîkarî ajans ragihand dema piştî berî dijî "
           "navbera welat herêm navneteweyî polîs kamp karker gund kolan hêz daxuyanî").split(),
    "ar": ("الحكومة الوزير قال السكان المدينة القوات العسكرية هجوم الأسبوع المسؤولين "
           "المحادثات الاقتصاد السوق الأسعار المياه المدرسة المستشفى الأطفال العائلات "
           "الدعم الرئيس الانتخابات المجلس الأمن الحدود المساعدات وكالة أعلن خلال بعد قبل "
           "ضد بين البلاد المنطقة الدولية الشرطة المخيم العمال القرية الشوارع بيان اجتماع").split(),
    "fa": ("دولت وزیر گفت مردم شهر نیروهای نظامی حمله ساکنان هفته مقامات مذاکرات اقتصاد "
           "بازار قیمت آب مدرسه بیمارستان کودکان خانواده‌ها حمایت رئیس‌جمهور انتخابات "
           "شورا امنیت مرز کمک خبرگزاری اعلام کرد در طول پس از پیش از علیه میان کشور منطقه "
           "بین‌المللی پلیس اردوگاه کارگران روستا خیابان‌ها بیانیه نشست").split(),
}
RAQQA: dict[str, list[str]] = {
    "en": ["Raqqa", "offensive", "battle", "Syrian Democratic Forces", "SDF", "civilians fled", "assault"],
    "fr": ["Rakka", "offensive", "bataille", "FDS", "déplacés", "assaut"],
    "tr": ["Rakka", "saldırısı", "SDG", "sivilleri", "operasyon"],
    "ku": ["Reqayê", "êrîşa", "şer", "Hêzên Sûriya Demokratîk", "sivîl"],
    "ar": ["الرقة", "هجوم", "معارك", "قوات سوريا الديمقراطية", "مدنيين", "نزوح", "بالرقة"],
    "fa": ["رقه", "حمله", "نبرد", "نیروهای دموکراتیک سوریه", "غیرنظامیان"],
}
LANGUAGE_MIX = {"ar": 0.30, "en": 0.25, "fr": 0.12, "tr": 0.12, "ku": 0.11, "fa": 0.10}
DUPLICATE_SHARE = 0.10
RAQQA_SHARE = 0.35
SOURCES = 40
DAYS = 120  # published spread: distinct windows (keys) stay bounded as N grows

CONFIG = """\
name: pipeline-bench
sources:
  jsonl: {items}
language:
  allowed: [ar, en, fr, ku, tr, fa]
topics:
  - id: raqqa-offensive
    name: Raqqa offensive
    query: '(الرقة OR Raqqa OR Rakka OR Reqa* OR Rakka*) AND (هجوم OR معارك OR معركة OR offensive OR battle OR assault OR assaut OR bataille OR şer OR êrîş* OR saldırı*)'
  - id: displacement
    name: Displacement of civilians
    query: 'مدنيين OR نزوح OR civilians NEAR/6 (leave OR left OR fled OR displaced) OR déplacés OR displaced'
  - id: elections
    name: Elections
    query: 'election OR élection OR seçim OR hilbijartin OR الانتخابات OR انتخابات'
  - id: health
    name: Health services
    query: '(hospital OR hôpital OR hastane OR nexweşxane OR المستشفى OR بیمارستان) AND NOT title:market'
  - id: border-aid
    name: Aid at the border
    query: '(border OR frontière OR sınır OR sînor OR الحدود OR مرز) NEAR/8 (aid OR aide OR yardım OR alîkarî OR المساعدات OR کمک)'
keywords:
  - id: raqqa
    forms: [الرقة, Raqqa, Rakka, Raqa, Reqa, Reqayê, رقه]
  - id: sdf
    forms: [قوات سوريا الديمقراطية, Syrian Democratic Forces, SDF, FDS, SDG, Hêzên Sûriya Demokratîk]
  - id: civilians
    forms: [civilians, civils, sivilleri, sivîl, مدنيين, غیرنظامیان]
  - id: aid
    forms: [aid, aide, yardım, alîkarî, المساعدات, کمک]
windows:
  size: 1d
  allowed_lateness: 7d
sinks:
  - {{type: jsonl, path: out/articles.jsonl, what: articles}}
  - {{type: jsonl, path: out/counts.jsonl, what: counts}}
  - {{type: jsonl, path: out/topics.jsonl, what: topics}}
  - {{type: jsonl, path: out/dead_letters.jsonl, what: dead_letters}}
"""

CASES: dict[str, list[str]] = {
    "default (FnApiRunner)": [],
    "2 workers, multi_processing": ["--direct_num_workers=2", "--direct_running_mode=multi_processing"],
    "PortableRunner, LOOPBACK": ["--runner=PortableRunner", "--job_endpoint=embed",
                                 "--environment_type=LOOPBACK"],
}


def _text(rng: random.Random, lang: str, words: int, raqqa: bool) -> str:
    bank = WORDS[lang]
    out = [rng.choice(bank) for _ in range(words)]
    if raqqa:
        for _ in range(max(1, words // 10)):
            out.insert(rng.randrange(len(out) + 1), rng.choice(RAQQA[lang]))
    return " ".join(out)


def generate(n: int, path: Path, seed: int = 8) -> None:
    """N JSONL items: `DUPLICATE_SHARE` of them re-read an earlier item (same URL, other source)."""
    rng = random.Random(seed)
    langs, weights = zip(*LANGUAGE_MIX.items())
    start = 1_483_228_800  # 2017-01-01T00:00:00Z
    recent: list[dict[str, str]] = []
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            if recent and rng.random() < DUPLICATE_SHARE:
                item = dict(rng.choice(recent), source=f"syndicator-{rng.randrange(5)}")
            else:
                lang = rng.choices(langs, weights)[0]
                raqqa = rng.random() < RAQQA_SHARE
                moment = start + rng.randrange(DAYS * 86_400)
                item = {
                    "url": f"https://news{rng.randrange(SOURCES)}.example/{lang}/{i}?utm_source=rss",
                    "title": _text(rng, lang, rng.randint(6, 12), raqqa),
                    "summary": "<p>" + _text(rng, lang, rng.randint(25, 45), raqqa) + "</p>",
                    "published": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment)),
                    "source": f"source-{rng.randrange(SOURCES)}",
                }
                if rng.random() < 0.5:
                    item["language"] = lang
                recent.append(item)
                if len(recent) > 5_000:
                    recent.pop(rng.randrange(len(recent)))
            fh.write(json.dumps(item, ensure_ascii=False) + "\n")


def write_config(folder: Path, items: Path) -> Path:
    path = folder / "bench.yaml"
    path.write_text(CONFIG.format(items=items.name), encoding="utf-8")
    return path


# ---------------------------------------------------------------- memory of a process tree

def _tree_rss_kib(root: int) -> int:
    """Summed VmRSS (KiB) of `root` and all its descendants, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


@dataclass
class Result:
    name: str
    items: int
    seconds: float
    max_rss_mib: float       # getrusage(RUSAGE_CHILDREN): the largest single process
    tree_rss_mib: float      # sampled sum over the whole process tree
    summary: dict

    @property
    def rate(self) -> float:
        return self.items / self.seconds


WRAPPER = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(rc)")


def run_case(name: str, config: Path, beam_args: Sequence[str], n: int) -> Result:
    summary = config.parent / "summary.json"
    cmd = [sys.executable, "-c", WRAPPER, sys.executable, "-m", "pipeline", "run", str(config),
           "--quiet", "--summary", str(summary), "--", *beam_args]
    peak = 0
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.2):
            peak = max(peak, _tree_rss_kib(proc.pid))
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    seconds = time.monotonic() - started
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed ({proc.returncode}):\n{err[-3000:]}")
    max_rss_kib = int(err.strip().splitlines()[-1])
    return Result(name, n, seconds, max_rss_kib / 1024, peak / 1024, json.loads(summary.read_text()))


# ---------------------------------------------------------------- the plain loop

def plain_loop(config_path: Path, detect: bool = True) -> tuple[dict[str, float], dict, float]:
    """Same per-item work as the pipeline, stage by stage: (seconds per stage, summary, max RSS MiB)."""
    from pipeline.config import load_config
    from transforms.counts import windows_of
    from transforms.dedup import preference
    from transforms.langid import LanguageDetector
    from transforms.language import detection_text
    from transforms.parse import article_from_item
    from transforms.records import Article, DeadLetter, RawItem
    from transforms.topic_matcher import Tagger
    from transforms.timeutil import from_epoch, now_iso, to_epoch

    config = load_config(config_path)
    times: dict[str, float] = {}

    def timed(stage: str, fn: Callable[[], object]) -> None:
        t0 = time.perf_counter()
        fn()
        times[stage] = time.perf_counter() - t0

    parsed: list[Article | DeadLetter] = []
    kept: dict[str, Article] = {}
    seen: dict[str, int] = {}
    articles: list[Article] = []
    keyword_counts: dict[tuple, list[int]] = {}
    topic_counts: dict[tuple, int] = {}

    def parse() -> None:
        fetched = now_iso()
        for path in config.sources.jsonl:
            with path.open("rb") as fh:
                for line in fh:
                    if line.strip():
                        parsed.append(article_from_item(RawItem(source=path.name, data=line, fetched=fetched)))

    def dedup() -> None:
        for a in parsed:
            if isinstance(a, Article):
                seen[a.id] = seen.get(a.id, 0) + 1
                if a.id not in kept or preference(a) < preference(kept[a.id]):
                    kept[a.id] = a

    detector = LanguageDetector(allowed=config.language.allowed, aliases=dict(config.language.aliases),
                                second_opinion=config.language.second_opinion)
    tagger = Tagger(config.topics, config.keywords, config.variants)

    def language() -> None:
        for i, a in enumerate(kept.values()):
            code, conf = detector.detect(detection_text(a), hint=a.language_hint) if detect else ("und", 0.0)
            articles.append(a.replace(language=code, language_confidence=conf))

    def tag() -> None:
        for i, a in enumerate(articles):
            r = tagger.tag(a.title, a.summary)
            articles[i] = a.replace(topics=r.topics, keywords=tuple(k for k, _ in r.keyword_mentions),
                                    keyword_mentions=r.keyword_mentions, evidence=r.evidence)

    def count() -> None:
        size, period = config.windows.size, config.windows.period
        for a in articles:
            for win in windows_of(to_epoch(a.published), size, period):
                for kw, mentions in a.keyword_mentions:
                    acc = keyword_counts.setdefault((win, kw, a.language), [0, 0])
                    acc[0] += 1
                    acc[1] += mentions
                for topic in a.topics:
                    key = (win, topic, a.language)
                    topic_counts[key] = topic_counts.get(key, 0) + 1

    def write() -> None:
        out = Path(tempfile.mkdtemp(prefix="plain-"))
        with (out / "articles.jsonl").open("w", encoding="utf-8") as fh:
            for a in articles:
                fh.write(json.dumps(a.to_json(), ensure_ascii=False) + "\n")
        with (out / "dead_letters.jsonl").open("w", encoding="utf-8") as fh:
            for d in parsed:
                if isinstance(d, DeadLetter):
                    fh.write(json.dumps(d.to_json(), ensure_ascii=False) + "\n")
        with (out / "counts.jsonl").open("w", encoding="utf-8") as fh:
            for ((s, e), kw, lang), (n, m) in keyword_counts.items():
                fh.write(json.dumps({"window_start": from_epoch(s), "window_end": from_epoch(e), "keyword": kw,
                                     "language": lang, "articles": n, "mentions": m}) + "\n")
        with (out / "topics.jsonl").open("w", encoding="utf-8") as fh:
            for ((s, e), topic, lang), n in topic_counts.items():
                fh.write(json.dumps({"window_start": from_epoch(s), "window_end": from_epoch(e), "topic": topic,
                                     "language": lang, "articles": n}) + "\n")

    for stage, fn in (("parse", parse), ("dedup", dedup), ("language", language), ("tag", tag),
                      ("count", count), ("write", write)):
        timed(stage, fn)
    by_language: dict[str, int] = {}
    for a in articles:
        by_language[a.language] = by_language.get(a.language, 0) + 1
    summary = {"items_read": len(parsed), "articles": len(articles),
               "duplicates": sum(seen.values()) - len(kept),
               "dead_letters": sum(isinstance(d, DeadLetter) for d in parsed), "by_language": by_language}
    return times, summary, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


PLAIN = ("import json, sys; from pathlib import Path; from benchmarks.pipeline_bench import plain_loop; "
         "print(json.dumps(plain_loop(Path(sys.argv[1]), detect=sys.argv[2] == 'on')))")


def run_plain(config: Path, detect: bool) -> tuple[dict[str, float], dict, float]:
    """The plain loop in a fresh process, so its peak memory is its own."""
    proc = subprocess.run([sys.executable, "-c", PLAIN, str(config), "on" if detect else "off"],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"plain loop failed:\n{proc.stderr[-3000:]}")
    times, summary, rss = json.loads(proc.stdout.strip().splitlines()[-1])
    return times, summary, rss


# ---------------------------------------------------------------- report

def table(n: int, plain: tuple[dict[str, float], dict, float], plain_nodetect: tuple[dict[str, float], dict, float],
          results: list[Result]) -> str:
    times, _, rss = plain
    plain_s = sum(times.values())
    lines = [f"### {n:,} items", "",
             "| case | seconds | items/s | x plain loop | peak RSS, largest process (MiB) | peak RSS, process tree (MiB) |",
             "|---|---:|---:|---:|---:|---:|",
             f"| plain Python loop | {plain_s:.1f} | {n / plain_s:,.0f} | 1.0 | {rss:.0f} | {rss:.0f} |"]
    for r in results:
        lines.append(f"| {r.name} | {r.seconds:.1f} | {r.rate:,.0f} | {r.seconds / plain_s:.1f} "
                     f"| {r.max_rss_mib:.0f} | {r.tree_rss_mib:.0f} |")
    nd_times, _, _ = plain_nodetect
    nd_s = sum(nd_times.values())
    lines += ["", "Plain loop, time per stage (s):", "",
              "| " + " | ".join(times) + " | total | articles/s, detection on | articles/s, detection off |",
              "|" + "---:|" * (len(times) + 3),
              "| " + " | ".join(f"{t:.2f}" for t in times.values())
              + f" | {plain_s:.1f} | {n / plain_s:,.0f} | {n / nd_s:,.0f} |"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000", help="comma-separated item counts (default 100000)")
    parser.add_argument("--quick", action="store_true", help="10,000 items, default runner only")
    parser.add_argument("--cases", help="comma-separated case numbers (1 default, 2 two workers, 3 portable)")
    parser.add_argument("--keep", type=Path, help="generate into this folder and keep it")
    args = parser.parse_args(argv)
    sizes = [10_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    names = list(CASES)
    chosen = [names[0]] if args.quick else names
    if args.cases:
        chosen = [names[int(c) - 1] for c in args.cases.split(",")]
    out = [f"Command: `.venv/bin/python -m benchmarks.pipeline_bench {' '.join(argv if argv is not None else sys.argv[1:])}`".rstrip()]
    for n in sizes:
        folder = args.keep or Path(tempfile.mkdtemp(prefix="pipeline-bench-"))
        folder.mkdir(parents=True, exist_ok=True)
        items = folder / "items.jsonl"
        generate(n, items)
        config = write_config(folder, items)
        plain = run_plain(config, detect=True)
        plain_nodetect = run_plain(config, detect=False)
        print(f"{n:,} plain loop: {sum(plain[0].values()):.1f}s {plain[0]}", file=sys.stderr, flush=True)
        results = []
        for name in chosen:
            r = run_case(name, config, CASES[name], n)
            for key in ("items_read", "articles", "duplicates", "dead_letters"):
                if r.summary[key] != plain[1][key]:
                    raise RuntimeError(f"{name}: {key} {r.summary[key]} != plain loop's {plain[1][key]}")
            print(f"{n:,} {name}: {r.seconds:.1f}s, {r.rate:,.0f} items/s, rss {r.max_rss_mib:.0f}/"
                  f"{r.tree_rss_mib:.0f} MiB", file=sys.stderr, flush=True)
            results.append(r)
        out.append(table(n, plain, plain_nodetect, results))
    print("\n\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
