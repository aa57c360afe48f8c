"""s3_mirror's option parsing: the engine's options, and errors that name the option and the value."""

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
    max_concurrency=32,
    multipart_threshold=8 * 1024 * 1024,
    fsync=True,
    report_limit=100,
)


def test_options_are_read_for_the_engine():
    options = s3_mirror.parse_options(PARAMS)
    assert options["bucket"] == "photos" and options["prefix"] == "uploads/" and options["dest"] == "/srv/mirror"
    assert options["max_delete"] == (10.0, True) and options["delete"] is True


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(bucket="  "), "bucket must not be empty"),
        (dict(max_concurrency=0), "max_concurrency must be at least 1, got 0"),
        (dict(multipart_threshold=1024), "multipart_threshold must be at least 5242880, got 1024"),
        (dict(report_limit=-1), "report_limit must be at least 0, got -1"),
        (dict(max_delete="ten"), "max_delete must be a number of files (25) or a percentage (10%), got 'ten'"),
    ],
)
def test_bad_options_name_the_option_and_the_value(change, message):
    with pytest.raises(ValueError) as raised:
        s3_mirror.parse_options(dict(PARAMS, **change))
    assert str(raised.value) == message
