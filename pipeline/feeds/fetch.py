"""Fetch feeds on the driver like a well-behaved aggregator; read OPML; dedupe feed lists.

`fetch_feeds` runs a bounded thread pool of `requests` sessions with:
- per-host pacing (`per_host_delay` seconds between requests to one host; hosts interleaved);
- connect/read timeouts, a total deadline per feed (a slow drip cannot hang the run) and a body
  cap applied to the decompressed, streamed body (gzip/deflate bombs stop at the cap);
- conditional GET from the feed-state store (ETag / Last-Modified -> 304), a body hash to spot
  unchanged bodies and servers that send the same ETag for a changed body ("liars", whose ETag is
  no longer sent);
- HTTP semantics: 301/308 move the stored URL, 302/307 do not; 410 retires the feed; 429/503
  honour Retry-After; any other failure backs off exponentially per feed (capped), and the next
  due time is stored so cron-driven batch runs skip feeds that are not due.
Local paths (and file:// URLs) are read as files and give the same outcome type.
Every feed yields exactly one `FetchOutcome`; failures carry a readable `error`.
"""
from __future__ import annotations

import email.utils
import hashlib
import itertools
import logging
import socket
import threading
import time
from collections import OrderedDict
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Callable, Iterator, Sequence
from urllib.parse import unquote, urlsplit

import requests
import urllib3
import urllib3.connection
import urllib3.connectionpool
from requests.adapters import HTTPAdapter

from pipeline.config import FeedSource, FetchSettings
from pipeline.feeds.state import FeedState, FeedStateStore
from transforms.records import FeedDocument

log = logging.getLogger(__name__)

__all__ = ["FetchOutcome", "fetch_feeds", "feeds_status_text"]

_CHUNK = 64 * 1024
_RETRY_AFTER_CAP = 7 * 86400.0     # a Retry-After beyond a week is taken as a week


@dataclass(frozen=True)
class FetchOutcome:
    feed: FeedSource
    status: str                         # 'ok' | 'not_modified' | 'not_due' | 'retired' | 'error'
    document: FeedDocument | None = None
    error: str | None = None
    http_status: int | None = None


class _FetchError(Exception):
    """A failure with a readable reason (and the HTTP status when there was one)."""

    def __init__(self, reason: str, http_status: int | None = None) -> None:
        super().__init__(reason)
        self.http_status = http_status


# --- helpers -----------------------------------------------------------------------------------

def _iso(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _is_http(url: str) -> bool:
    return urlsplit(url).scheme.lower() in ("http", "https")


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def _retry_after(value: str | None, now: float) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), _RETRY_AFTER_CAP)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return min(max(0.0, when.timestamp() - now), _RETRY_AFTER_CAP)


class _HostPacer:
    """Hands out request slots so one host sees at most one request per `delay` seconds."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, host: str) -> None:
        if self.delay <= 0:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next.get(host, now))
            self._next[host] = slot + self.delay
        if slot > now:
            time.sleep(slot - now)


def _interleave_hosts(feeds: Sequence[FeedSource]) -> list[FeedSource]:
    """Round-robin over hosts, so paced hosts do not occupy every worker at once."""
    groups: "OrderedDict[str, list[FeedSource]]" = OrderedDict()
    for feed in feeds:
        groups.setdefault(_host(feed.url), []).append(feed)
    mixed = itertools.zip_longest(*groups.values())
    return [feed for row in mixed for feed in row if feed is not None]


# --- one feed ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Response:
    status: int
    url: str                 # final URL
    permanent_url: str       # where a permanent redirect chain from the start led
    body: bytes
    content_type: str
    etag: str | None
    last_modified: str | None
    retry_after: str | None


def _read_capped(response: requests.Response, settings: FetchSettings, started: float) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > settings.max_bytes and \
            "Content-Encoding" not in response.headers:
        raise _FetchError(f"body too large: Content-Length {declared} > {settings.max_bytes} bytes",
                          response.status_code)
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            # read1: returns after one socket read, so the deadline is checked even when a
            # server drips a byte at a time; gzip/deflate are decoded here, bounded per call.
            chunk = response.raw.read1(_CHUNK, decode_content=True)
            if not chunk:
                break
            size += len(chunk)
            if size > settings.max_bytes:
                raise _FetchError(f"body too large: more than {settings.max_bytes} bytes "
                                  "(after decompression)", response.status_code)
            if time.monotonic() - started > settings.deadline:
                raise _FetchError(f"too slow: body not complete after {settings.deadline:g} s "
                                  f"({size} bytes received)", response.status_code)
            chunks.append(chunk)
    except urllib3.exceptions.ReadTimeoutError as error:
        raise _FetchError(f"read timeout after {settings.timeout:g} s while reading the body",
                          response.status_code) from error
    except urllib3.exceptions.DecodeError as error:
        raise _FetchError(f"bad compressed body: {_short(error)}", response.status_code) from error
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise _FetchError(f"connection broken while reading the body: {_short(error)}",
                          response.status_code) from error
    return b"".join(chunks)


# --- a deadline for the whole request, headers included --------------------------------------
# Timeouts apply to each socket read, so a server that drips its status line and headers a byte
# at a time would never time out. Each worker thread records the sockets its connections open;
# a watchdog timer shuts them down when a feed's deadline passes, which ends any blocked read.

_THREAD_SOCKETS = threading.local()


def _thread_sockets() -> set[socket.socket]:
    found: set[socket.socket] | None = getattr(_THREAD_SOCKETS, "sockets", None)
    if found is None:
        found = _THREAD_SOCKETS.sockets = set()
    return found


class _TrackedHTTPConnection(urllib3.connection.HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _thread_sockets().add(sock)
        return sock


class _TrackedHTTPSConnection(urllib3.connection.HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _thread_sockets().add(sock)
        return sock


class _TrackedHTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _TrackedHTTPConnection


class _TrackedHTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPSConnection


class _TrackedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: object, **kwargs: object) -> None:
        super().init_poolmanager(*args, **kwargs)  # type: ignore[arg-type]
        self.poolmanager.pool_classes_by_scheme = {"http": _TrackedHTTPPool, "https": _TrackedHTTPSPool}


class _Watchdog:
    """Shuts down this thread's sockets if the request is still running at the deadline."""

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._sockets = _thread_sockets()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        self.fired = True
        for sock in list(self._sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError as error:  # already closed by its connection: nothing left to end
                log.debug("deadline: socket already closed (%s)", error)

    def __enter__(self) -> "_Watchdog":
        for sock in [s for s in self._sockets if s.fileno() == -1]:
            self._sockets.discard(sock)  # closed since: forget it
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


class _Sessions:
    """One requests.Session per worker thread (connection reuse), all closed at the end."""

    def __init__(self, settings: FetchSettings) -> None:
        self.settings = settings
        self._local = threading.local()
        self._all: list[requests.Session] = []
        self._lock = threading.Lock()

    def get(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.mount("http://", _TrackedAdapter())
            session.mount("https://", _TrackedAdapter())
            session.max_redirects = self.settings.max_redirects
            session.headers["User-Agent"] = self.settings.user_agent
            session.headers["Accept"] = ("application/rss+xml, application/atom+xml, "
                                         "application/rdf+xml, application/xml;q=0.9, "
                                         "text/xml;q=0.9, */*;q=0.1")
            self._local.session = session
            with self._lock:
                self._all.append(session)
        return session

    def close(self) -> None:
        with self._lock:
            for session in self._all:
                session.close()
            self._all.clear()


def _get(url: str, state: FeedState, settings: FetchSettings, pacer: _HostPacer,
         sessions: _Sessions) -> _Response:
    headers: dict[str, str] = {}
    if state.etag and not state.etag_liar:
        headers["If-None-Match"] = state.etag
    if state.last_modified:
        headers["If-Modified-Since"] = state.last_modified
    pacer.wait(_host(url))
    watchdog = _Watchdog(settings.deadline)
    try:
        with watchdog:
            response = _request(url, headers, settings, sessions)
    except _FetchError as error:
        if watchdog.fired:
            raise _FetchError(f"too slow: no complete answer after {settings.deadline:g} s",
                              error.http_status) from error
        raise
    if watchdog.fired:
        # The deadline shut the socket: a body without Content-Length (or chunked framing
        # urllib3 does not check) then just ends, and a cut feed would pass for the whole one
        # (its ETag saved, so the rest never read). Whatever arrived, it is not complete.
        raise _FetchError(f"too slow: body not complete after {settings.deadline:g} s "
                          f"({len(response.body)} bytes received before the deadline)",
                          response.status)
    return response


def _request(url: str, headers: dict[str, str], settings: FetchSettings,
             sessions: _Sessions) -> _Response:
    started = time.monotonic()
    try:
        with sessions.get().get(url, headers=headers, stream=True, allow_redirects=True,
                         timeout=(settings.timeout, settings.timeout)) as response:
            body = b"" if response.status_code != 200 else \
                _read_capped(response, settings, started)
            permanent = url
            for hop, next_response in zip(response.history,
                                          [*response.history[1:], response]):
                if hop.status_code not in (301, 308):
                    break
                permanent = next_response.url
            return _Response(
                status=response.status_code, url=response.url, permanent_url=permanent,
                body=body, content_type=response.headers.get("Content-Type", ""),
                etag=response.headers.get("ETag"),
                last_modified=response.headers.get("Last-Modified"),
                retry_after=response.headers.get("Retry-After"))
    except requests.exceptions.TooManyRedirects as error:
        raise _FetchError(f"too many redirects (more than {settings.max_redirects})") from error
    except requests.exceptions.ConnectTimeout as error:
        raise _FetchError(f"connect timeout after {settings.timeout:g} s") from error
    except (requests.exceptions.ReadTimeout, requests.exceptions.Timeout) as error:
        raise _FetchError(f"read timeout after {settings.timeout:g} s") from error
    except requests.exceptions.ConnectionError as error:
        raise _FetchError(f"connection failed: {_short(error)}") from error
    except requests.exceptions.ContentDecodingError as error:
        raise _FetchError(f"bad compressed body: {_short(error)}") from error
    except requests.exceptions.RequestException as error:
        raise _FetchError(f"request failed: {type(error).__name__}: {_short(error)}") from error


def _short(error: BaseException) -> str:
    text = str(error)
    return text if len(text) <= 300 else text[:300] + "…"


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _read_local(feed: FeedSource, settings: FetchSettings) -> FetchOutcome:
    url = feed.url
    path = Path(unquote(urlsplit(url).path)) if url.lower().startswith("file://") else Path(url)
    try:
        size = path.stat().st_size
        if size > settings.max_bytes:
            return FetchOutcome(feed, "error", error=f"file too large: {path} is {size} bytes "
                                f"(cap {settings.max_bytes})")
        body = path.read_bytes()
    except OSError as error:
        return FetchOutcome(feed, "error", error=f"cannot read {path}: {error.strerror or error}")
    document = FeedDocument(source=feed.name, url=str(path), body=body, fetched=_now_iso(),
                            content_type="", language_hint=feed.language)
    return FetchOutcome(feed, "ok", document=document)


def _backoff(settings: FetchSettings, now: float, errors: int) -> float:
    doublings = min(max(0, errors - 1), 40)          # bounded: no float overflow for old feeds
    return now + min(settings.backoff_cap, settings.backoff_base * 2.0 ** doublings)


def _fetch_http(feed: FeedSource, state: FeedState, settings: FetchSettings,
                pacer: _HostPacer, sessions: _Sessions) -> tuple[FetchOutcome, FeedState]:
    """One HTTP feed: the outcome and the feed's next state (the caller stores it)."""
    now = time.time()
    fetched = state.replace(last_fetch=now)
    try:
        response = _get(state.current_url, state, settings, pacer, sessions)
    except _FetchError as error:
        return _failed(feed, fetched, settings, now, str(error), error.http_status)

    status = response.status
    moved = fetched.replace(current_url=response.permanent_url) \
        if response.permanent_url != state.current_url else fetched
    if moved is not fetched:
        log.info("feed %s moved permanently to %s", state.url, response.permanent_url)
    if status == 304:
        if not (state.etag or state.last_modified):
            return _failed(feed, moved, settings, now, "HTTP 304 to an unconditional request", 304)
        nxt = moved.replace(last_status="not_modified", http_status=304, last_error=None,
                            error_count=0, next_due=now + settings.interval,
                            etag=response.etag or state.etag,
                            last_modified=response.last_modified or state.last_modified)
        return FetchOutcome(feed, "not_modified", http_status=304), nxt
    if status == 410:
        nxt = moved.replace(last_status="retired", http_status=410, retired=True,
                            last_error="HTTP 410 Gone: feed retired", next_due=None)
        return FetchOutcome(feed, "retired", error="HTTP 410 Gone: feed retired",
                            http_status=410), nxt
    if status in (429, 503):
        wait_for = _retry_after(response.retry_after, now)
        reason = f"HTTP {status} {_reason(status)}"
        if wait_for is not None:
            errors = moved.error_count + 1
            nxt = moved.replace(last_status="error", http_status=status, error_count=errors,
                                last_error=f"{reason}; retry after {wait_for:.0f} s",
                                next_due=now + wait_for)
            return FetchOutcome(feed, "error", error=nxt.last_error, http_status=status), nxt
        return _failed(feed, moved, settings, now, reason, status)
    if status != 200:
        return _failed(feed, moved, settings, now, f"HTTP {status} {_reason(status)}", status)

    digest = hashlib.sha256(response.body).hexdigest()
    unchanged = digest == state.body_hash
    liar = state.etag_liar or (not unchanged and state.body_hash is not None
                               and response.etag is not None and response.etag == state.etag)
    if liar and not state.etag_liar:
        log.info("feed %s sends the same ETag for a changed body; ETag ignored from now on",
                 state.url)
    nxt = moved.replace(last_status="not_modified" if unchanged else "ok", http_status=200,
                        last_error=None, error_count=0, next_due=now + settings.interval,
                        etag=response.etag, last_modified=response.last_modified,
                        body_hash=digest, etag_liar=liar,
                        last_new_item=state.last_new_item if unchanged else now)
    if unchanged:
        return FetchOutcome(feed, "not_modified", http_status=200), nxt
    document = FeedDocument(source=feed.name, url=response.url, body=response.body,
                            fetched=_iso(now), content_type=response.content_type,
                            language_hint=feed.language)
    return FetchOutcome(feed, "ok", document=document, http_status=200), nxt


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _failed(feed: FeedSource, state: FeedState, settings: FetchSettings, now: float,
            reason: str, http_status: int | None) -> tuple[FetchOutcome, FeedState]:
    errors = state.error_count + 1
    nxt = state.replace(last_status="error", http_status=http_status, last_error=reason,
                        error_count=errors, next_due=_backoff(settings, now, errors))
    return FetchOutcome(feed, "error", error=reason, http_status=http_status), nxt


def _fetch_one(feed: FeedSource, state: FeedState, settings: FetchSettings,
               pacer: _HostPacer, sessions: _Sessions) -> tuple[FetchOutcome, FeedState | None]:
    if _is_http(feed.url):
        return _fetch_http(feed, state, settings, pacer, sessions)
    if "://" in feed.url and not feed.url.lower().startswith("file://"):
        return FetchOutcome(feed, "error", error=f"unsupported URL scheme: {feed.url}"), None
    return _read_local(feed, settings), None


# --- public API --------------------------------------------------------------------------------

def fetch_feeds(feeds: Sequence[FeedSource], *, store: FeedStateStore | None,
                settings: FetchSettings,
                progress: Callable[[int, int, FetchOutcome], None] | None = None,
                ) -> Iterator[FetchOutcome]:
    """Fetch every feed once (or skip it: retired, not due); yields one outcome per feed.

    Outcomes come in completion order. The state store is read and written on the calling
    thread only. Without a store each run is unconditional and nothing is remembered.
    """
    total = len(feeds)
    done = 0
    now = time.time()
    pacer = _HostPacer(settings.per_host_delay)

    def finish(outcome: FetchOutcome) -> FetchOutcome:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, outcome)
        return outcome

    to_fetch: list[tuple[FeedSource, FeedState]] = []
    for feed in feeds:
        state = store.get_or_new(feed.url) if store is not None else FeedState.new(feed.url)
        if store is not None and _is_http(feed.url):
            if state.retired:
                # http_status None: no request this run (a 410 seen now carries 410)
                yield finish(FetchOutcome(feed, "retired", error=state.last_error or "retired"))
                continue
            if settings.respect_schedule and state.next_due is not None and state.next_due > now:
                yield finish(FetchOutcome(feed, "not_due",
                                          error=f"not due until {_iso(state.next_due)}"))
                continue
        to_fetch.append((feed, state))

    states = {feed.url: state for feed, state in to_fetch}
    order = _interleave_hosts([feed for feed, _ in to_fetch])
    workers = max(1, min(settings.concurrency, len(order) or 1))
    sessions = _Sessions(settings)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch")
    try:
        pending: dict[Future[tuple[FetchOutcome, FeedState | None]], FeedSource] = {
            pool.submit(_fetch_one, feed, states[feed.url], settings, pacer, sessions): feed
            for feed in order}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                feed = pending.pop(future)
                try:
                    outcome, new_state = future.result()
                except Exception as error:  # noqa: BLE001 - one feed's bug must not stop the run
                    log.exception("fetching %s failed unexpectedly", feed.url)
                    outcome = FetchOutcome(feed, "error",
                                           error=f"internal error: {type(error).__name__}: {error}")
                    new_state = None
                if store is not None and new_state is not None:
                    store.put(new_state)
                yield finish(outcome)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)   # the caller may stop iterating early
        sessions.close()


def feeds_status_text(store: FeedStateStore, feeds: Sequence[FeedSource]) -> str:
    """A table of each feed's health: last status, last new item, errors, next due, retired."""
    header = ("feed", "last status", "last new item", "errors", "next due", "retired")
    rows: list[tuple[str, ...]] = [header]
    for feed in feeds:
        state = store.get(feed.url)
        if state is None:
            rows.append((feed.name, "never fetched", "-", "0", "-", "no"))
            continue
        status = state.last_status or "-"
        if state.http_status is not None:
            status += f" ({state.http_status})"
        if state.last_status == "error" and state.last_error:
            status += f": {state.last_error}"
        if state.current_url != state.url:
            status += f" [moved to {state.current_url}]"
        if state.etag_liar:
            status += " [ETag unreliable]"
        rows.append((feed.name, status[:90], _iso(state.last_new_item), str(state.error_count),
                     _iso(state.next_due), "yes" if state.retired else "no"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in rows)


