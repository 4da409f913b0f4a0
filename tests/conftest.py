"""Shared pytest fixtures, and the fast tier (`make test-fast`, `pytest -m "not slow"`).

A test is `slow` when it runs whole jobs (a `mediamon` subprocess, a Beam pipeline over a config,
a browser, the Pub/Sub emulator, Prism): those modules are listed here, and any test that uses
the emulator, Prism or browser fixtures is slow wherever it lives. Everything else (pure logic
and single-stage TestPipeline tests) is the fast tier.
"""
from __future__ import annotations

from typing import Iterator

import pytest

from tests.feedserver import FeedServer

SLOW_MODULES = {
    "test_alerts_pipeline", "test_cli_feeds", "test_corpus_parse", "test_corpus_run", "test_e2e_batch", "test_poll_http",
    "test_report", "test_runners", "test_scheduled", "test_serve_browser", "test_stream_e2e", "test_hostile",
}
SLOW_FIXTURES = {"pubsub_emulator", "prism", "prism_runner", "chromium", "browser"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module is not None else ""
        fixtures = set(getattr(item, "fixturenames", ()))
        if module in SLOW_MODULES or fixtures & SLOW_FIXTURES or "subprocess_run" in fixtures:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A local feed server on 127.0.0.1 (tests/feedserver.py), stopped after the test."""
    server = FeedServer().start()
    try:
        yield server
    finally:
        server.stop()
