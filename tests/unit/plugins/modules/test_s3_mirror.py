"""s3_mirror's option parsing: the engine's options, and errors that name the option and the value."""

import datetime

import pytest

from ansible_collections.opsvault.aws_backup.plugins.modules import s3_mirror

PARAMS = dict(
    bucket=" photos ",
    prefix="uploads",
    dest="/srv/mirror/../mirror",
    include=[],
    exclude=[],
    delete=True,
    max_delete="10%",
    max_changed=None,
    keep_previous=None,
    version_as_of=None,
    verify_existing=False,
    list_concurrency=8,
    max_concurrency=32,
    multipart_threshold=8 * 1024 * 1024,
    fsync=True,
    report_limit=100,
)


def test_options_are_read_for_the_engine():
    options = s3_mirror.parse_options(PARAMS)
    assert options["bucket"] == "photos" and options["prefix"] == "uploads/" and options["dest"] == "/srv/mirror"
    assert options["max_delete"] == (10.0, True) and options["delete"] is True
    assert options["max_changed"] is None and options["keep_previous"] is None and options["version_as_of"] is None


def test_the_guard_and_version_options_are_read_for_the_engine():
    options = s3_mirror.parse_options(
        dict(PARAMS, max_changed="5%", keep_previous="7d", version_as_of="2026-11-23T01:00:00+01:00")
    )
    assert options["max_changed"] == (5.0, True)
    assert options["keep_previous"] == datetime.timedelta(days=7)
    assert options["version_as_of"] == datetime.datetime(2026, 11, 23, 0, 0, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(bucket="  "), "bucket must not be empty"),
        (dict(max_concurrency=0), "max_concurrency must be at least 1, got 0"),
        (dict(list_concurrency=0), "list_concurrency must be at least 1, got 0"),
        (dict(multipart_threshold=1024), "multipart_threshold must be at least 5242880, got 1024"),
        (dict(report_limit=-1), "report_limit must be at least 0, got -1"),
        (dict(max_delete="ten"), "max_delete must be a number of files (25) or a percentage (10%), got 'ten'"),
        (dict(max_changed="150%"), "max_changed must be between 0 and 100% or a count of at least 0, got '150%'"),
        (
            dict(keep_previous="soon"),
            "keep_previous 'soon' is not a duration: use a number of seconds or a count with a unit "
            "(90s, 30m, 1h, 2d, 1w)",
        ),
        (dict(keep_previous="0"), "keep_previous must be longer than 0 seconds, got '0'"),
        (
            dict(version_as_of="yesterday"),
            "version_as_of 'yesterday' is not a date and time: use ISO 8601, for example 2026-11-23T01:00:00Z",
        ),
    ],
)
def test_bad_options_name_the_option_and_the_value(change, message):
    with pytest.raises(ValueError) as raised:
        s3_mirror.parse_options(dict(PARAMS, **change))
    assert str(raised.value) == message
