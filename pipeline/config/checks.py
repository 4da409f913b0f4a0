"""Validation helpers shared by the config sections: typed getters that record problems."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from transforms.spec import SpecError, SpecErrors
from transforms.timeutil import parse_duration


class Checker:
    """Collects every problem (dotted path, message) instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []

    def err(self, path: str, message: str) -> None:
        self.problems.append((path, message))

    def mapping(self, value: Any, path: str, allowed: set[str], required: set[str] = set()) -> dict[str, Any]:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.err(path, f"expected a mapping, got {type(value).__name__}")
            return {}
        for key in value:
            if key not in allowed:
                hint = ", ".join(sorted(allowed))
                self.err(f"{path}.{key}" if path else str(key), f"unknown key (allowed here: {hint})")
        for key in sorted(required - set(value)):
            self.err(path, f"missing required key '{key}'")
        return value

    def duration(self, value: Any, path: str, default: float | None, positive: bool = False) -> float | None:
        """Seconds (finite, >= 0; > 0 when `positive`), or `default` with the problem recorded."""
        if value is None:
            return default
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.err(path, str(exc))
            return default
        if positive and seconds <= 0:
            self.err(path, f"must be more than 0, got {value!r}")
            return default
        return seconds

    def file_path(self, base: Path, value: Any, path: str) -> Path | None:
        """A path to a file (resolved): not a directory."""
        if not isinstance(value, str) or not value:
            return None
        resolved = resolve_path(base, value)
        if resolved.is_dir():
            self.err(path, f"{value!r} is a directory; give a file path")
        return resolved

    def str_list(self, value: Any, path: str) -> tuple[str, ...] | None:
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.err(path, "expected a list of non-empty strings")
            return None
        return tuple(value)

    def specs(self, path: str, fn: Callable[[], Any], default: Any) -> Any:
        try:
            return fn()
        except SpecErrors as exc:
            for e in exc.errors:
                self.err(join_path(path, e.path), e.message)
        except SpecError as e:
            self.err(join_path(path, e.path), e.message)
        return default


def join_path(base: str, rel: str) -> str:
    if not rel:
        return base
    return f"{base}{rel}" if rel.startswith("[") else f"{base}.{rel}"


def resolve_path(base: Path, value: str) -> Path:
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else (base / p).resolve()


# Google Cloud project ids: 6-30 lower-case letters, digits, hyphens (Beam rejects others at run time)
_PROJECT = r"[a-z][a-z0-9-]{4,28}[a-z0-9]"


def pubsub_name(value: str, kind: str) -> bool:
    """projects/PROJECT/topics/NAME or projects/PROJECT/subscriptions/NAME, with a real project id."""
    return re.fullmatch(rf"projects/{_PROJECT}/{kind}/[A-Za-z][\w.~+%-]{{2,254}}", value) is not None


def is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def default_feed_name(url: str) -> str:
    if is_url(url):
        return urlsplit(url).hostname or url
    return Path(url).name
