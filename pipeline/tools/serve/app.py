"""`mediamon serve`: the live dashboard (Starlette app, run by uvicorn).

Routes: `/` the page (static HTML + JS; the state lives in the URL query), `/api/dashboard` every
panel's data for the URL's filters as JSON (the page polls it; `?version=` answers
`{"unchanged": true}` while no sink file changed), `/api/articles` one page of latest articles,
`/static/...` the page's assets and plotly.min.js from the installed plotly package (no CDN).

Query parameters (all optional): `since`, `until` (ISO-8601), `period` (`24h`, `7d`, ... back
from the newest stored window; `all`), `topic`, `language`, `source`, `metric` (`articles` or
`stories`), default: the last 30 days stored; `before` (cursor `PUBLISHED|ID` from a previous page), `limit` (1..200), `refresh`
(seconds between polls, 0 = off). A malformed one is a 400 with a message.

Binds 127.0.0.1 unless told otherwise; another address needs `--allow-remote` and a token, then
every request must carry it (`?token=`, a `Bearer` header, or the cookie set on first visit).
"""
from __future__ import annotations

import hmac
import html
import logging
import re
import sqlite3
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, Awaitable, Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from pipeline.config import Config
from pipeline.feeds.documents import all_feeds
from pipeline.tools.serve.queries import Filters, Store, store_of
from transforms.records import DeadLetter
from transforms.timeutil import iso_utc, parse_duration

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
PARAMS = {"since", "until", "period", "topic", "language", "source", "metric", "before", "limit",
          "refresh", "version", "token"}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_PERIOD = re.compile(r"^\d{1,6}[smhdw]$")   # bounded, so a period stays a sane number of seconds
_LANG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{1,8})?$")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


class BadParam(ValueError):
    """A malformed query parameter (answered with 400 and this message)."""


def plotly_js() -> Path:
    import plotly
    return Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


def _time(name: str, value: str) -> str:
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadParam(f"{name}={value!r} is not an ISO-8601 time (e.g. 2017-10-15 or 2017-10-15T09:00:00Z)")
    return iso_utc(moment)


def _text(name: str, value: str) -> str:
    if len(value) > 300 or any(ord(c) < 32 for c in value):
        raise BadParam(f"{name}: at most 300 printable characters")
    return value


def parse_filters(query: Any) -> tuple[Filters, float]:
    """Filters and the refresh interval from a request's query parameters; BadParam if malformed."""
    unknown = sorted(set(query.keys()) - PARAMS)
    if unknown:
        raise BadParam(f"unknown query parameter {unknown[0]!r}; known: {', '.join(sorted(PARAMS - {'token'}))}")
    get = {k: v for k, v in query.items() if v != ""}
    f = Filters()
    if "since" in get:
        f = replace(f, since=_time("since", get["since"]))
    if "until" in get:
        f = replace(f, until=_time("until", get["until"]))
    if f.since and f.until and f.since >= f.until:
        raise BadParam(f"since ({f.since}) must be before until ({f.until})")
    if get.get("period") == "all":
        f = replace(f, period=None)
    elif "period" in get:
        try:
            seconds = parse_duration(get["period"]) if _PERIOD.match(get["period"]) else 0.0
        except ValueError:
            seconds = 0.0
        if not seconds:
            raise BadParam(f"period={get['period']!r}: write a duration such as 24h or 7d, or 'all'")
        f = replace(f, period=seconds)
    if "topic" in get:
        f = replace(f, topic=_text("topic", get["topic"]))
    if "source" in get:
        f = replace(f, source=_text("source", get["source"]))
    if "language" in get:
        if not (_LANG.match(get["language"]) or get["language"] == "und"):
            raise BadParam(f"language={get['language']!r}: a language code such as ar, en, ku")
        f = replace(f, language=get["language"])
    if "metric" in get:
        if get["metric"] not in ("articles", "stories"):
            raise BadParam(f"metric={get['metric']!r}: articles or stories")
        f = replace(f, metric=get["metric"])
    if "before" in get:
        published, sep, ident = get["before"].partition("|")
        if not sep or not ident:
            raise BadParam("before: the cursor PUBLISHED|ID given by the previous page")
        f = replace(f, before=(_time("before", published), _text("before", ident)))
    if "limit" in get:
        if not get["limit"].isdigit() or not 1 <= int(get["limit"]) <= 200:
            raise BadParam(f"limit={get['limit']!r}: a whole number from 1 to 200")
        f = replace(f, limit=int(get["limit"]))
    refresh = 5.0
    if "refresh" in get:
        try:
            refresh = float(get["refresh"])
        except ValueError:
            raise BadParam(f"refresh={get['refresh']!r}: seconds between updates (0 = off)")
        if not 0 <= refresh <= 3600:
            raise BadParam("refresh: 0 to 3600 seconds")
    return f, refresh


class _Guard(BaseHTTPMiddleware):
    """Security headers on every answer; the token when bound beyond loopback."""

    def __init__(self, app: Any, token: str | None) -> None:
        super().__init__(app)
        self.token = token

    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        given = None
        if self.token:
            auth = request.headers.get("authorization", "")
            given = (request.query_params.get("token") or request.cookies.get("mediamon_token")
                     or (auth[7:] if auth.lower().startswith("bearer ") else None))
            if not given or not hmac.compare_digest(given.encode(), self.token.encode()):
                return PlainTextResponse("401: this dashboard needs its token (?token=...)", status_code=401)
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers.setdefault("Cache-Control", "no-store")
        if self.token and request.query_params.get("token"):
            response.set_cookie("mediamon_token", self.token, httponly=True, samesite="strict")
        return response


def create_app(config: Config, token: str | None = None, store: Store | None = None,
               allowed_hosts: list[str] | None = None) -> Starlette:
    """The app; `allowed_hosts` (Host header names) defeats DNS rebinding on a loopback bind."""
    store = store or store_of(config)
    topic_names = {t.id: t.name for t in config.topics}
    keyword_ids = [k.id for k in config.keywords]
    names: dict[str, str] = {}

    def feed_names() -> dict[str, str]:
        if not names:
            unreadable: list[DeadLetter] = []   # an unreadable OPML file only costs its names
            names.update({f.url: f.name for f in all_feeds(config, unreadable)})
            for dead in unreadable:
                log.warning("feed health: %s: %s", dead.raw, dead.error)
        return names

    def bad(exc: Exception) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    def page(request: Request) -> Response:
        try:
            parse_filters(request.query_params)
        except BadParam as exc:
            return HTMLResponse(f"<!doctype html><meta charset=utf-8><title>400</title>"
                                f"<p>400 Bad request: {html.escape(str(exc))}</p><p><a href='/'>reset filters</a></p>",
                                status_code=400)
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    def dashboard(request: Request) -> Response:
        try:
            f, refresh = parse_filters(request.query_params)
        except BadParam as exc:
            return bad(exc)
        version = store.version()
        if request.query_params.get("version") == version:
            return JSONResponse({"unchanged": True, "version": version})
        try:
            status = store.status()
            if status["empty"]:
                return JSONResponse({"version": version, "status": status, "name": config.name,
                                     "refresh": refresh})
            f = store.resolve(f)
            body = {
                "version": version, "name": config.name, "refresh": refresh, "status": status,
                "filters": {"since": f.since, "until": f.until, "topic": f.topic, "language": f.language,
                            "source": f.source, "metric": f.metric},
                "topic_names": topic_names, "keywords": keyword_ids,
                "topics": store.topic_series(f), "languages": store.language_series(f),
                "keyword_trends": store.keyword_series(f), "alerts": store.alerts(f),
                "articles": store.articles(f), "dead_letters": store.dead_letters(f),
                "feeds": store.feeds(feed_names()), "options": store.options(),
                "stories": store.stories(f) if status["story_table"] else [],
            }
        except sqlite3.Error as exc:
            return JSONResponse({"error": f"cannot read the store: {exc}", "version": version}, status_code=503)
        return JSONResponse(body)

    def articles(request: Request) -> Response:
        try:
            f, _ = parse_filters(request.query_params)
        except BadParam as exc:
            return bad(exc)
        try:
            return JSONResponse(store.articles(store.resolve(f)))
        except sqlite3.Error as exc:
            return JSONResponse({"error": f"cannot read the store: {exc}"}, status_code=503)

    def plotly(request: Request) -> Response:
        return FileResponse(plotly_js(), media_type="text/javascript",
                            headers={"Cache-Control": "public, max-age=86400"})

    routes = [
        Route("/", page),
        Route("/api/dashboard", dashboard),
        Route("/api/articles", articles),
        Route("/static/plotly.min.js", plotly),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [Middleware(_Guard, token=token)]
    if allowed_hosts:
        middleware.insert(0, Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts))
    return Starlette(routes=routes, middleware=middleware)


def check_bind(host: str, allow_remote: bool, token: str | None) -> None:
    """Loopback by default; anything else needs --allow-remote and a token."""
    if _is_loopback(host):
        return
    if not allow_remote:
        raise ValueError(f"--host {host} would expose the dashboard beyond this machine: "
                         "add --allow-remote and a --token (or MEDIAMON_SERVE_TOKEN)")
    if not token or len(token) < 16:
        raise ValueError(f"--host {host} needs a --token of at least 16 characters (or MEDIAMON_SERVE_TOKEN)")


def serve(config: Config, host: str = "127.0.0.1", port: int = 8080, token: str | None = None) -> None:
    import uvicorn
    # On loopback only these Host names are answered: a web page that re-points its own domain at
    # 127.0.0.1 (DNS rebinding) gets a 400, not the store. Beyond loopback the token guards.
    hosts = sorted(LOOPBACK | {host}) if _is_loopback(host) else None
    uvicorn.run(create_app(config, token=token, allowed_hosts=hosts), host=host, port=port,
                log_level="warning", access_log=False)


def _is_loopback(host: str) -> bool:
    return host in LOOPBACK or host.startswith("127.")
