"""s3_restore through real ansible-playbook runs against moto: a mirror made by s3_mirror, uploaded back."""

import os

import pytest
from moto.s3.responses import S3Response

from tests.harness import ansible_run
from tests.harness import s3 as s3h

SOURCE = "photos"
TARGET = "photos-restored"
MIB = s3h.MIB


def task(module, name, check_mode=False, **options):
    entry = {"name": name, "opsvault.aws_backup." + module: options, "ignore_errors": True}
    if check_mode:
        entry["check_mode"] = True
    return entry


@pytest.fixture
def s3(aws):
    client = aws.client("s3")
    client.create_bucket(Bucket=SOURCE)
    client.create_bucket(Bucket=TARGET)
    return client


def through(proxy, tmp_path, tasks):
    return ansible_run.run_playbook(ansible_run.aws_play(proxy.endpoint, tasks), tmp_path, endpoint=proxy.endpoint)


def test_mirror_then_restore_into_an_empty_bucket_is_byte_identical_and_a_rerun_uploads_nothing(
    s3, counting_proxy, tmp_path
):
    s3h.put(
        s3,
        SOURCE,
        {
            "uploads/cat.jpg": os.urandom(3000),
            "uploads/2026/11/dog photo.png": os.urandom(1000),
            "uploads/über straße/café ☕.jpg": b"unicode",
            "uploads/empty.bin": b"",
        },
    )
    s3h.put_multipart(s3, SOURCE, "uploads/video/big.mp4", [5 * MIB, 5 * MIB, 123])
    expected = s3h.bucket_contents(s3, SOURCE, "uploads/")
    dest = tmp_path / "mirror"
    restore = dict(src=str(dest), bucket=TARGET, prefix="uploads/")

    run = through(
        counting_proxy,
        tmp_path,
        [
            task("s3_mirror", "mirror", bucket=SOURCE, prefix="uploads/", dest=str(dest)),
            {
                "name": "counts (reset)",
                "ansible.builtin.uri": {
                    "url": counting_proxy.endpoint + "/__proxy__/reset",
                    "method": "POST",
                    "body_format": "json",
                    "body": {},
                },
            },
            task("s3_restore", "plan", check_mode=True, **restore),
            {
                "name": "plan requests",
                "ansible.builtin.uri": {"url": counting_proxy.endpoint + "/__proxy__/stats", "return_content": True},
            },
        ],
    )
    assert run.result("mirror").get("failed") is not True, run.result("mirror")
    plan = run.result("plan")
    assert plan.get("failed") is not True, plan
    assert run.result("plan requests")["json"]["mutating"] == 0
    assert sorted(item["key"] for item in plan["uploaded"]) == sorted(expected)
    assert s3h.bucket_contents(s3, TARGET) == {}
    assert any(name.startswith(".s3_mirror") for name in os.listdir(dest))

    counting_proxy.reset()
    run = through(counting_proxy, tmp_path, [task("s3_restore", "restore", **restore)])
    result = run.result("restore")
    assert run.rc == 0 and not result.get("failed"), result
    assert s3h.bucket_contents(s3, TARGET) == expected
    assert {item["action"] for item in result["uploaded"]} == {"created"}
    requests = counting_proxy.stats()["requests"]
    assert requests.get("s3:CreateMultipartUpload") == 1 and requests.get("s3:CompleteMultipartUpload") == 1
    for key in expected:
        head = s3.head_object(Bucket=TARGET, Key=key, ChecksumMode="ENABLED")
        assert head.get("ChecksumSHA256"), key

    counting_proxy.reset()
    run = through(counting_proxy, tmp_path, [task("s3_restore", "again", **restore)])
    again = run.result("again")
    assert again["changed"] is False and again["uploaded"] == [] and again["unchanged"] == len(expected), again
    assert counting_proxy.stats()["mutating"] == 0


def test_an_object_changed_in_the_bucket_after_the_listing_is_not_overwritten(s3, play, tmp_path, monkeypatch):
    src = tmp_path / "mirror"  # the mirror of s3://photos-restored/docs/
    src.mkdir()
    (src / "edited.txt").write_bytes(b"from the mirror")
    (src / "appeared.txt").write_bytes(b"from the mirror")
    (src / "big.bin").write_bytes(os.urandom(9 * MIB))
    (src / "plain.txt").write_bytes(b"restored")
    s3h.put(s3, TARGET, {"docs/edited.txt": b"old", "docs/big.bin": b"old"})
    changed = {"docs/edited.txt": b"edited meanwhile", "docs/appeared.txt": b"new meanwhile", "docs/big.bin": b"too"}
    original = S3Response.list_objects_v2

    def list_then_change(self):
        answer = original(self)
        if self.bucket_name == TARGET:
            for key, body in changed.items():
                self.backend.put_object(TARGET, key, body)
        return answer

    monkeypatch.setattr(S3Response, "list_objects_v2", list_then_change)

    run = play([task("s3_restore", "restore", src=str(src), bucket=TARGET, prefix="docs")])
    result = run.result("restore")

    assert not result.get("failed"), result
    assert [item["key"] for item in result["uploaded"]] == ["docs/plain.txt"]
    conflicts = {item["resource"]: item["reason"] for item in result["skipped_resources"]}
    assert conflicts == {key: "changed in the bucket since the listing: not overwritten" for key in changed}
    assert s3h.bucket_contents(s3, TARGET) == dict(changed, **{"docs/plain.txt": b"restored"})


def test_a_bucket_that_does_not_exist_is_named(s3, play, tmp_path):
    (tmp_path / "mirror").mkdir()
    run = play([task("s3_restore", "restore", src=str(tmp_path / "mirror"), bucket="no-such-bucket")])
    result = run.result("restore")
    assert result["failed"] is True
    assert result["msg"] == "bucket 'no-such-bucket' does not exist (NoSuchBucket)"
    assert [(error["resource"], error["code"]) for error in result["errors"]] == [("no-such-bucket", "NoSuchBucket")]
