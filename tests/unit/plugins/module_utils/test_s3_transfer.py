"""s3_mirror's listing with botocore's Stubber: pages follow the continuation token and merge with the index."""

import datetime
import os

import boto3
import pytest
from botocore.stub import Stubber

from ansible_collections.opsvault.aws_backup.plugins.module_utils import s3_mirror as m
from ansible_collections.opsvault.aws_backup.plugins.modules import s3_mirror

WHEN = datetime.datetime(2026, 11, 23, 1, 0, tzinfo=datetime.timezone.utc)


class FakeModule:
    check_mode = True

    def __init__(self):
        self.warnings = []

    def warn(self, message):
        self.warnings.append(message)

    def fail_json(self, **kwargs):
        raise AssertionError(kwargs)


def item(key, size=3, etag='"e"'):
    return {"Key": key, "Size": size, "ETag": etag, "LastModified": WHEN, "StorageClass": "STANDARD"}


def options(dest):
    return dict(
        bucket="b",
        prefix="",
        dest=str(dest),
        include=[],
        exclude=[],
        max_concurrency=4,
        multipart_threshold=8 * 1024 * 1024,
        fsync=False,
        report_limit=100,
        max_delete=None,
    )


@pytest.fixture
def stubbed():
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def test_every_page_is_read_and_merged_with_the_index(stubbed, tmp_path):
    client, stubber = stubbed
    stubber.add_response(
        "list_objects_v2",
        {"Contents": [item("a"), item("c")], "IsTruncated": True, "NextContinuationToken": "t1", "KeyCount": 2},
        {"Bucket": "b", "Prefix": ""},
    )
    stubber.add_response(
        "list_objects_v2",
        {"Contents": [item("d", etag='"new"'), item("f")], "IsTruncated": False, "KeyCount": 2},
        {"Bucket": "b", "Prefix": "", "ContinuationToken": "t1"},
    )
    os.makedirs(tmp_path / m.TEMP_DIR_NAME)
    writer = m.IndexWriter(str(tmp_path), "b", "", fsync=False)
    for key, etag in (("a", '"e"'), ("b", '"e"'), ("d", '"old"'), ("e", '"e"')):
        writer.write(m.IndexEntry(key, 3, etag, WHEN.timestamp()))
    writer.commit()
    (tmp_path / "a").write_bytes(b"aaa")
    os.utime(tmp_path / "a", (WHEN.timestamp(), WHEN.timestamp()))

    job = s3_mirror.Mirror(FakeModule(), client, options(tmp_path))
    changed = job.run(delete=True, max_delete=None)

    assert changed is True
    assert job.report.counts["listed"] == 4
    assert job.report.counts["unchanged"] == 1
    assert [(entry["key"], entry["reason"]) for entry in job.report.lists["downloaded_keys"]] == [
        ("c", "new"),
        ("d", "changed"),
        ("f", "new"),
    ]
    assert job.report.lists["deleted_files"] == [str(tmp_path / "b"), str(tmp_path / "e")]


def test_a_listing_out_of_key_order_stops_before_any_delete(stubbed, tmp_path):
    client, stubber = stubbed
    stubber.add_response(
        "list_objects_v2",
        {"Contents": [item("b"), item("a")], "IsTruncated": False, "KeyCount": 2},
        {"Bucket": "b", "Prefix": ""},
    )
    job = s3_mirror.Mirror(FakeModule(), client, options(tmp_path))
    job.run(delete=True, max_delete=None)
    assert job.report.counts["errors"] == 1
    assert "not in key order" in job.report.lists["errors"][0]["message"]
    assert job.report.counts["deleted"] == 0
