"""OPML feed lists and feed-list dedup (one fetch per URL)."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable
from urllib.parse import urlsplit, urlunsplit

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from pipeline.config import FeedSource
from pipeline.feeds.fetch import _host, _is_http

log = logging.getLogger(__name__)


def read_opml(path: Path) -> list[FeedSource]:
    """Every outline with an xmlUrl, at any depth. Category: the `category` attribute, else the
    path of enclosing outline titles ("News/Iran"). Name: title, else text, else the host."""
    try:
        root = SafeET.parse(str(path)).getroot()
    except (SafeET.ParseError, DefusedXmlException) as error:
        raise ValueError(f"{path}: not valid OPML: {error}") from error
    except OSError as error:
        raise ValueError(f"{path}: cannot read OPML: {error.strerror or error}") from error
    if root.tag != "opml":
        raise ValueError(f"{path}: not OPML: the root element is <{root.tag}>, not <opml>")
    body = root.find("body")
    if body is None:
        raise ValueError(f"{path}: not valid OPML: no <body> element")
    feeds: list[FeedSource] = []

    def walk(element: SafeET.Element, trail: tuple[str, ...]) -> None:
        for outline in element.findall("outline"):
            label = (outline.get("title") or outline.get("text") or "").strip()
            url = (outline.get("xmlUrl") or outline.get("xmlurl") or "").strip()
            if url:
                category = (outline.get("category") or "").strip() or "/".join(trail) or None
                language = (outline.get("language") or "").strip() or None
                feeds.append(FeedSource(url=url, name=label or _host(url) or url,
                                        language=language, category=category))
            walk(outline, trail + (label,) if label and not url else trail)

    walk(body, ())
    return feeds


def _normalised(url: str) -> str:
    if not _is_http(url):
        return os.path.normpath(url)
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    default = {"http": 80, "https": 443}[parts.scheme.lower()]
    netloc = host if parts.port in (None, default) else f"{host}:{parts.port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme.lower(), netloc, path, parts.query, ""))


def dedupe_feeds(feeds: Iterable[FeedSource]) -> list[FeedSource]:
    """Each feed URL once (scheme/host case, default port, trailing slash and fragment
    ignored); the first occurrence wins."""
    seen: set[str] = set()
    unique: list[FeedSource] = []
    for feed in feeds:
        key = _normalised(feed.url)
        if key not in seen:
            seen.add(key)
            unique.append(feed)
    return unique
