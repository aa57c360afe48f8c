import hashlib

from ansible_collections.opsvault.aws_backup.plugins.module_utils import s3_restore
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_listing import S3Object


def obj(key, body, etag=None):
    return S3Object(key, len(body), etag or '"{0}"'.format(hashlib.md5(body).hexdigest()), 0.0, ())


def test_the_mirrors_own_files_are_never_uploaded_and_links_are_reported(tmp_path):
    (tmp_path / ".s3_mirror_tmp").mkdir()
    (tmp_path / ".s3_mirror_tmp" / "partial").write_bytes(b"x")
    (tmp_path / ".s3_mirror_index.jsonl").write_text("{}")
    (tmp_path / ".s3_mirror.lock").write_text("")
    (tmp_path / "a b").mkdir()
    (tmp_path / "a b" / "ü.txt").write_bytes(b"u")
    (tmp_path / "a b" / ".s3_mirror_index.jsonl").write_bytes(b"a user's file of that name, deeper down")
    (tmp_path / "link").symlink_to(tmp_path / "a b" / "ü.txt")
    files, skipped = s3_restore.local_files(str(tmp_path))
    assert sorted(files) == ["a b/.s3_mirror_index.jsonl", "a b/ü.txt"]
    assert skipped == [("link", "not a regular file")]


def test_only_files_that_differ_are_uploaded_with_the_write_condition_of_their_key(tmp_path):
    for name, body in (("same", b"same"), ("edited", b"new"), ("new", b"new")):
        (tmp_path / name).write_bytes(body)
    files, _skipped = s3_restore.local_files(str(tmp_path))
    listed = [obj("p/edited", b"old"), obj("p/orphan", b"o"), obj("p/same", b"same"), obj("p/dir/", b"")]
    plan = s3_restore.plan_restore(files, listed, "p/")
    assert plan["unchanged"] == ["p/same"]
    assert [(item["key"], item["condition"]) for item in plan["upload"]] == [
        ("p/edited", {"IfMatch": listed[0].etag}),
        ("p/new", {"IfNoneMatch": "*"}),
    ]
    assert [item.key for item in plan["orphans"]] == ["p/orphan"]


def test_a_multipart_etag_is_compared_at_the_sdk_part_size(tmp_path):
    body = bytes(range(256)) * (s3_restore.PART_SIZE // 256) + b"tail"
    path = tmp_path / "big"
    path.write_bytes(body)
    parts = [hashlib.md5(body[: s3_restore.PART_SIZE]).digest(), hashlib.md5(body[s3_restore.PART_SIZE :]).digest()]
    etag = '"{0}-2"'.format(hashlib.md5(b"".join(parts)).hexdigest())
    assert s3_restore.same_content(str(path), len(body), obj("big", body, etag)) is True
    assert s3_restore.same_content(str(path), len(body), obj("big", body, '"{0}-3"'.format("0" * 32))) is False
