"""s3_listing: keys to local paths, filters, collisions, the listing's order and timestamps."""

import datetime
import os
import threading
import time

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


class FakeListing:
    """ListObjectsV2 pages of ``page_size`` entries over ``keys``, as S3 returns them (keys and, with the
    delimiter, common prefixes in key order), each page taking ``latency`` seconds; counts the pages
    fetched of each plain (delimiter-less) listing."""

    def __init__(self, keys, page_size=10, latency=0.002):
        self.keys = sorted(keys)
        self.page_size = page_size
        self.latency = latency
        self.fetched = {}
        self.lock = threading.Lock()

    def get_paginator(self, operation):
        assert operation == "list_objects_v2"
        return self

    def paginate(self, Bucket, Prefix, Delimiter=None):  # noqa: N803  pylint: disable=invalid-name
        assert Bucket == "bucket"
        entries = []
        for key in self.keys:
            if not key.startswith(Prefix):
                continue
            rest = key[len(Prefix) :]
            if Delimiter and Delimiter in rest:
                folder = Prefix + rest.split(Delimiter, 1)[0] + Delimiter
                if not entries or entries[-1] != ("folder", folder):
                    entries.append(("folder", folder))
            else:
                entries.append(("key", key))
        for start in range(0, max(1, len(entries)), self.page_size):
            time.sleep(self.latency)
            chunk = entries[start : start + self.page_size]
            if not Delimiter:
                with self.lock:
                    self.fetched[Prefix] = self.fetched.get(Prefix, 0) + 1
            yield {
                "Contents": [{"Key": name} for kind, name in chunk if kind == "key"],
                "CommonPrefixes": [{"Prefix": name} for kind, name in chunk if kind == "folder"],
            }


def test_parallel_pages_lists_the_folders_ahead_up_to_the_page_budget_in_key_order():
    keys = ["a/{0:03d}".format(n) for n in range(200)] + ["b/{0:03d}".format(n) for n in range(200)]
    keys += ["c/{0:03d}".format(n) for n in range(200)]
    client = FakeListing(keys)
    workers = 2
    read, fetched_when_b_was_reached = [], None
    pages = client.paginate(Bucket="bucket", Prefix="", Delimiter="/")
    for page in listing.parallel_pages(client, "bucket", "", workers, pages):
        if fetched_when_b_was_reached is None and page["Contents"][0]["Key"].startswith("b/"):
            with client.lock:
                fetched_when_b_was_reached = dict(client.fetched)
        read.extend(item["Key"] for item in page["Contents"])
        time.sleep(0.01)  # a reader slower than the listings
    assert read == sorted(keys)
    budget = listing.PAGES_AHEAD_PER_WORKER * workers
    # While a/ was read, b/ and c/ listed ahead up to the budget they share; each holds at most one more
    # page, fetched and waiting for the budget.
    ahead = fetched_when_b_was_reached["b/"] + fetched_when_b_was_reached["c/"]
    assert budget <= ahead <= budget + 2
    assert fetched_when_b_was_reached["b/"] > listing.PAGES_IN_FRONT + 1


def test_parallel_pages_of_nested_folders_equal_one_stream_with_a_budget_of_one_page(monkeypatch):
    monkeypatch.setattr(listing, "PAGES_AHEAD_PER_WORKER", 1)
    keys = ["x/{0}/{1}/{2:02d}".format(a, b, n) for a in "pqr" for b in "uv" for n in range(25)]
    keys += ["x/{0:02d}".format(n) for n in range(15)] + ["x/p/top", "x/zz"]
    client = FakeListing(keys, page_size=7, latency=0)
    for workers in (1, 2, 5):
        pages = client.paginate(Bucket="bucket", Prefix="x/", Delimiter="/")
        listed = [
            item["Key"]
            for page in listing.parallel_pages(client, "bucket", "x/", workers, pages)
            for item in page["Contents"]
        ]
        assert listed == sorted(keys)
