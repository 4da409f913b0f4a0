"""transforms/timeutil.py: times that must read back, durations that must make sense (issue 14)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from transforms.timeutil import from_epoch, in_range, iso_utc, parse_duration, parse_time, to_epoch


def test_times_outside_the_believable_range_still_read_back() -> None:
    """Year 1 was written `1-01-01T...`, which nothing could read back."""
    year_one = datetime(1, 1, 1, tzinfo=timezone.utc)
    assert iso_utc(year_one) == "0001-01-01T00:00:00Z"
    assert parse_time(iso_utc(year_one)) == year_one
    assert from_epoch(to_epoch("0001-01-01T00:00:00Z")) == "0001-01-01T00:00:00Z"
    assert parse_time("0001-01-01T00:00:00+05:00") is None          # before datetime.min in UTC
    assert parse_time("9999-12-31T23:00:00-05:00") is None          # after datetime.max in UTC
    assert not in_range(year_one) and not in_range(datetime(9999, 12, 31, tzinfo=timezone.utc))
    assert in_range(datetime(2017, 10, 15, tzinfo=timezone.utc))


@pytest.mark.parametrize("value", [-1, -0.5, "-5s", float("nan"), float("inf"), float("-inf"), "9" * 400 + "w"])
def test_negative_nan_and_infinite_durations_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)
