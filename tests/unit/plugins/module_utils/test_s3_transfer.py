"""s3_mirror's run with botocore's Stubber: pages follow the continuation token and merge with the index;
whole-run failures raise MirrorError; the report speaks the collection's result vocabulary."""

import datetime
import os
import threading

import pytest

from ansible_collections.opsvault.aws_backup.plugins.module_utils import s3_index as index
from ansible_collections.opsvault.aws_backup.plugins.module_utils import s3_transfer
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_listing import MirrorError
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_transfer import Mirror
from ansible_collections.opsvault.aws_backup.plugins.modules import s3_mirror
from tests.harness.module_options import options_of

WHEN = datetime.datetime(2026, 11, 23, 1, 0, tzinfo=datetime.timezone.utc)
REGION = "eu-west-1"


def item(key, size=3, etag='"e"'):
    return {"Key": key, "Size": size, "ETag": etag, "LastModified": WHEN, "StorageClass": "STANDARD"}


def options(dest, **changes):
    params = dict(bucket="b", dest=str(dest), delete=True, max_concurrency=4, list_concurrency=1, fsync=False)
    return options_of(s3_mirror, **dict(params, **changes))


@pytest.fixture
def stubbed(stub_client):
    client, stubber = stub_client("s3", REGION)
    with stubber:
        yield client, stubber


def one_page(stubber, keys):
    stubber.add_response(
        "list_objects_v2",
        {"Contents": [item(key) for key in keys], "IsTruncated": False, "KeyCount": len(keys)},
        {"Bucket": "b", "Prefix": ""},
    )


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
    os.makedirs(tmp_path / index.TEMP_DIR_NAME)
    writer = index.IndexWriter(str(tmp_path), "b", "", fsync=False)
    for key, etag in (("a", '"e"'), ("b", '"e"'), ("d", '"old"'), ("e", '"e"')):
        writer.write(index.IndexEntry(key, 3, etag, WHEN.timestamp()))
    writer.commit()
    (tmp_path / "a").write_bytes(b"aaa")
    os.utime(tmp_path / "a", (WHEN.timestamp(), WHEN.timestamp()))

    report = Mirror(client, options(tmp_path), check_mode=True).run()

    assert report.changed is True
    assert report.counts["listed"] == 4
    assert report.counts["unchanged"] == 1
    assert report.lists["downloaded_keys"] == [
        {"key": "c", "size": 3, "reason": "new", "state": "planned"},
        {"key": "d", "size": 3, "reason": "changed", "state": "planned"},
        {"key": "f", "size": 3, "reason": "new", "state": "planned"},
    ]
    assert report.lists["deleted_files"] == [str(tmp_path / "b"), str(tmp_path / "e")]
    assert report.result()["regions"] == [REGION]


def test_a_listing_out_of_key_order_stops_before_any_delete(stubbed, tmp_path):
    client, stubber = stubbed
    one_page(stubber, ["b", "a"])
    report = Mirror(client, options(tmp_path), check_mode=True).run()
    assert report.counts["errors"] == 1 and report.counts["deleted"] == 0
    [error] = report.lists["errors"]
    assert error["resource"] == "b" and error["region"] == REGION and error["action"] == "list"
    assert error["code"] == "ValueError" and "not in key order" in error["message"]


@pytest.mark.parametrize(
    "code, message",
    [
        ("NoSuchBucket", "bucket 'b' does not exist (NoSuchBucket)"),
        ("AccessDenied", "access denied listing bucket 'b': the credentials need s3:ListBucket on it"),
        ("InvalidAccessKeyId", "S3 rejected the credentials listing bucket 'b': InvalidAccessKeyId: no"),
        ("SlowDown", "could not list bucket 'b': SlowDown: no"),
    ],
)
def test_a_bucket_that_cannot_be_listed_fails_the_run_before_dest_is_touched(stubbed, tmp_path, code, message):
    client, stubber = stubbed
    stubber.add_client_error("list_objects_v2", service_error_code=code, service_message="no")
    dest = tmp_path / "mirror"
    with pytest.raises(MirrorError) as raised:
        Mirror(client, options(dest)).run()
    assert raised.value.code == code and raised.value.resource == "b" and raised.value.action == "list"
    assert message in str(raised.value)
    assert not dest.exists()


def test_a_dest_that_is_a_file_fails_the_run_naming_dest(stubbed, tmp_path):
    client, stubber = stubbed
    one_page(stubber, ["a"])
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(MirrorError) as raised:
        Mirror(client, options(blocker)).run()
    assert raised.value.code == "DestNotCreated" and raised.value.resource == str(blocker)
    assert raised.value.action == "prepare dest"
    assert str(raised.value) == "dest {0} cannot be created: File exists".format(blocker)


def test_skipped_keys_are_skipped_resources_with_their_region_and_reason(stubbed, tmp_path):
    client, stubber = stubbed
    one_page(stubber, ["../up", "a", "a/b", "ok"])
    report = Mirror(client, options(tmp_path / "m"), check_mode=True).run()
    assert report.lists["skipped_resources"] == [
        {"resource": "../up", "region": REGION, "reason": "key has a '..' path segment"},
        {"resource": "a/b", "region": REGION, "reason": "its path 'a/b' is taken by the file of key 'a'"},
    ]
    assert report.counts["skipped"] == 2 and "skipped_keys" not in report.result()


def test_check_mode_summary_says_would_and_names_the_counts(stubbed, tmp_path):
    client, stubber = stubbed
    one_page(stubber, ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e/"])
    report = Mirror(client, options(tmp_path / "m"), check_mode=True).run()
    msg = report.summary("s3://b/", str(tmp_path / "m"))
    assert msg.startswith("s3://b/ -> {0}: check mode, nothing changed. ".format(tmp_path / "m"))
    assert "Would download 4 object(s): a.jpg (new); b.jpg (new); c.jpg (new) (and 1 more)" in msg
    assert "Would create 1 directory(ies)" in msg
    assert "5 listed (15 bytes), 0 unchanged, 0 excluded" in msg
    assert "downloaded" not in msg


def test_the_summary_of_a_large_run_stays_short_and_counts_everything(stubbed, tmp_path):
    client, _stubber = stubbed
    job = Mirror(client, options(tmp_path, report_limit=10), check_mode=False)
    for number in range(100000):
        job.report.skipped("key-{0:06d}/..".format(number), "key has a '..' path segment")
        job.report.error("failed-{0}".format(number), "download", MirrorError("ChecksumMismatch", "MD5 differs"))
    msg = job.report.summary("s3://b/", str(tmp_path))
    assert len(job.report.lists["skipped_resources"]) == 10 and job.report.counts["skipped"] == 100000
    assert "Left alone 100000 key(s): key-000000/..: key has a '..' path segment;" in msg
    assert "100000 error(s): failed-0 in {0} (download): ChecksumMismatch MD5 differs;".format(REGION) in msg
    assert "(and 99997 more)" in msg and len(msg) < 1000
    assert job.report.lists["errors"][0] == {
        "resource": "failed-0",
        "region": REGION,
        "action": "download",
        "code": "ChecksumMismatch",
        "message": "MD5 differs",
    }


def test_no_checkpoint_for_a_count_of_files_once_fewer_than_that_are_left_before_the_commit(
    stubbed, tmp_path, monkeypatch
):
    client, _stubber = stubbed
    monkeypatch.setattr(s3_transfer, "CHECKPOINT_FILES", 2)
    monkeypatch.setattr(s3_transfer, "CHECKPOINT_SPACING", 0)
    keys = ["k{0}".format(number) for number in range(6)]
    whole_listing_read = threading.Event()

    def pages(*_args, **_kwargs):
        yield {"Contents": [item(key) for key in keys]}
        whole_listing_read.set()

    def fetch(_mirror, obj, relative):
        assert whole_listing_read.wait(10)
        (tmp_path / relative).write_bytes(b"abc")
        os.utime(tmp_path / relative, (obj.last_modified, obj.last_modified))
        return index.IndexEntry(obj.key, obj.size, obj.etag, obj.last_modified)

    checkpointed = []
    checkpoint = index.IndexWriter.checkpoint

    def counted_checkpoint(writer, tail):
        checkpointed.append(writer.count)
        checkpoint(writer, tail)

    monkeypatch.setattr(s3_transfer, "open_listing", pages)
    monkeypatch.setattr(Mirror, "_fetch_small", fetch)
    monkeypatch.setattr(index.IndexWriter, "checkpoint", counted_checkpoint)

    report = Mirror(client, options(tmp_path)).run()

    assert report.counts["downloaded"] == 6 and report.counts["errors"] == 0
    # Every 2 files while 2 or more are still in flight; the last ones end with the commit alone.
    assert checkpointed == [2, 4]
    assert [entry.key for entry in index.IndexReader(str(tmp_path / index.INDEX_NAME), "b", "")] == keys
