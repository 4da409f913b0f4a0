"""Time parsing and formatting: everything leaves as ISO-8601 UTC with a Z."""
from __future__ import annotations

import email.utils
import functools
import math
import re
from datetime import datetime, timedelta, timezone

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# Event times outside this range are not believed: a `published` of year 9999 or 0001 is a
# placeholder or a bug, and windows around it cannot even be written (year 10000). A feed entry
# with such a date falls back to its fetch time (as an unparseable date does); a JSON item with
# one is a dead letter (as an unparseable one is).
EARLIEST = datetime(1900, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2200, 1, 1, tzinfo=timezone.utc)


def iso_utc(moment: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SSZ`, the year always four digits (strftime writes year 1 as `1`)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    m = moment.astimezone(timezone.utc)
    return f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}Z"


def in_range(moment: datetime) -> bool:
    """True when `moment` is a believable event time (EARLIEST <= moment < LATEST)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return EARLIEST <= moment < LATEST


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
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:  # year 1 at +05:00 or year 9999 at -05:00 is outside what datetime can hold in UTC
        return moment.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        return None


@functools.lru_cache(maxsize=1 << 16)
def to_epoch(iso: str) -> float:
    """Epoch seconds of an ISO-8601 time (remembered: a batch's articles share their seconds,
    and one article's time is asked for at every stage of a commit)."""
    moment = parse_time(iso)
    if moment is None:
        raise ValueError(f"not an ISO-8601 time: {iso!r}")
    return (moment - EPOCH).total_seconds()


def from_epoch(seconds: float) -> str:
    return iso_utc(EPOCH + timedelta(seconds=seconds))


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(value: object) -> float:
    """`90s`, `15m`, `1h`, `2d`, `1w` (or a bare number of seconds) -> seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 90s, 15m, 1h or 2d, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION_RE.match(str(value))
        if not match:
            raise ValueError(f"expected a duration like 90s, 15m, 1h or 2d, got {value!r}")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a duration must be a finite number of seconds >= 0, got {value!r}")
    return seconds
