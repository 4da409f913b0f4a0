"""Stable article ids and canonical URLs (pure logic, no Beam).

An id must be the same whenever the same story is read again, from the same feed or a
syndicating one.  The id is taken from the first of:
  1. the canonical URL of the item's link,
  2. the feed's guid for it (scoped by source: bare guids like "123" are not global),
  3. the source and the normalised title.
Canonical URLs are lossy on purpose (as Media Cloud's normaliser is): scheme folded to
https, host lower-cased without `www.`/`m.`/`mobile.`/`amp.`, default ports, fragments and
tracking parameters dropped, the remaining query sorted, trailing slash dropped.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from urllib.parse import urlsplit, urlunsplit

from w3lib.url import canonicalize_url

TRACKING_PARAMS = (
    "fbclid", "gclid", "dclid", "gclsrc", "msclkid", "yclid", "mc_cid", "mc_eid", "_ga", "_gl",
    "igshid", "ocid", "cmpid", "ito", "ns_mchannel", "ns_source", "ns_campaign", "ns_linkname",
    "ns_fee", "xtor", "at_medium", "at_campaign", "at_custom1", "at_custom2", "at_custom3",
    "at_custom4", "rss", "ref", "ref_src", "src", "spm", "share", "smid", "cid", "sr_share",
    "s_cid", "mkt_tok", "oly_enc_id", "oly_anon_id", "vero_id", "wt.mc_id", "__twitter_impression",
)
_TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "hsa_", "at_", "ga_")
_HOST_PREFIXES = ("www.", "m.", "mobile.", "amp.")


def canonical_url(url: str) -> str:
    """Canonical form of an http(s) URL; other strings are returned stripped."""
    url = (url or "").strip()
    if not url.lower().startswith(("http://", "https://")):
        return url
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        port = parts.port
    except ValueError:
        return url
    for prefix in _HOST_PREFIXES:
        if host.startswith(prefix) and host.count(".") >= 2:
            host = host[len(prefix):]
            break
    netloc = host if port in (None, 80, 443) else f"{host}:{port}"
    keep = [p for p in parts.query.split("&") if p and not _is_tracking(p.split("=", 1)[0])]
    cleaned = urlunsplit(("https", netloc, parts.path or "/", "&".join(keep), ""))
    cleaned = canonicalize_url(cleaned, keep_fragments=False)
    path_end = cleaned.split("?", 1)
    if len(path_end[0]) > len("https://") + len(netloc) + 1 and path_end[0].endswith("/"):
        path_end[0] = path_end[0].rstrip("/")
    return "?".join(path_end)


def _is_tracking(name: str) -> bool:
    name = name.lower()
    return name in TRACKING_PARAMS or name.startswith(_TRACKING_PREFIXES)


_SPACE = re.compile(r"\s+")


def normalise_title(title: str) -> str:
    """Case-, accent-, punctuation- and whitespace-insensitive form of a title."""
    text = unicodedata.normalize("NFKD", title or "")
    text = "".join(c for c in text if not unicodedata.combining(c) and c != "\u0640")
    text = "".join(c if c.isalnum() else " " for c in text.casefold())
    return _SPACE.sub(" ", text).strip()


def article_id(url: str, guid: str, source: str, title: str) -> str:
    """16 hex digits, stable across runs and machines (see module docstring)."""
    canon = canonical_url(url)
    if canon.startswith("https://"):
        key = "url:" + canon
    elif guid.strip():
        key = f"guid:{source}\x1f{guid.strip()}"
    else:
        key = f"title:{source}\x1f{normalise_title(title)}"
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]


