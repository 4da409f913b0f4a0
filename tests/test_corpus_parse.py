"""Every corpus feed goes through parse_feed; every entry feedparser finds is accounted for."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import feedparser
import pytest

from transforms.feeds import FeedError, parse_feed
from transforms.records import FeedDocument

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
FEED_SUFFIXES = {".xml", ".rss", ".atom", ".json"}


def corpus_files(folder: str) -> list[Path]:
    root = CORPUS / folder
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in FEED_SUFFIXES)


def parse_file(path: Path) -> tuple[int, int] | None:
    """(entries + rejected, feedparser's entry count), or None when parse_feed says FeedError."""
    body = path.read_bytes()
    document = FeedDocument(source=path.name, url=str(path), body=body,
                            fetched="2024-01-01T00:00:00Z")
    try:
        parsed = parse_feed(document)
    except FeedError as error:
        assert str(error), f"{path}: FeedError without a reason"
        return None
    return len(parsed.entries) + len(parsed.rejected), len(feedparser.parse(io.BytesIO(body)).entries)


@pytest.mark.parametrize("folder", ["feedparser-tests", "feeds"])
def test_every_corpus_file_is_accounted_for(folder: str) -> None:
    files = corpus_files(folder)
    if not files:
        pytest.skip(f"corpus folder {CORPUS / folder} is absent")
    mismatches = []
    for path in files:
        counts = parse_file(path)
        if counts is not None and counts[0] != counts[1]:
            mismatches.append((str(path.relative_to(CORPUS)), *counts))
    assert mismatches == []


def test_real_feed_entry_counts_match_manifest() -> None:
    manifest = CORPUS / "feeds" / "MANIFEST.tsv"
    if not manifest.is_file():
        pytest.skip(f"{manifest} is absent")
    with manifest.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert len(rows) == 27
    got, rejected = {}, {}
    for row in rows:
        path = CORPUS / "feeds" / row["file"]
        parsed = parse_feed(FeedDocument(source=path.name, url=str(path), body=path.read_bytes(),
                                         fetched="2024-01-01T00:00:00Z"))
        if parsed.rejected:
            rejected[row["file"]] = len(parsed.rejected)
        assert all(e.link.startswith(("http://", "https://", "file://")) for e in parsed.entries)
        got[row["file"]] = len(parsed.entries) + len(parsed.rejected)
    assert got == {row["file"]: int(row["items"]) for row in rows}
    # the only entry that cannot become an article: an <item> whose title, link and description
    # are all empty
    assert rejected == {"fr/cercle-psy-no-decl-latin1.xml": 1}
