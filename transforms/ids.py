"""Stable article ids and canonical URLs (pure logic, no Beam).

An id must be the same whenever the same story is read again, from the same feed or a
syndicating one, and different stories must never share one.  The id is taken from the first of:
  1. the canonical URL of the item's link (only a URL with a host counts),
  2. the feed's guid for it (scoped by source: bare guids like "123" are not global),
  3. the source and the normalised title.
Canonical URLs are lossy on purpose (as Media Cloud's normaliser is): scheme folded to
https, host lower-cased (IDN hosts in punycode) without `www.`/`m.`/`mobile.`/`amp.`, default
ports, fragments, session ids and *known* tracking parameters dropped (a parameter such as
`cid`, `src` or `ref` is an article id on some sites, so only names that are trackers
everywhere go), the remaining query sorted, AMP forms (`/amp`, `?outputType=amp`, the
`cdn.ampproject.org` cache) and `index.html` reduced to the article URL, Google redirect and
Google News wrapper links unwrapped, trailing slash dropped.  `canonical_url` is idempotent.

The tracker list: w3lib (already used for the percent-encoding and query sorting) offers the
mechanism (`url_query_cleaner`) but no list; courlan's list is a pattern that also drops `cid`,
`ref` and `source`, which are article ids on news sites.  So the list is ours, from the
platforms' documentation and the peer suites (Media Cloud, ClearURLs' general rules).

Most links are plain (`scheme://host/path`: a letters-digits-hyphens host, a path of unreserved
characters, no port, query, fragment, percent sign or dot segment).  Splitting and w3lib leave
such a URL as it is, so `_canonical` skips them for it (about 3x cheaper per link; the result is
the same, tested against the full path on generated and corpus URLs).
"""
from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import ipaddress
import re
import unicodedata
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from w3lib.url import canonicalize_url

TRACKING_PARAMS = frozenset({
    # ad click ids
    "fbclid", "gclid", "dclid", "gclsrc", "gbraid", "wbraid", "msclkid", "yclid", "ysclid",
    "twclid", "ttclid", "li_fat_id", "igshid", "mc_cid", "mc_eid", "_ga", "_gl", "_hsenc", "_hsmi",
    "mkt_tok", "oly_enc_id", "oly_anon_id", "vero_id", "vero_conv", "__twitter_impression",
    "s_kwcid", "ef_id", "wt.mc_id", "wt.mc_ev",
    # publishers' campaign and share markers
    "ocid", "ncid", "cmpid", "cmp", "intcmp", "icid", "ito", "ns_mchannel", "ns_source",
    "ns_campaign", "ns_linkname", "ns_fee", "xtor", "ref_src", "ref_url", "spm", "smid",
    "smtyp", "sr_share", "s_cid", "share", "ftag", "mbid", "rss", "traffic_source", "partner",
    "emc", "wprss", "cmpid", "ito", "guccounter", "guce_referrer", "guce_referrer_sig",
    # session ids
    "phpsessid", "jsessionid", "sessionid", "aspsessionid", "cfid", "cftoken",
})
_TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "hsa_", "at_", "ga_", "matomo_", "piwik_")
_HOST_PREFIXES = ("www.", "m.", "mobile.", "amp.")
_INDEX_PAGES = frozenset({"index.html", "index.htm", "index.shtml"})
_SESSION_PATH = re.compile(r";(?:jsessionid|phpsessid|sessionid)=[^/;]*", re.IGNORECASE)
_GOOGLE_REDIRECT_HOSTS = frozenset({"google.com", "news.google.com"})
_GOOGLE_NEWS_ARTICLE = re.compile(r"^/(?:rss/|__i/rss/rd/)?articles/([A-Za-z0-9_-]+)")
_EMBEDDED_URL = re.compile(rb"https?://[\x21-\x7e]+")
_MAX_UNWRAP = 8
_HOST_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")


@functools.lru_cache(maxsize=1 << 14)
def canonical_url(url: str) -> str:
    """Canonical form of an http(s) URL (idempotent); other strings are returned stripped.

    An http(s) URL without a usable host (`http://`, `http://user@/x`, a bad port) gives "":
    it is a placeholder, not an address, and must not become an id.
    """
    url = (url or "").strip()
    if not url.lower().startswith(("http://", "https://")):
        return url
    # as browsers do (WHATWG URL): a backslash before the query is a slash in http(s) URLs
    cut = min((i for i in (url.find("?"), url.find("#")) if i >= 0), default=len(url))
    url = url[:cut].replace("\\", "/") + url[cut:]
    try:
        first = _canonical(url, _MAX_UNWRAP)
        return _canonical(first, 0) if first else ""   # a second pass is a no-op by design
    except (ValueError, UnicodeError):
        return ""


def _is_tracking(name: str) -> bool:
    name = unquote(name).lower()
    return name in TRACKING_PARAMS or name.startswith(_TRACKING_PREFIXES)


def _unwrap(host: str, path: str, query: str) -> str | None:
    """The article URL a Google redirect, Google News or AMP-cache link points at, if any."""
    if host.endswith(".cdn.ampproject.org"):
        # /c/s/www.example.com/path (s: https), /v/..., /i/...
        match = re.match(r"^/[cvi]/(s/)?([^/]+)(/.*)?$", path)
        if match:
            scheme = "https" if match.group(1) else "http"
            rest = match.group(3) or "/"
            return f"{scheme}://{match.group(2)}{rest}" + (f"?{query}" if query else "")
        return None
    if host not in _GOOGLE_REDIRECT_HOSTS and not host.startswith("google."):
        return None
    if path in ("/url", "/news/url"):
        for name, value in parse_qsl(query, keep_blank_values=True):
            if name in ("url", "q") and value.lower().startswith(("http://", "https://")):
                return value
        return None
    match = _GOOGLE_NEWS_ARTICLE.match(path) if host == "news.google.com" else None
    if match:
        # older Google News ids are base64 protobuf holding the article URL; newer ones are
        # opaque (then the wrapper link stays as it is: it is still stable per story)
        token = match.group(1)
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            return None
        found = _EMBEDDED_URL.search(raw)
        if not found:
            return None
        start, inner = found.start(), found.group()
        # the protobuf length varint in front of the URL says where it ends
        if start >= 2 and raw[start - 2] & 0x80 and not raw[start - 1] & 0x80:
            inner = inner[:(raw[start - 2] & 0x7F) | (raw[start - 1] << 7)]
        elif start >= 1 and not raw[start - 1] & 0x80:
            inner = inner[:raw[start - 1]]
        return inner.decode("ascii")
    return None


def _host(netloc_host: str) -> str:
    """The host as it goes into a canonical URL; ValueError when it is no host name at all."""
    host = netloc_host.lower().rstrip(".")
    if ":" in host:                       # IPv6 literal
        return f"[{ipaddress.IPv6Address(host.split('%', 1)[0]).compressed}]"
    if not host.isascii():
        host = host.encode("idna").decode("ascii")
    if not _HOST_NAME.fullmatch(host):
        raise ValueError(f"not a host name: {host!r}")
    for prefix in _HOST_PREFIXES:
        if host.startswith(prefix) and host.count(".") >= 2:
            return host[len(prefix):]
    return host


def _clean_path(path: str) -> str:
    path = _SESSION_PATH.sub("", path)
    segments = path.split("/")
    # AMP: /story/amp, /story/amp/ ; index pages: /section/index.html
    while len(segments) > 1 and (segments[-1] == "" or segments[-1].lower() == "amp"
                                 or segments[-1].lower() in _INDEX_PAGES):
        segments.pop()
    cleaned = "/".join(segments)
    return cleaned if cleaned.startswith("/") else "/" + cleaned


def _keep_param(param: str) -> bool:
    name, _, value = param.partition("=")
    if not name or _is_tracking(name):
        return False
    lowered = unquote(name).lower()
    if lowered in ("outputtype", "output") and value.lower() == "amp":
        return False
    return not (lowered == "amp" and value.lower() in ("", "1", "true"))


# scheme://host/path that urlsplit and canonicalize_url return unchanged: LDH labels without
# "--" (no punycode for IDNA to check), unreserved path characters, no empty or dot segment
_PLAIN_URL = re.compile(r"(?i:https?)://((?:[A-Za-z0-9](?:-?[A-Za-z0-9])*\.)*[A-Za-z0-9](?:-?[A-Za-z0-9])*)"
                        r"((?:/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)*/?)")


def _canonical(url: str, unwraps: int) -> str:
    plain = _PLAIN_URL.fullmatch(url)
    if plain is not None:
        host, path = plain.group(1).lower(), plain.group(2)
        if not (unwraps and _unwrap(host[4:] if host.startswith("www.") else host, path, "")):
            return "https://" + _host(host) + _final_path(path or "/")
    return _canonical_split(url, unwraps)


def _final_path(path: str) -> str:
    path = _clean_path(path)
    return path if path == "/" else path.rstrip("/") or "/"


def _canonical_split(url: str, unwraps: int) -> str:
    """`_canonical` of any URL: split, unwrapped, filtered and normalised by w3lib."""
    parts = urlsplit(url)
    if not parts.hostname:
        return ""
    raw_host = parts.hostname
    if unwraps:
        bare = raw_host.lower()
        inner = _unwrap(bare[4:] if bare.startswith("www.") else bare, parts.path, parts.query)
        if inner and inner.lower().startswith(("http://", "https://")):
            return _canonical(inner, unwraps - 1)
    host = _host(raw_host)
    port = parts.port
    if not host.strip("[]"):
        return ""
    netloc = host if port in (None, 80, 443) else f"{host}:{port}"
    keep = [p for p in parts.query.split("&") if _keep_param(p)]
    cleaned = canonicalize_url(urlunsplit(("https", netloc, parts.path or "/", "&".join(keep), "")),
                               keep_fragments=False)
    again = urlsplit(cleaned)
    return urlunsplit(("https", netloc, _final_path(again.path), again.query, ""))


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
    return hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]


