import datetime

import pytest

from ansible_collections.opsvault.aws_backup.plugins.module_utils.retention import Retention
from ansible_collections.opsvault.aws_backup.plugins.module_utils.retention import add_months
from ansible_collections.opsvault.aws_backup.plugins.module_utils.retention import parse_retention

DAY = datetime.date(2026, 1, 31)


@pytest.mark.parametrize(
    "text, expiry",
    [
        ("7", datetime.date(2026, 2, 7)),
        (7, datetime.date(2026, 2, 7)),
        ("30d", datetime.date(2026, 3, 2)),
        ("2w", datetime.date(2026, 2, 14)),
        ("6m", datetime.date(2026, 7, 31)),
        ("1m", datetime.date(2026, 2, 28)),
        ("1y", datetime.date(2027, 1, 31)),
        ("+30 days", datetime.date(2026, 3, 2)),
        ("+6 months", datetime.date(2026, 7, 31)),
        ("+1 Month", datetime.date(2026, 2, 28)),
        ("2 weeks", datetime.date(2026, 2, 14)),
        (" 1 year ", datetime.date(2027, 1, 31)),
    ],
)
def test_retention_forms_expire_by_the_calendar(text, expiry):
    assert parse_retention(text).expiry(DAY) == expiry


def test_leap_year_month_end():
    assert parse_retention("1m").expiry(datetime.date(2028, 1, 31)) == datetime.date(2028, 2, 29)
    assert add_months(datetime.date(2026, 11, 30), 3) == datetime.date(2027, 2, 28)
    assert add_months(datetime.date(2026, 12, 15), 1) == datetime.date(2027, 1, 15)


@pytest.mark.parametrize("text", ["-7", "0", "0d", "seven", "7x", "7 fortnights", "", "1.5m", "+"])
def test_bad_retention_names_the_value(text):
    with pytest.raises(ValueError) as error:
        parse_retention(text)
    assert repr(text.strip()) in str(error.value)


def test_retention_reads_as_a_period_and_compares_by_period():
    assert parse_retention("+6 months").text == "6 months"
    assert parse_retention("3w").text == "21 days"
    assert parse_retention("1").text == "1 day"
    assert parse_retention("2w") == Retention(days=14)
    assert parse_retention("1y") == Retention(months=12)
