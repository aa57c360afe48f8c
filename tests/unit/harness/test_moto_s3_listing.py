"""The listing patch of the moto harness: moto's own pages (entries, order, truncation, tokens), from a sorted index."""

import itertools
import random

import pytest
from moto.backends import get_backend

from tests.harness import moto_s3_listing
from tests.harness.moto_server import ACCOUNT_ID

BUCKET = "listing"
KEYS = [
    "a",
    "a-b",
    "a/",
    "a/b",
    "a/b/c",
    "a/c",
    "a0",
    "b/x/y",
    "b/z",
    "c",
    "\u00e9t\u00e9/1",
    "\U0001f600",
] + ["deep/{0:03d}/leaf".format(n) for n in range(30)]


@pytest.fixture
def backend(aws):
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    for key in random.Random(7).sample(KEYS, len(KEYS)):
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")
    return get_backend("s3")[ACCOUNT_ID]["global"], s3


def names(entries):
    return [entry if isinstance(entry, str) else entry.name for entry in entries]


def walk(backend, function, prefix, delimiter, start_after, max_keys):
    """Every page of one listing, followed through the continuation tokens: [(names, truncated)]."""
    bucket = backend.get_bucket(BUCKET)
    pages, token = [], None
    while True:
        entries, truncated, token = function(backend, bucket, prefix, delimiter, token, start_after, max_keys)
        pages.append((names(entries), truncated))
        if not truncated:
            return pages


@pytest.mark.parametrize(
    "prefix, delimiter, start_after",
    list(itertools.product([None, "a", "a/", "deep/", "zz"], [None, "/"], [None, "a/", "a/b", "deep/010/leaf"])),
)
def test_pages_are_moto_s_own(backend, prefix, delimiter, start_after):
    s3_backend, _client = backend
    for max_keys in (1, 3, 1000):
        patched = walk(s3_backend, moto_s3_listing.list_objects_v2, prefix, delimiter, start_after, max_keys)
        original = walk(s3_backend, moto_s3_listing.ORIGINAL_LIST_OBJECTS_V2, prefix, delimiter, start_after, max_keys)
        assert patched == original


def test_the_index_follows_new_and_deleted_keys_and_delete_markers(backend):
    s3_backend, s3 = backend
    s3.put_object(Bucket=BUCKET, Key="b/new", Body=b"n")
    s3.delete_object(Bucket=BUCKET, Key="c")
    listed = [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET, Prefix="b")["Contents"]]
    assert listed == ["b/new", "b/x/y", "b/z"]
    assert "c" not in [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]

    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.delete_object(Bucket=BUCKET, Key="a0")
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET, MaxKeys=1000)["Contents"]]
    assert "a0" not in keys and keys == sorted(set(KEYS) - {"a0", "c"} | {"b/new"})
    bucket = s3_backend.get_bucket(BUCKET)
    assert names(moto_s3_listing.list_objects_v2(s3_backend, bucket, None, None, None, None, 1000)[0]) == names(
        moto_s3_listing.ORIGINAL_LIST_OBJECTS_V2(s3_backend, bucket, None, None, None, None, 1000)[0]
    )
