"""CronJob schedules: the five fields, names, steps, macros and Vixie cron's day rule."""

from __future__ import annotations

import datetime

import pytest

from cores.controlplane import cron

UTC = datetime.timezone.utc


def at(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


@pytest.mark.parametrize("schedule, after, expected", [
    ("*/1 * * * *", "2026-12-03 10:00", "2026-12-03 10:01"),
    ("*/15 * * * *", "2026-12-03 10:07", "2026-12-03 10:15"),
    ("5 4 * * *", "2026-12-03 10:00", "2026-12-04 04:05"),
    ("0 0 1 jan *", "2026-12-03 10:00", "2027-01-01 00:00"),
    ("0 9 * * mon-fri", "2026-12-04 10:00", "2026-12-07 09:00"),  # Friday after 9: next Monday
    ("0 0 13 * 5", "2026-12-03 10:00", "2026-12-04 00:00"),       # both day fields: either matches (a Friday)
    ("0 0 * * 7", "2026-12-03 10:00", "2026-12-06 00:00"),        # 7 is Sunday too
    ("@hourly", "2026-12-03 10:30", "2026-12-03 11:00"),
    ("@weekly", "2026-12-03 10:30", "2026-12-06 00:00"),
    ("10-20/5 * * * ?", "2026-12-03 10:16", "2026-12-03 10:20"),
    ("1,31 * * * *", "2026-12-03 10:01", "2026-12-03 10:31"),
])
def test_next_time(schedule: str, after: str, expected: str) -> None:
    assert cron.parse(schedule).next_after(at(after)) == at(expected)


def test_a_schedule_that_never_fires_has_no_next_time() -> None:
    assert cron.parse("0 0 30 2 *").next_after(at("2026-12-03 10:00")) is None


@pytest.mark.parametrize("schedule", ["", "* * * *", "60 * * * *", "* 24 * * *", "*/0 * * * *", "5-1 * * * *",
                                      "@every 5m", "a * * * *", "* * * foo *"])
def test_bad_schedules(schedule: str) -> None:
    with pytest.raises(cron.CronError):
        cron.parse(schedule)
