"""Cron schedules as CronJobs write them: five fields, names, ranges, steps, and the @ macros.

``minute hour day-of-month month day-of-week``, each ``*``, ``?`` (as ``*``), a value, a range
``a-b``, a step ``*/n`` or ``a-b/n``, or a list of those; months and weekdays also by their
three-letter English names, Sunday as 0 or 7. ``@yearly`` (``@annually``), ``@monthly``,
``@weekly``, ``@daily`` (``@midnight``) and ``@hourly`` stand for their usual five fields. As in
Vixie cron (and robfig/cron, which kube-controller-manager uses), when both day fields are
restricted a day matches either; when one is ``*``, the other alone decides.
"""

from __future__ import annotations

import dataclasses
import datetime

MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
          "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
_MONTHS = {name: number for number, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
_DAYS = {name: number for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_NO_NAMES: dict[str, int] = {}
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (("minute", 0, 59, _NO_NAMES), ("hour", 0, 23, _NO_NAMES), ("day of month", 1, 31, _NO_NAMES), ("month", 1, 12, _MONTHS),
           ("day of week", 0, 7, _DAYS))
SEARCH_DAYS = 366 * 5  # a schedule that never fires in five years (Feb 30) has no next time


class CronError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class Schedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool      # the day-of-month field is *
    any_weekday: bool  # the day-of-week field is *

    def day_matches(self, day: datetime.date) -> bool:
        in_month = day.day in self.days
        in_week = (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return in_month and in_week
        return in_month or in_week

    def next_after(self, moment: datetime.datetime) -> datetime.datetime | None:
        """The first time strictly after ``moment`` (to the minute, in ``moment``'s zone) that matches."""
        start = (moment + datetime.timedelta(minutes=1)).replace(second=0, microsecond=0)
        day = start.date()
        for _ in range(SEARCH_DAYS):
            if day.month in self.months and self.day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        candidate = datetime.datetime(day.year, day.month, day.day, hour, minute, tzinfo=moment.tzinfo)
                        if candidate >= start:
                            return candidate
            day += datetime.timedelta(days=1)
        return None


def _value(text: str, low: int, high: int, names: dict[str, int], field: str) -> int:
    number = names.get(text.lower()) if names else None
    if number is None:
        if not text.isdigit():
            raise CronError(f"{field}: {text!r} is not a number")
        number = int(text)
    if not low <= number <= high:
        raise CronError(f"{field}: {number} is out of range [{low}, {high}]")
    return number


def _field(text: str, low: int, high: int, names: dict[str, int], field: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        span, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{field}: bad step {step_text!r}")
            step = int(step_text)
        if span in ("*", "?"):
            first, last = low, high
        elif "-" in span:
            start, _, end = span.partition("-")
            first, last = _value(start, low, high, names, field), _value(end, low, high, names, field)
            if first > last:
                raise CronError(f"{field}: range {span!r} goes backwards")
        else:
            first = _value(span, low, high, names, field)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    return frozenset(values)


def parse(text: str) -> Schedule:
    """The schedule of a CronJob's ``spec.schedule``; CronError says what is wrong."""
    expression = MACROS.get(text.strip().lower(), text.strip())
    if expression.startswith("@"):
        raise CronError(f"unrecognized descriptor: {text}")
    parts = expression.split()
    if len(parts) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(parts)}: {text}")
    sets = [_field(part, low, high, names, field) for part, (field, low, high, names) in zip(parts, _FIELDS)]
    weekdays = frozenset(day % 7 for day in sets[4])
    return Schedule(sets[0], sets[1], sets[2], sets[3], weekdays,
                    any_day=parts[2] in ("*", "?"), any_weekday=parts[4] in ("*", "?"))
