"""Builds tests/data/story_pairs.jsonl: labelled same-story / different-story pairs (provenance).

Run from the repo root: `.venv/bin/python tests/data/build_story_pairs.py` (needs ../shared/corpus).
Every text in the output is real published text, or a documented edit of real text:

* `independent` (label same): two real outlets' reports of one event, found among the 469 real
  headlines + ledes of ../shared/corpus/topics-dev/labelled.jsonl and judged by hand (HAND below).
* `hard-negative` (label different): real pairs from the same file, same topic and place, that are
  a different event, day or follow-up (Astana round 19 vs 21, 3 vs 6 French sentenced...), judged
  by hand; plus `same-topic`: random pairs sharing a topic label (different items of a set
  collected without duplicates), and `same-feed`: two items of one real feed snapshot
  (../shared/corpus/feeds: same outlet, same day).
* `wire-copy` and `rewrite` (label same): a real item and a copy edited the way syndication edits
  (outlet tag appended, clauses reordered, lede replaced by a later sentence or cut, a word
  dropped or a prefix such as "BREAKING:" added, diacritics / Arabic hamza, tashkeel, proclitics
  spelled differently). The edits are generated with a fixed seed: they are not real copies, the
  texts they start from are.
"""
from __future__ import annotations

import itertools
import json
import random
import re
import sys
import unicodedata
from pathlib import Path

import feedparser

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus"
OUT = Path(__file__).with_name("story_pairs.jsonl")
LANGS = ("ar", "en", "fr", "tr")

# (line a, line b, label, kind, note): 0-based lines of topics-dev/labelled.jsonl, judged by hand
HAND = [
    (112, 113, "same", "independent", "Russia publishes the de-escalation memorandum (May 2017)"),
    (415, 416, "same", "independent", "Gulf states cut ties with Qatar (5 June 2017)"),
    (415, 417, "same", "independent", "Gulf states cut ties with Qatar"),
    (416, 417, "same", "independent", "Gulf states cut ties with Qatar"),
    (415, 419, "same", "independent", "Gulf states cut ties with Qatar"),
    (416, 419, "same", "independent", "Gulf states cut ties with Qatar"),
    (417, 419, "same", "independent", "Gulf states cut ties with Qatar"),
    (132, 133, "same", "independent", "Turkey-backed rebels advance on al-Bab"),
    (95, 101, "same", "independent", "sarin attack in Idlib (Khan Shaykhun), about 100 dead"),
    (61, 62, "same", "independent", "siege of Deir ez-Zor military airport broken"),
    (281, 282, "same", "independent", "OPCW: regime responsible for the Douma chlorine attack (Jan 2023)"),
    (423, 428, "same", "independent", "SDF drive IS from one of its strongholds"),
    (273, 274, "same", "independent", "coalition strike on Deir ez-Zor: 10 civilians incl. 4 children"),
    (171, 172, "different", "hard-negative", "two coalition civilian-toll reports (1,335 vs 855)"),
    (168, 174, "different", "hard-negative", "civilian-toll report vs coalition admission (800)"),
    (3, 12, "different", "hard-negative", "Raqqa: advance in the old city vs liberation celebrated"),
    (1, 3, "different", "hard-negative", "Raqqa: IS pushes back vs forces advance, different days"),
    (4, 11, "different", "hard-negative", "Raqqa attacks vs Tabqa taken"),
    (10, 18, "different", "hard-negative", "Tabqa retaken vs civilians flee Raqqa"),
    (119, 121, "different", "hard-negative", "Astana round 19 vs round 21 (follow-up)"),
    (110, 119, "different", "hard-negative", "Astana 22 vs round 19"),
    (115, 119, "different", "hard-negative", "an Astana round vs round 19"),
    (439, 441, "different", "hard-negative", "3 French sentenced vs rising to 6 (follow-up)"),
    (440, 442, "different", "hard-negative", "death sentence vs life sentence, Iraqi court"),
    (282, 283, "different", "hard-negative", "OPCW 2023 attribution vs 2018 interim report on Douma"),
    (24, 28, "different", "hard-negative", "SDF advance in western Raqqa countryside vs displacement"),
    (206, 211, "different", "hard-negative", "OPCW access to Douma refused vs investigation opened"),
    (198, 199, "different", "hard-negative", "oil field near Deir ez-Zor vs assault on the airport siege"),
    (204, 205, "different", "hard-negative", "14 civilians killed overnight in Ghouta vs over 1,000 in the offensive"),
    (275, 279, "different", "hard-negative", "coalition kills 3 civilians vs 106 civilians in air strike"),
    (273, 279, "different", "hard-negative", "Deir ez-Zor strike 10 dead vs 106 dead"),
    (387, 389, "different", "hard-negative", "3 terrorists vs 6 terrorists neutralised (follow-up)"),
    (274, 275, "different", "hard-negative", "10 civilians vs 3 civilians"),
    (277, 279, "different", "hard-negative", "5 dead vs 106 dead"),
    (385, 389, "different", "hard-negative", "17 killed vs 6 neutralised"),
]
SKIPPED = {(414, 415), (414, 416), (414, 417), (414, 419), (41, 43), (40, 42), (326, 327), (237, 239),
           (210, 211), (218, 222), (427, 429), (426, 427), (238, 241), (267, 269), (267, 270), (269, 270),
           (358, 360), (223, 226)}   # judgement calls: could be one event or two; left out

FEEDS = {"ar": ["aljazeera-net-20260129.xml", "hespress.xml", "raialyoum.xml", "skynewsarabia.xml"],
         "en": ["aljazeera-english-2026.xml", "guardian-us-2018.rss", "mehrnews-english-2026.xml",
                "nytimes-homepage.xml", "breakingnews-ie-business.xml"],
         "fr": ["lemonde-une-2017.xml", "leparisien-une-2017.xml", "lejdd-lefil-culture-2017.xml", "rue89.xml"],
         "tr": ["haber7.xml"]}
OUTLETS = {"ar": ["الجزيرة نت", "سكاي نيوز عربية", "عنب بلدي", "RT Arabic"],
           "en": ["Reuters", "Al Jazeera", "AP News", "The Daily Star"],
           "fr": ["Le Figaro", "France 24", "L'Orient-Le Jour", "AFP"],
           "tr": ["Anadolu Ajansı", "Hürriyet", "Sabah", "TRT Haber"]}
PREFIX = {"ar": ["عاجل:", "فيديو:", "بالصور:"], "en": ["BREAKING:", "UPDATE:", "WATCH:"],
          "fr": ["DIRECT.", "VIDEO.", "INFO FRANCE 24 -"], "tr": ["SON DAKİKA:", "Son dakika haberi:", "FLAŞ:"]}


def clean(html: str) -> str:
    text = re.sub(r"<[^>]+>", " ", html or "")
    text = re.sub(r"The post .* appeared first on .*", "", text)
    return " ".join(text.split())


def feed_items(lang: str) -> list[dict]:
    out = []
    for name in FEEDS[lang]:
        parsed = feedparser.parse((CORPUS / "feeds" / lang / name).read_bytes())
        for e in parsed.entries:
            title = clean(e.get("title", ""))
            if len(title.split()) >= 4:
                out.append({"title": title, "summary": clean(e.get("summary", ""))[:300],
                            "source": f"feeds/{lang}/{name}"})
    return out


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?؟])\s+", text.strip()) if s]


def strip_latin_marks(text: str, lang: str) -> str:
    if lang == "tr":
        text = text.translate(str.maketrans("ıİşŞğĞçÇöÖüÜ", "iIsSgGcCoOuU"))
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


def arabic_variants(text: str, rng: random.Random) -> str:
    words = text.split()
    for i, w in enumerate(words):
        r = rng.random()
        if r < 0.15 and w.startswith("ا"):
            words[i] = "أ" + w[1:]
        elif r < 0.25 and w.startswith("ال") and len(w) > 4:
            words[i] = "و" + w            # a proclitic و
        elif r < 0.35 and w.endswith("ة"):
            words[i] = w[:-1] + "ه"
        elif r < 0.45 and len(w) > 3:
            words[i] = w[:2] + "\u064e" + w[2:]   # a fatha (tashkeel)
    return " ".join(words)


def op_tag(item: dict, lang: str, rng: random.Random) -> dict:
    sep = rng.choice([" - ", " | "])
    return {**item, "title": item["title"] + sep + rng.choice(OUTLETS[lang])}


def op_reorder(item: dict, lang: str, rng: random.Random) -> dict:
    title = item["title"]
    for sep in (": ", " : ", "، ", ", "):
        if sep in title:
            head, tail = title.split(sep, 1)
            return {**item, "title": f"{tail}{sep}{head}" if sep.strip() != ":" else f"{tail} ({head})"}
    words = title.split()
    cut = max(1, len(words) - 3)
    return {**item, "title": " ".join(words[cut:] + words[:cut])}


def op_lede(item: dict, lang: str, rng: random.Random) -> dict:
    parts = sentences(item["summary"])
    if len(parts) > 1:
        return {**item, "summary": " ".join(parts[1:])}
    words = item["summary"].split()
    return {**item, "summary": " ".join(words[: len(words) // 2])}


def op_word(item: dict, lang: str, rng: random.Random) -> dict:
    words = item["title"].split()
    if rng.random() < 0.5 and len(words) > 5:
        del words[rng.randrange(1, len(words))]
        return {**item, "title": " ".join(words)}
    return {**item, "title": rng.choice(PREFIX[lang]) + " " + item["title"]}


def op_spelling(item: dict, lang: str, rng: random.Random) -> dict:
    if lang == "ar":
        return {**item, "title": arabic_variants(item["title"], rng),
                "summary": arabic_variants(item["summary"], rng)}
    if lang == "en":
        return {**item, "title": item["title"].upper() if rng.random() < 0.5 else item["title"].lower()}
    return {**item, "title": strip_latin_marks(item["title"], lang),
            "summary": strip_latin_marks(item["summary"], lang)}


OPS = {"tag": op_tag, "reorder": op_reorder, "lede": op_lede, "word": op_word, "spelling": op_spelling}


def text(item: dict) -> dict:
    return {"title": item["title"], "summary": item["summary"][:400]}   # the lede is what counts


def main() -> int:
    if not CORPUS.is_dir():
        print(f"no corpus at {CORPUS}", file=sys.stderr)
        return 2
    rng = random.Random(16)
    dev = [json.loads(line) for line in (CORPUS / "topics-dev" / "labelled.jsonl").open(encoding="utf-8")]
    pairs = []
    for a, b, label, kind, note in HAND:
        assert dev[a]["language"] == dev[b]["language"], (a, b)
        pairs.append({"language": dev[a]["language"], "label": label, "kind": kind, "a": text(dev[a]),
                      "b": text(dev[b]), "provenance": f"topics-dev/labelled.jsonl lines {a + 1} and {b + 1}: "
                      f"{dev[a]['source']} | {dev[b]['source']}", "note": note})
    judged = {(a, b) for a, b, *_ in HAND} | SKIPPED
    for lang in LANGS:
        lines = [i for i, d in enumerate(dev) if d["language"] == lang and len(d["title"].split()) >= 4]
        base = [(f"topics-dev/labelled.jsonl line {i + 1}: {dev[i]['source']}", dev[i]) for i in lines]
        base += [(f"{it['source']}", it) for it in feed_items(lang)]
        rng.shuffle(base)
        for n, (prov, item) in enumerate(base[:60]):
            if n < 20:
                ops, kind = ["tag"] + (["spelling"] if rng.random() < 0.5 else []), "wire-copy"
            else:
                ops = rng.sample(["reorder", "lede", "word", "spelling", "tag"], 2)
                if not {"reorder", "lede"} & set(ops):
                    ops[0] = rng.choice(["reorder", "lede"])
                kind = "rewrite"
            copy = dict(item)
            for op in ops:
                copy = OPS[op](copy, lang, rng)
            pairs.append({"language": lang, "label": "same", "kind": kind, "a": text(item), "b": text(copy),
                          "provenance": prov, "note": "edits: " + ", ".join(ops)})
        # same topic, not judged the same story (random pairs of distinct items sharing a topic)
        same_topic = [(i, j) for i, j in itertools.combinations(lines, 2)
                      if set(dev[i]["topics"]) & set(dev[j]["topics"]) and (i, j) not in judged]
        for i, j in rng.sample(same_topic, min(60, len(same_topic))):
            pairs.append({"language": lang, "label": "different", "kind": "same-topic", "a": text(dev[i]),
                          "b": text(dev[j]), "provenance": f"topics-dev/labelled.jsonl lines {i + 1} and {j + 1}",
                          "note": "shared topic " + ",".join(sorted(set(dev[i]["topics"]) & set(dev[j]["topics"])))})
        items = feed_items(lang)
        feed_pairs = [(x, y) for x, y in itertools.combinations(items, 2) if x["source"] == y["source"]]
        for x, y in rng.sample(feed_pairs, min(40, len(feed_pairs))):
            pairs.append({"language": lang, "label": "different", "kind": "same-feed", "a": text(x), "b": text(y),
                          "provenance": x["source"], "note": "two items of one feed snapshot"})
    with OUT.open("w", encoding="utf-8") as fh:
        for p in pairs:
            fh.write(json.dumps(p, ensure_ascii=False) + "\n")
    print(f"{len(pairs)} pairs -> {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
