"""POST alerts as JSON to a webhook, with retries, a timeout and a result per alert.

A delivery never raises: `post_alert` returns a `WebhookResult`; a final failure carries the
reason so the caller can dead-letter it (`failure_dead_letter`). Retried: connection errors,
timeouts, HTTP 408, 429 and 5xx, waiting `backoff`, then twice as long each time (or the
server's `Retry-After` seconds, when given and shorter than a minute). Not retried: other
4xx answers, which would fail the same way again.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, cast
from urllib.parse import urlsplit

import apache_beam as beam
import requests

from transforms.records import Alert, DeadLetter
from transforms.spike_rules import WebhookSpec
from transforms.timeutil import now_iso

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 60.0
USER_AGENT = "mediamon-alerts/1"


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebhookResult:
    ok: bool
    attempts: int
    status: int | None = None      # HTTP status of the last answer, None if none came
    error: str | None = None       # why the last attempt failed


def post_alert(alert: Alert | Mapping[str, Any], spec: WebhookSpec, *,
               session: requests.Session | None = None,
               sleep: Callable[[float], None] = time.sleep) -> WebhookResult:
    """POST one alert record; up to 1 + spec.retries attempts."""
    body = json.dumps(alert.to_json() if isinstance(alert, Alert) else dict(alert),
                      ensure_ascii=False).encode("utf-8")
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT,
               **dict(spec.headers)}
    http = session or requests.Session()
    status: int | None = None
    error = ""
    attempts = 0
    try:
        for attempt in range(spec.retries + 1):
            attempts = attempt + 1
            wait = spec.backoff * 2 ** attempt
            try:
                response = http.post(spec.url, data=body, headers=headers, timeout=spec.timeout,
                                     allow_redirects=False)
            except requests.RequestException as exc:
                status, error = None, f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return WebhookResult(ok=True, attempts=attempts, status=status)
                error = f"HTTP {status} {response.reason or ''}".strip()
                if status not in RETRY_STATUSES:
                    break
                wait = _retry_after(response, wait)
            if attempt < spec.retries:
                sleep(wait)
    finally:
        if session is None:
            http.close()
    return WebhookResult(ok=False, attempts=attempts, status=status, error=error)


def post_alerts(alerts: Iterable[Alert], spec: WebhookSpec, *,
                sleep: Callable[[float], None] = time.sleep) -> list[tuple[Alert, WebhookResult]]:
    """Deliver several alerts over one connection pool, each with its own result."""
    with requests.Session() as session:
        return [(alert, post_alert(alert, spec, session=session, sleep=sleep)) for alert in alerts]


def failure_dead_letter(alert: Alert, result: WebhookResult, spec: WebhookSpec, at: str) -> DeadLetter:
    """The dead letter for an alert that could not be delivered. Its source is the webhook's
    scheme and host only: webhook URLs often carry a secret token in their path or query."""
    parts = urlsplit(spec.url)
    return DeadLetter.of(stage="webhook", error=f"after {result.attempts} attempts: {result.error}",
                         source=f"{parts.scheme}://{parts.hostname or ''}",
                         raw=json.dumps(alert.to_json(), ensure_ascii=False), at=at)


def _retry_after(response: requests.Response, default: float) -> float:
    value = response.headers.get("Retry-After", "")
    try:
        seconds = float(value)
    except ValueError:
        return default                 # absent, or an HTTP date: keep our own backoff
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


class _PostAlertFn(beam.DoFn):
    """POSTs each alert to the webhook (with retries); an undeliverable alert -> dead letter."""

    def __init__(self, spec: Any) -> None:
        self.spec = spec
        self.session: Any = None

    def setup(self) -> None:
        import requests
        self.session = requests.Session()

    def teardown(self) -> None:
        if self.session is not None:
            self.session.close()

    def process(self, alert: Any) -> Iterator[DeadLetter]:
        result = post_alert(alert, self.spec, session=self.session)
        if not result.ok:
            log.warning("webhook: alert %s/%s not delivered: %s", alert.topic, alert.window_start, result.error)
            yield failure_dead_letter(alert, result, self.spec, now_iso())


class PostAlerts(beam.PTransform):
    """Alert -> (POST to the configured webhook) -> DeadLetter for each alert not delivered."""

    def __init__(self, spec: Any) -> None:
        super().__init__()
        self.spec = spec

    def expand(self, alerts: beam.PCollection) -> beam.PCollection:
        return cast("beam.PCollection", alerts | "Post" >> beam.ParDo(_PostAlertFn(self.spec)))
