"""s3_listing: keys to local paths, filters, collisions, the listing's order and timestamps."""

import datetime
import os

import pytest

from ansible_collections.opsvault.aws_backup.plugins.module_utils import s3_listing as listing


def obj(key):
    return listing.S3Object(key, 1, '"e"', 1000.0, ())


@pytest.mark.parametrize(
    "prefix, expected",
    [("", ""), ("photos", "photos/"), ("photos/", "photos/"), ("/photos", "photos/"), (None, "")],
)
def test_prefix_is_read_as_a_folder(prefix, expected):
    assert listing.normalize_prefix(prefix) == expected


@pytest.mark.parametrize(
    "key, expected",
    [
        ("a.jpg", ("a.jpg", False, None)),
        ("2026/11/café ☕ photo.jpg", ("2026/11/café ☕ photo.jpg", False, None)),
        ("dir/", ("dir", True, None)),
        ("a/b/", ("a/b", True, None)),
        ("..dots-in-name..jpg", ("..dots-in-name..jpg", False, None)),
        ("../x", (None, False, "key has a '..' path segment")),
        ("a/../../x", (None, False, "key has a '..' path segment")),
        ("a/..", (None, False, "key has a '..' path segment")),
        ("../", (None, False, "key has a '..' path segment")),
        ("./x", (None, False, "key has a '.' path segment")),
        ("/etc/passwd", (None, False, "key is an absolute path")),
        ("a//b", (None, False, "key has an empty path segment ('//')")),
        ("a\\..\\..\\x", (None, False, "key contains a backslash, a path separator on some systems")),
        ("a\x00b", (None, False, "key contains a NUL character")),
        ("x" * 256, (None, False, "key has a path segment longer than 255 bytes")),
        ("é" * 128, (None, False, "key has a path segment longer than 255 bytes")),
        (
            ".s3_mirror_index.jsonl",
            (None, False, "name '.s3_mirror_index.jsonl' is reserved for the mirror's own files"),
        ),
        ("a/.s3_mirror_tmp/x", (None, False, "name '.s3_mirror_tmp' is reserved for the mirror's own files")),
    ],
)
def test_local_path(key, expected):
    assert listing.local_path(key) == expected


def test_local_path_strips_the_prefix_and_maps_its_own_marker_to_dest():
    assert listing.local_path("uploads/a/b.jpg", "uploads/") == ("a/b.jpg", False, None)
    assert listing.local_path("uploads/", "uploads/") == ("", True, None)
    assert listing.local_path("uploads//x", "uploads/")[2] == "key is an absolute path"
    assert listing.local_path("other/x", "uploads/")[0] is None


def test_accepted_paths_stay_inside_dest(tmp_path):
    dest = str(tmp_path)
    for key in ["a", "a/b", "..a", "a..", "...", "a/...b/c", " a", "a ", "~/x", "$HOME/x", "%2e%2e/x"]:
        relative, _is_directory, reason = listing.local_path(key)
        assert reason is None
        assert listing.is_inside(dest, os.path.realpath(os.path.join(dest, relative)))
    assert not listing.is_inside("/srv/mirror", "/srv/mirror-other/x")
    assert listing.is_inside("/srv/mirror", "/srv/mirror/x")


def test_filters_match_the_path_below_the_prefix():
    images = listing.KeyFilter(include=["*.jpg", "*.png"], exclude=["tmp/*", "*.thumb.jpg"])
    assert images("a.jpg") and images("2026/11/b.png")
    assert not images("a.txt") and not images("tmp/a.jpg") and not images("x.thumb.jpg")
    assert not images("a.JPG")
    assert listing.KeyFilter()("anything/at/all")
    assert not listing.KeyFilter(exclude=["*"])("a")


def test_collisions_between_a_file_and_a_path_below_it():
    tracker = listing.CollisionTracker()
    keys = [("a", False), ("a!b", False), ("a-c/d", False), ("a/b", False), ("a/c/", True), ("ab", False), ("b", True)]
    assert [tracker.check(path, is_dir) for path, is_dir in keys] == [None, None, None, "a", "a", None, None]
    tracker = listing.CollisionTracker()
    assert tracker.check("x", False) is None
    assert tracker.check("x", True) == "x"
    assert tracker.check("x/y/z", False) == "x"
    assert tracker.check("y/z", False) is None
    assert tracker.check("y/z/w", False) == "y/z"


def test_check_sorted_rejects_unordered_listings():
    assert [o.key for o in listing.check_sorted([obj("a"), obj("b"), obj("é")])] == ["a", "b", "é"]
    with pytest.raises(ValueError, match="not in key order"):
        list(listing.check_sorted([obj("b"), obj("a")]))


def test_utf8_byte_order_equals_python_string_order():
    keys = ["a", "z", "é", "€", "\U0001f600", "A", "~", "\x7f", "\u07ff", "\uffff"]
    assert sorted(keys) == sorted(keys, key=lambda key: key.encode("utf-8"))


@pytest.mark.parametrize(
    "timestamp",
    [
        "2026-11-23T01:02:03.000Z",
        "2026-11-23T01:02:03Z",
        "2026-11-23T02:02:03.000+01:00",
        "Mon, 23 Nov 2026 01:02:03 GMT",
        datetime.datetime(2026, 11, 23, 1, 2, 3, tzinfo=datetime.timezone.utc),
    ],
)
def test_listed_objects_read_s3_timestamps_as_epoch_seconds(timestamp):
    page = {
        "Contents": [{"Key": "a", "Size": 3, "ETag": '"e"', "LastModified": timestamp, "ChecksumAlgorithm": ["CRC32"]}]
    }
    [listed] = listing.listed_objects([page, {}])
    when = datetime.datetime(2026, 11, 23, 1, 2, 3, tzinfo=datetime.timezone.utc).timestamp()
    assert listed == listing.S3Object("a", 3, '"e"', when, ("CRC32",))


def test_a_listed_timestamp_that_is_not_one_is_an_error():
    with pytest.raises(ValueError):
        list(listing.listed_objects([{"Contents": [{"Key": "a", "Size": 1, "LastModified": "yesterday"}]}]))


def version(key, when, version_id, size=1, latest=False):
    moment = datetime.datetime.fromtimestamp(when, datetime.timezone.utc)
    return {
        "Key": key,
        "LastModified": moment,
        "VersionId": version_id,
        "IsLatest": latest,
        "Size": size,
        "ETag": '"e"',
    }


def test_objects_as_of_takes_each_keys_newest_version_then_and_honours_delete_markers():
    pages = [
        {
            "Versions": [
                version("a", 300, "a3", latest=True),
                version("a", 100, "a1"),
                version("b", 50, "b1"),
                version("c", 400, "c1", latest=True),
            ],
            "DeleteMarkers": [
                {
                    "Key": "b",
                    "LastModified": datetime.datetime.fromtimestamp(150, datetime.timezone.utc),
                    "VersionId": "bx",
                    "IsLatest": True,
                }
            ],
        },
        # d's versions go on over the page boundary: the first page had its newest, too new.
        {"Versions": [version("d", 500, "d2", latest=True)]},
        {"Versions": [version("d", 120, "d1"), version("e", 10, "e1", latest=True)]},
    ]
    oldest = []
    chosen = [(item.key, item.version_id) for item in listing.objects_as_of(pages, 200.0, oldest)]
    assert chosen == [("a", "a1"), ("d", "d1"), ("e", "e1")]
    assert oldest == [10.0]
    assert [item.version_id for item in listing.objects_as_of(pages, 140.0)] == ["a1", "b1", "d1", "e1"]
    assert [item.version_id for item in listing.objects_as_of(pages, 5.0)] == []
