"""The listing patch of the moto harness: moto's own pages (entries, order, truncation, tokens), from a sorted index."""

import contextlib
import itertools
import random
import re
import urllib.error
import urllib.parse
import urllib.request
from xml.etree import ElementTree

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


RESPONSE_KEYS = KEYS + [
    "a/b!",
    "a/b/",
    "a/a/x",
    "a&<b>\"'",
    "sp ace/+plus%25",
    "\u00e9t\u00e9/\u00e9",
    "\U0001f600/\U0001f601",
    "\ufb01/x",
]


@contextlib.contextmanager
def unpatched_listing():
    """moto's own ListObjectsV2: its backend listing and its generic response serializer."""
    moto_s3_listing.unapply()
    try:
        yield
    finally:
        moto_s3_listing.apply()


def raw_pages(endpoint, parameters):
    """Every page of one ListObjectsV2 listing as sent on the wire: [(status, headers, body bytes)]."""
    pages, token = [], None
    while True:
        query = dict(parameters, **{"list-type": "2"})
        if token:
            query["continuation-token"] = token
        url = "{0}/{1}?{2}".format(endpoint, BUCKET, urllib.parse.urlencode(query))
        try:
            with urllib.request.urlopen(url) as response:
                status, headers, body = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            status, headers, body = exc.code, dict(exc.headers), exc.read()
        for varying in ("Date", "date", "x-amzn-requestid"):
            headers.pop(varying, None)
        pages.append((status, headers, re.sub(rb"<RequestId>[^<]*</RequestId>", b"<RequestId/>", body)))
        token = ElementTree.fromstring(body).findtext("{*}NextContinuationToken") if status == 200 else None
        if not token:
            return pages


@pytest.fixture
def endpoint(aws):
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    for number, key in enumerate(random.Random(11).sample(RESPONSE_KEYS, len(RESPONSE_KEYS))):
        checksum = {"ChecksumAlgorithm": "SHA256"} if number % 3 == 0 else {}
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"x" * number, **checksum)
    return aws.endpoint


RESPONSE_CASES = [
    {},
    {"max-keys": "1"},
    {"max-keys": "4", "delimiter": "/"},
    {"max-keys": "0"},
    {"prefix": "a/", "delimiter": "/", "max-keys": "2"},
    {"prefix": "a/b", "delimiter": "/"},
    {"prefix": "deep/", "delimiter": "/", "start-after": "deep/010/leaf", "max-keys": "7"},
    {"start-after": "a/b", "max-keys": "3"},
    {"encoding-type": "url", "max-keys": "5"},
    {"encoding-type": "url", "prefix": "sp ace/", "delimiter": "/"},
    {"encoding-type": "url", "delimiter": "/"},
    {"prefix": "\u00e9t\u00e9/", "encoding-type": "url"},
    {"prefix": "\U0001f600/", "delimiter": "/"},
    {"fetch-owner": "true", "max-keys": "2"},
    {"prefix": "zz"},
    {"continuation-token": ""},
]


@pytest.mark.parametrize("parameters", RESPONSE_CASES, ids=[urllib.parse.urlencode(case) for case in RESPONSE_CASES])
def test_responses_are_moto_s_own_bytes(endpoint, parameters):
    patched = raw_pages(endpoint, parameters)
    with unpatched_listing():
        original = raw_pages(endpoint, parameters)
    assert patched == original
    assert len(patched) >= 1


def test_a_listing_walks_past_folders_to_every_page(endpoint, aws):
    """boto3's paginator reads the patched pages as S3's: every key once, common prefixes, tokens, in order."""
    s3 = aws.client("s3")
    paginator = s3.get_paginator("list_objects_v2")
    keys = [
        item["Key"]
        for page in paginator.paginate(Bucket=BUCKET, PaginationConfig={"PageSize": 3})
        for item in page.get("Contents", [])
    ]
    assert keys == sorted(set(RESPONSE_KEYS), key=lambda key: key.encode("utf-8"))
    top = [
        (page.get("KeyCount"), [p["Prefix"] for p in page.get("CommonPrefixes", [])])
        for page in paginator.paginate(Bucket=BUCKET, Delimiter="/", PaginationConfig={"PageSize": 2})
    ]
    folders = [prefix for _count, prefixes in top for prefix in prefixes]
    assert folders == sorted({key.split("/")[0] + "/" for key in RESPONSE_KEYS if "/" in key})
