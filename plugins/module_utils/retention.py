# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Retention periods, expiry dates and durations, as plain functions.

Retention is what the ``Retention`` tag and the ``retention`` option say: a
count of days, weeks, months or years.  Months and years follow the calendar
(31 January + 1 month = 28 or 29 February), which is what ``+6 months`` means
to people who write retention in cron lines.
"""

import calendar
import datetime
import re

_UNITS = {
    "d": ("days", 1),
    "day": ("days", 1),
    "days": ("days", 1),
    "w": ("days", 7),
    "week": ("days", 7),
    "weeks": ("days", 7),
    "m": ("months", 1),
    "month": ("months", 1),
    "months": ("months", 1),
    "y": ("months", 12),
    "year": ("months", 12),
    "years": ("months", 12),
}

_RETENTION_RE = re.compile(r"^\+?\s*(\d+)\s*([a-z]*)$")


class Retention:
    """A retention period: whole days plus whole calendar months."""

    def __init__(self, days=0, months=0, text=None):
        self.days = days
        self.months = months
        self.text = text if text is not None else describe(days, months)

    def expiry(self, start):
        """The date a backup taken on ``start`` (a date) expires."""
        return add_months(start, self.months) + datetime.timedelta(days=self.days)

    def __eq__(self, other):
        return isinstance(other, Retention) and (self.days, self.months) == (other.days, other.months)

    def __repr__(self):
        return "Retention(days={0}, months={1})".format(self.days, self.months)


def describe(days, months):
    parts = []
    if months:
        parts.append("{0} month{1}".format(months, "" if months == 1 else "s"))
    if days or not parts:
        parts.append("{0} day{1}".format(days, "" if days == 1 else "s"))
    return " ".join(parts)


def parse_retention(value):
    """Parse ``7``, ``30d``, ``2w``, ``6m``, ``1y``, ``+30 days``, ``+6 months``.

    Raises ValueError, with the value in the message, for anything else and
    for periods shorter than one day.
    """
    text = str(value).strip()
    match = _RETENTION_RE.match(text.lower())
    if not match:
        raise ValueError(
            "retention {0!r} is not a period: use a number of days (7), or a count with a unit "
            "(30d, 2w, 6m, 1y, '+30 days', '+6 months')".format(text)
        )
    count = int(match.group(1))
    unit = match.group(2) or "d"
    if unit not in _UNITS:
        raise ValueError("retention {0!r} has an unknown unit {1!r}: use d, w, m or y".format(text, unit))
    if count < 1:
        raise ValueError("retention {0!r} must be at least one day".format(text))
    field, factor = _UNITS[unit]
    if field == "days":
        return Retention(days=count * factor)
    return Retention(months=count * factor)


def add_months(start, months):
    """``start`` plus whole calendar months, clamped to the month's last day."""
    if not months:
        return start
    month_index = start.month - 1 + months
    year = start.year + month_index // 12
    month = month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)
