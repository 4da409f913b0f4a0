"""fetch_feeds against the local feed server: each HTTP behaviour, and state that persists."""
from __future__ import annotations

import email.utils
import gzip
import time
from pathlib import Path
from typing import Iterator

import pytest

from pipeline.config import FeedSource, FetchSettings
from pipeline.feeds.fetch import FetchOutcome, feeds_status_text, fetch_feeds
from pipeline.feeds.state import FeedStateStore
from tests.feedserver import FeedServer, Route
from transforms.feeds import FeedError, parse_feed

# Generous limits stop a broken fetcher from hanging the suite; nothing asserts on timing.
FAST = FetchSettings(timeout=10.0, per_host_delay=0.0, deadline=30.0)
FEED_A = b'<rss version="2.0"><channel><title>t</title><item><title>a</title></item></channel></rss>'
FEED_B = FEED_A.replace(b"<title>a</title>", b"<title>b</title>")
FEED_C = FEED_A.replace(b"<title>a</title>", b"<title>c</title>")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FeedStateStore]:
    with FeedStateStore(tmp_path / "state.db") as opened:
        yield opened


def fetch_one(url: str, store: FeedStateStore | None = None,
              settings: FetchSettings = FAST, name: str = "feed") -> FetchOutcome:
    outcomes = list(fetch_feeds([FeedSource(url=url, name=name)], store=store, settings=settings))
    assert len(outcomes) == 1
    return outcomes[0]


def test_ok_fetch_gives_document_and_polite_headers(feed_server: FeedServer) -> None:
    url = feed_server.route("/a.xml", Route(body=FEED_A, content_type="application/rss+xml"))
    feed = FeedSource(url=url, name="a", language="ar")
    [outcome] = fetch_feeds([feed], store=None, settings=FAST)
    assert (outcome.status, outcome.http_status, outcome.error) == ("ok", 200, None)
    assert outcome.document is not None
    assert (outcome.document.body, outcome.document.source, outcome.document.url,
            outcome.document.content_type, outcome.document.language_hint) == \
        (FEED_A, "a", url, "application/rss+xml", "ar")
    sent = feed_server.seen("/a.xml")[0].headers
    assert "mediamon" in sent["User-Agent"]
    assert "gzip" in sent["Accept-Encoding"]


def test_etag_304_and_state_survives_a_new_store(feed_server: FeedServer, tmp_path: Path) -> None:
    url = feed_server.route("/e.xml", Route(body=FEED_A, etag='"v1"'))
    with FeedStateStore(tmp_path / "s.db") as first:
        assert fetch_one(url, first).status == "ok"
    with FeedStateStore(tmp_path / "s.db") as second:
        outcome = fetch_one(url, second)
        assert (outcome.status, outcome.http_status, outcome.document) == ("not_modified", 304, None)
        state = second.get(url)
    assert state is not None and state.etag == '"v1"' and state.error_count == 0
    assert feed_server.seen("/e.xml")[1].headers.get("If-None-Match") == '"v1"'


def test_last_modified_304(feed_server: FeedServer, store: FeedStateStore) -> None:
    stamp = "Sun, 15 Oct 2017 09:30:00 GMT"
    url = feed_server.route("/lm.xml", Route(body=FEED_A, last_modified=stamp))
    assert fetch_one(url, store).status == "ok"
    assert fetch_one(url, store).status == "not_modified"
    assert feed_server.seen("/lm.xml")[1].headers.get("If-Modified-Since") == stamp


def test_unchanged_body_without_304_is_not_modified(feed_server: FeedServer,
                                                    store: FeedStateStore) -> None:
    url = feed_server.route("/same.xml", Route(body=FEED_A))
    assert fetch_one(url, store).status == "ok"
    assert fetch_one(url, store).status == "not_modified"
    feed_server.route("/same.xml", Route(body=FEED_B))
    assert fetch_one(url, store).status == "ok"


def test_lying_etag_is_detected_and_no_longer_trusted(feed_server: FeedServer,
                                                      store: FeedStateStore) -> None:
    url = feed_server.route("/liar.xml", Route(body=FEED_A, etag='"same"'))
    assert fetch_one(url, store).status == "ok"
    # changed body, same ETag, conditional request ignored: the server lies
    feed_server.route("/liar.xml", Route(body=FEED_B, etag='"same"', honour_conditional=False))
    assert fetch_one(url, store).status == "ok"
    state = store.get(url)
    assert state is not None and state.etag_liar
    # it would now answer 304 to its ETag although the body changed: we no longer send it
    feed_server.route("/liar.xml", Route(body=FEED_C, etag='"same"'))
    outcome = fetch_one(url, store)
    assert outcome.status == "ok" and outcome.document is not None
    assert outcome.document.body == FEED_C
    assert "If-None-Match" not in feed_server.seen("/liar.xml")[-1].headers


@pytest.mark.parametrize("code", [301, 308])
def test_permanent_redirect_moves_the_stored_url(feed_server: FeedServer, store: FeedStateStore,
                                                 code: int) -> None:
    old = feed_server.route("/old.xml", Route(status=code, location="/new.xml"))
    new = feed_server.route("/new.xml", Route(body=FEED_A))
    outcome = fetch_one(old, store)
    assert outcome.status == "ok" and outcome.document is not None
    assert outcome.document.url == new
    state = store.get(old)
    assert state is not None and state.current_url == new
    assert fetch_one(old, store).status == "not_modified"
    assert len(feed_server.seen("/old.xml")) == 1          # the second run went straight to /new
    assert len(feed_server.seen("/new.xml")) == 2


@pytest.mark.parametrize("code", [302, 307])
def test_temporary_redirect_keeps_the_stored_url(feed_server: FeedServer, store: FeedStateStore,
                                                 code: int) -> None:
    old = feed_server.route("/tmp.xml", Route(status=code, location="/elsewhere.xml"))
    feed_server.route("/elsewhere.xml", Route(body=FEED_A))
    assert fetch_one(old, store).status == "ok"
    state = store.get(old)
    assert state is not None and state.current_url == old
    fetch_one(old, store)
    assert len(feed_server.seen("/tmp.xml")) == 2


def test_permanent_then_temporary_hop_stores_only_the_permanent_part(
        feed_server: FeedServer, store: FeedStateStore) -> None:
    start = feed_server.route("/p.xml", Route(status=301, location="/t.xml"))
    middle = feed_server.route("/t.xml", Route(status=302, location="/final.xml"))
    feed_server.route("/final.xml", Route(body=FEED_A))
    assert fetch_one(start, store).status == "ok"
    state = store.get(start)
    assert state is not None and state.current_url == middle


def test_redirect_loop_is_an_error(feed_server: FeedServer) -> None:
    url = feed_server.route("/loop", Route(status=302, location="/loop"))
    outcome = fetch_one(url)
    assert outcome.status == "error" and "redirects" in (outcome.error or "")


def test_410_retires_the_feed_for_good(feed_server: FeedServer, store: FeedStateStore) -> None:
    url = feed_server.route("/gone.xml", Route(status=410))
    outcome = fetch_one(url, store)
    assert (outcome.status, outcome.http_status) == ("retired", 410)
    assert fetch_one(url, store, settings=FetchSettings(per_host_delay=0,
                                                        respect_schedule=False)).status == "retired"
    assert len(feed_server.seen("/gone.xml")) == 1
    state = store.get(url)
    assert state is not None and state.retired


def test_429_honours_retry_after_seconds(feed_server: FeedServer, store: FeedStateStore) -> None:
    url = feed_server.route("/busy.xml", Route(status=429, headers={"Retry-After": "120"}),
                            Route(body=FEED_A))
    before = time.time()
    outcome = fetch_one(url, store)
    assert (outcome.status, outcome.http_status) == ("error", 429)
    assert "retry after 120 s" in (outcome.error or "")
    state = store.get(url)
    assert state is not None and state.next_due is not None
    assert before + 119 <= state.next_due <= time.time() + 121
    assert fetch_one(url, store).status == "not_due"
    assert len(feed_server.seen("/busy.xml")) == 1          # not asked again before it is due
    unscheduled = FetchSettings(per_host_delay=0, respect_schedule=False)
    assert fetch_one(url, store, settings=unscheduled).status == "ok"
    state = store.get(url)
    assert state is not None and state.error_count == 0


def test_503_honours_retry_after_http_date(feed_server: FeedServer, store: FeedStateStore) -> None:
    when = email.utils.formatdate(time.time() + 3600, usegmt=True)
    url = feed_server.route("/down.xml", Route(status=503, headers={"Retry-After": when}))
    outcome = fetch_one(url, store)
    assert (outcome.status, outcome.http_status) == ("error", 503)
    state = store.get(url)
    assert state is not None and state.next_due is not None
    assert time.time() + 3000 < state.next_due < time.time() + 3700


def test_failures_back_off_exponentially_with_a_cap(feed_server: FeedServer,
                                                    store: FeedStateStore) -> None:
    url = feed_server.route("/broken.xml", Route(status=500))
    settings = FetchSettings(per_host_delay=0, respect_schedule=False, backoff_base=60,
                             backoff_cap=200)
    delays = []
    for _ in range(4):
        before = time.time()
        outcome = fetch_one(url, store, settings=settings)
        assert outcome.status == "error" and outcome.error == "HTTP 500 Internal Server Error"
        state = store.get(url)
        assert state is not None and state.next_due is not None
        delays.append(round((state.next_due - before) / 10) * 10)
    assert delays == [60, 120, 200, 200]
    state = store.get(url)
    assert state is not None and state.error_count == 4


def test_404_and_refused_connection_are_readable_errors(feed_server: FeedServer) -> None:
    assert fetch_one(feed_server.url("/nothing-here")).error == "HTTP 404 Not Found"
    closed = FeedServer().start()
    dead_url = closed.url("/x.xml")
    closed.stop()
    outcome = fetch_one(dead_url)
    assert outcome.status == "error" and "connection failed" in (outcome.error or "")


def test_slow_drip_hits_the_deadline(feed_server: FeedServer) -> None:
    url = feed_server.route("/drip.xml", Route(body=FEED_A, drip=0.05))
    outcome = fetch_one(url, settings=FetchSettings(timeout=5, deadline=0.5, per_host_delay=0))
    assert outcome.status == "error" and "too slow" in (outcome.error or "")


def test_body_cut_by_the_deadline_without_content_length_is_not_complete(
        feed_server: FeedServer, store: FeedStateStore) -> None:
    """Issue 14: 16 of 20 items arrived, the deadline closed the socket, and the cut body was
    taken as the whole feed, its ETag saved, so the next run got 304 and never read the rest."""
    items = "".join(f"<item><title>story {i}</title><guid>g{i}</guid></item>" for i in range(20))
    body = f'<rss version="2.0"><channel><title>t</title>{items}</channel></rss>'.encode()
    cut = body.index(b"<item><title>story 16")
    url = feed_server.route("/cut.xml", Route(body=body, etag='"v1"', stall_after=cut, stall=5.0))
    outcome = fetch_one(url, store, settings=FetchSettings(timeout=4, deadline=1.0, per_host_delay=0))
    assert outcome.status == "error" and "too slow" in (outcome.error or "")
    assert outcome.document is None
    state = store.get(url)
    assert state is None or state.etag is None


def test_headers_dripped_a_byte_at_a_time_hit_the_deadline() -> None:
    """Read timeouts apply per socket read: only the deadline stops a server that drips its
    status line and headers (a slowloris answer) while staying under the read timeout."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stop = threading.Event()

    def drip() -> None:
        conn, _ = listener.accept()
        with conn:
            for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nX-Pad: " + b"a" * 400:
                if stop.wait(0.2):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    server = threading.Thread(target=drip, daemon=True)
    server.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/feed.xml"
    try:
        outcome = fetch_one(url, settings=FetchSettings(timeout=5, deadline=1.5, per_host_delay=0))
    finally:
        stop.set()
        listener.close()
    assert outcome.status == "error" and "too slow" in (outcome.error or ""), outcome


def test_endless_body_hits_the_size_cap(feed_server: FeedServer) -> None:
    url = feed_server.route("/endless.xml", Route(endless=True))
    outcome = fetch_one(url, settings=FetchSettings(max_bytes=2**20, per_host_delay=0))
    assert outcome.status == "error" and "too large" in (outcome.error or "")


def test_declared_length_over_the_cap_is_refused_unread(feed_server: FeedServer) -> None:
    url = feed_server.route("/big.xml", Route(body=b"x" * 5000))
    outcome = fetch_one(url, settings=FetchSettings(max_bytes=1000, per_host_delay=0))
    assert outcome.status == "error" and "Content-Length 5000" in (outcome.error or "")


def test_gzip_body_is_decoded(feed_server: FeedServer) -> None:
    url = feed_server.route("/gz.xml", Route(body=FEED_A, gzip=True))
    outcome = fetch_one(url)
    assert outcome.document is not None and outcome.document.body == FEED_A


def test_gzip_bomb_stops_at_the_cap(feed_server: FeedServer) -> None:
    url = feed_server.route("/bomb.gz", Route(body=b"\0" * (64 * 2**20), gzip=True))
    assert len(gzip.compress(b"\0" * 2**20)) < 2**20 // 100          # it is a bomb
    outcome = fetch_one(url, settings=FetchSettings(max_bytes=2**20, per_host_delay=0))
    assert outcome.status == "error" and "after decompression" in (outcome.error or "")


def test_wrong_charset_header_still_gives_correct_text(feed_server: FeedServer) -> None:
    arabic = "الرقة: معارك عنيفة في المدينة مع تقدم القوات نحو وسط الرقة"
    body = ('<?xml version="1.0" encoding="windows-1256"?><rss version="2.0"><channel><title>t'
            f"</title><item><title>{arabic}</title><description>{arabic}</description>"
            "<link>http://e.org/1</link></item></channel></rss>").encode("windows-1256")
    url = feed_server.route("/cs.xml", Route(body=body,
                                             content_type="text/xml; charset=iso-8859-1"))
    outcome = fetch_one(url)
    assert outcome.document is not None
    assert parse_feed(outcome.document).entries[0].title == arabic


def test_xml_bomb_is_fetched_then_refused_by_the_parser(feed_server: FeedServer) -> None:
    bomb = (b'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY a "' + b"A" * 100_000
            + b'">\n]>\n<rss version="2.0"><channel><title>t</title><item><title>'
            + b"&a;" * 20_000 + b"</title></item></channel></rss>")
    outcome = fetch_one(feed_server.route("/bomb.xml", Route(body=bomb)))
    assert outcome.document is not None
    with pytest.raises(FeedError):
        parse_feed(outcome.document)


def test_local_files_read_as_files(tmp_path: Path) -> None:
    path = tmp_path / "local.xml"
    path.write_bytes(FEED_A)
    outcome = fetch_one(str(path))
    assert outcome.status == "ok" and outcome.document is not None
    assert outcome.document.body == FEED_A and outcome.document.url == str(path)
    assert fetch_one(path.as_uri()).status == "ok"
    missing = fetch_one(str(tmp_path / "missing.xml"))
    assert missing.status == "error" and "missing.xml" in (missing.error or "")
    assert fetch_one("ftp://example.org/feed.xml").error == \
        "unsupported URL scheme: ftp://example.org/feed.xml"


def test_progress_and_one_outcome_per_feed(feed_server: FeedServer, tmp_path: Path) -> None:
    urls = [feed_server.route(f"/f{i}.xml", Route(body=FEED_A)) for i in range(12)]
    urls.append(feed_server.url("/missing.xml"))
    feeds = [FeedSource(url=u, name=f"f{i}") for i, u in enumerate(urls)]
    calls: list[tuple[int, int]] = []
    outcomes = list(fetch_feeds(feeds, store=None, settings=FetchSettings(concurrency=3, per_host_delay=0),
                                progress=lambda done, total, _: calls.append((done, total))))
    assert sorted(o.feed.name for o in outcomes) == sorted(f.name for f in feeds)
    assert [o.status for o in outcomes].count("ok") == 12
    assert calls == [(i, 13) for i in range(1, 14)]


def test_status_text_shows_each_feeds_health(feed_server: FeedServer,
                                             store: FeedStateStore) -> None:
    good = FeedSource(url=feed_server.route("/good.xml", Route(body=FEED_A)), name="good")
    gone = FeedSource(url=feed_server.route("/gone.xml", Route(status=410)), name="gone")
    bad = FeedSource(url=feed_server.route("/bad.xml", Route(status=500)), name="bad")
    new = FeedSource(url=feed_server.url("/new.xml"), name="new")
    list(fetch_feeds([good, gone, bad], store=store, settings=FAST))
    text = feeds_status_text(store, [good, gone, bad, new])
    lines = {line.split()[0]: line for line in text.splitlines()}
    assert "last status" in lines["feed"] and "next due" in lines["feed"]
    assert "ok (200)" in lines["good"] and lines["good"].rstrip().endswith("no")
    assert "retired" in lines["gone"] and lines["gone"].rstrip().endswith("yes")
    assert "HTTP 500" in lines["bad"] and " 1 " in lines["bad"]
    assert "never fetched" in lines["new"]


def test_mark_new_items(store: FeedStateStore, feed_server: FeedServer) -> None:
    url = feed_server.route("/n.xml", Route(body=FEED_A))
    fetch_one(url, store)
    store.mark_new_items(url, 4_000_000_000.0)
    state = store.get(url)
    assert state is not None and state.last_new_item == 4_000_000_000.0


def test_backoff_of_a_long_dead_feed_stays_capped(feed_server: FeedServer,
                                                 store: FeedStateStore) -> None:
    url = feed_server.route("/dead.xml", Route(status=500))
    fetch_one(url, store)
    state = store.get(url)
    assert state is not None
    store.put(state.replace(error_count=5000))
    before = time.time()
    outcome = fetch_one(url, store, settings=FetchSettings(per_host_delay=0,
                                                           respect_schedule=False))
    assert outcome.status == "error"
    state = store.get(url)
    assert state is not None and state.error_count == 5001 and state.next_due is not None
    assert state.next_due <= before + FetchSettings().backoff_cap + 60
