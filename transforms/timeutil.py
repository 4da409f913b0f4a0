"""Time parsing and formatting: everything leaves as ISO-8601 UTC with a Z."""
from __future__ import annotations

import email.utils
import re
from datetime import datetime, timezone

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def iso_utc(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_iso() -> str:
    return iso_utc(datetime.now(timezone.utc))


def parse_time(value: object) -> datetime | None:
    """ISO-8601 (with or without zone; naive means UTC), RFC 2822, or epoch seconds; else None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            return datetime.fromtimestamp(float(value), tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    text = str(value).strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def to_epoch(iso: str) -> float:
    moment = parse_time(iso)
    if moment is None:
        raise ValueError(f"not an ISO-8601 time: {iso!r}")
    return (moment - EPOCH).total_seconds()


def from_epoch(seconds: float) -> str:
    return iso_utc(datetime.fromtimestamp(seconds, tz=timezone.utc))


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(value: object) -> float:
    """`90s`, `15m`, `1h`, `2d`, `1w` (or a bare number of seconds) -> seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 90s, 15m, 1h or 2d, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    match = _DURATION_RE.match(str(value))
    if not match:
        raise ValueError(f"expected a duration like 90s, 15m, 1h or 2d, got {value!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]
