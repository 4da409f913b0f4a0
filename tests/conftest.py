"""Shared pytest fixtures."""
from __future__ import annotations

from typing import Iterator

import pytest

from tests.feedserver import FeedServer


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A local feed server on 127.0.0.1 (tests/feedserver.py), stopped after the test."""
    server = FeedServer().start()
    try:
        yield server
    finally:
        server.stop()
