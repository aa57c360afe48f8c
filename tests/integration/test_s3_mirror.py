"""s3_mirror through real ansible-playbook runs against moto."""

import datetime
import hashlib
import json
import os
import signal
import subprocess
import threading
import time

import pytest
import yaml

from ansible_collections.opsvault.aws_backup.plugins.module_utils import iam_actions
from tests.harness import ansible_run
from tests.harness import aws_proxy
from tests.harness import s3 as s3h

BUCKET = "photos-backup"
MIB = s3h.MIB


def mirror_task(name="mirror", **options):
    return ansible_run.task("s3_mirror", name, **dict({"bucket": BUCKET}, **options))


@pytest.fixture
def s3(aws):
    client = aws.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


def listing(s3, prefix=""):
    return {
        item["Key"]: item
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        for item in page.get("Contents", [])
    }


def test_cold_mirror_is_byte_identical_and_warm_rerun_downloads_nothing(s3, play, tmp_path):
    dest = tmp_path / "myS3backup"
    s3h.put(
        s3,
        BUCKET,
        {
            "cat.jpg": os.urandom(3000),
            "2026/11/23/dog photo.png": os.urandom(1000),
            "2026/11/über straße/café ☕.jpg": b"unicode",
            "deep/a/b/c/d/e/f.txt": b"nested",
            "empty.bin": b"",
            "folder marker/": b"",
            "single-part-large.bin": os.urandom(6 * MIB),
        },
    )
    s3h.put_multipart(s3, BUCKET, "video/uniform.mp4", [5 * MIB, 5 * MIB, 123])
    s3h.put_multipart(s3, BUCKET, "video/uneven parts.mp4", [6 * MIB, 5 * MIB, 7])
    expected = {key: body for key, body in s3h.bucket_contents(s3, BUCKET).items() if not key.endswith("/")}

    run = play([mirror_task(dest=str(dest), multipart_threshold=5 * MIB)])
    result = run.result("mirror")
    assert run.rc == 0, result
    assert result["changed"] is True
    assert s3h.local_files(dest) == expected
    assert (dest / "folder marker").is_dir()
    assert result["counts"] == dict(
        listed=9,
        downloaded=8,
        adopted=0,
        unchanged=0,
        directories=1,
        excluded=0,
        skipped=0,
        deleted=0,
        orphaned=0,
        kept_previous=0,
        errors=0,
    )
    assert result["bytes"]["downloaded"] == sum(len(body) for body in expected.values())
    assert {item["key"] for item in result["downloaded_keys"]} == set(expected)
    for key, item in listing(s3).items():
        if not key.endswith("/"):
            assert os.stat(dest / key).st_mtime == item["LastModified"].timestamp()
    assert not (dest / ".s3_mirror_tmp").exists()
    index_lines = (dest / ".s3_mirror_index.jsonl").read_text().splitlines()
    assert json.loads(index_lines[0])["bucket"] == BUCKET
    assert [json.loads(line)[0] for line in index_lines[1:]] == sorted(expected)

    inodes = {key: os.stat(dest / key).st_ino for key in expected}
    index_inode = os.stat(dest / ".s3_mirror_index.jsonl").st_ino
    rerun = play([mirror_task(dest=str(dest), multipart_threshold=5 * MIB)])
    again = rerun.result("mirror")
    assert rerun.rc == 0, again
    assert again["changed"] is False
    assert again["counts"]["downloaded"] == 0 and again["counts"]["unchanged"] == 8
    assert again["downloaded_keys"] == []
    assert again["msg"].startswith("s3://{0}/ -> {1}: 9 listed (".format(BUCKET, dest))
    assert again["msg"].endswith("8 unchanged, 0 excluded.")
    assert {key: os.stat(dest / key).st_ino for key in expected} == inodes
    assert os.stat(dest / ".s3_mirror_index.jsonl").st_ino == index_inode
    assert s3h.local_files(dest) == expected


def test_same_size_change_is_fetched_and_local_damage_is_repaired(s3, play, tmp_path):
    dest = tmp_path / "mirror"
    s3h.put(s3, BUCKET, {"a.txt": b"aaaa", "b.txt": b"bbbb", "c.txt": b"cccc"})
    assert play([mirror_task(dest=str(dest))]).rc == 0

    s3h.put(s3, BUCKET, {"a.txt": b"AAAA"})
    os.unlink(dest / "b.txt")
    (dest / "c.txt").write_bytes(b"cc")
    run = play([mirror_task(dest=str(dest))])
    result = run.result("mirror")
    assert run.rc == 0, result
    assert result["changed"] is True
    assert {item["key"]: item["reason"] for item in result["downloaded_keys"]} == {
        "a.txt": "changed",
        "b.txt": "missing locally",
        "c.txt": "local copy differs",
    }
    assert s3h.local_files(dest) == {"a.txt": b"AAAA", "b.txt": b"bbbb", "c.txt": b"cccc"}


def test_include_exclude_and_prefix(s3, play, tmp_path):
    dest = tmp_path / "images"
    s3h.put(
        s3,
        BUCKET,
        {
            "uploads/a.jpg": b"a",
            "uploads/sub/b.png": b"b",
            "uploads/notes.txt": b"n",
            "uploads/tmp/c.jpg": b"c",
            "other/d.jpg": b"d",
            "uploadsX/e.jpg": b"e",
        },
    )
    run = play([mirror_task(dest=str(dest), prefix="uploads", include=["*.jpg", "*.png"], exclude=["tmp/*"])])
    result = run.result("mirror")
    assert run.rc == 0, result
    assert s3h.local_files(dest) == {"a.jpg": b"a", "sub/b.png": b"b"}
    assert result["counts"]["listed"] == 4 and result["counts"]["excluded"] == 2


def test_deletes_only_with_delete_true_and_stop_at_max_delete(s3, play, tmp_path):
    dest = tmp_path / "mirror"
    s3h.put(s3, BUCKET, {"keep.txt": b"k", "gone1.txt": b"1", "sub/gone2.txt": b"2", "sub/gone3.txt": b"3"})
    assert play([mirror_task(dest=str(dest))]).rc == 0
    (dest / "mine.txt").write_bytes(b"not from the bucket")
    s3.delete_objects(
        Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in ("gone1.txt", "sub/gone2.txt", "sub/gone3.txt")]}
    )

    run = play([mirror_task(dest=str(dest))])
    result = run.result("mirror")
    assert run.rc == 0, result
    assert result["changed"] is False
    assert result["counts"]["orphaned"] == 3 and result["counts"]["deleted"] == 0
    assert sorted(result["orphaned_files"]) == sorted(
        str(dest / p) for p in ("gone1.txt", "sub/gone2.txt", "sub/gone3.txt")
    )
    assert (dest / "gone1.txt").exists()

    for guard in ("2", "50%"):
        refused = play([mirror_task(dest=str(dest), delete=True, max_delete=guard)])
        result = refused.result("mirror")
        assert refused.rc != 0
        assert "Nothing deleted: 3 " in result["msg"] and "max_delete is " + guard in result["msg"], result["msg"]
        assert result["errors"][0]["code"] == "MaxDeleteExceeded"
        assert result["errors"][0]["resource"] == str(dest) and result["errors"][0]["action"] == "delete"
        assert result["counts"]["deleted"] == 0
        assert (dest / "gone1.txt").exists() and (dest / "sub" / "gone3.txt").exists()

    run = play([mirror_task(dest=str(dest), delete=True, max_delete="3")])
    result = run.result("mirror")
    assert run.rc == 0, result
    assert result["changed"] is True and result["counts"]["deleted"] == 3
    assert s3h.local_files(dest) == {"keep.txt": b"k", "mine.txt": b"not from the bucket"}
    assert not (dest / "sub").exists()
    index_keys = [json.loads(line)[0] for line in (dest / ".s3_mirror_index.jsonl").read_text().splitlines()[1:]]
    assert index_keys == ["keep.txt"]


def test_hostile_keys_never_escape_dest(s3, play, tmp_path):
    dest = tmp_path / "box" / "mirror"
    hostile = {
        "../escaped.txt": "key has a '..' path segment",
        "a/../../escaped2.txt": "key has a '..' path segment",
        "/etc/escaped3": "key is an absolute path",
        "..\\..\\escaped4.txt": "key contains a backslash, a path separator on some systems",
        "a//b.txt": "key has an empty path segment ('//')",
        "./dot.txt": "key has a '.' path segment",
        ".s3_mirror_index.jsonl": "name '.s3_mirror_index.jsonl' is reserved for the mirror's own files",
        "x/\x00nul.txt": "key contains a NUL character",
    }
    s3h.put(s3, BUCKET, {key: b"evil" for key in hostile})
    s3h.put(s3, BUCKET, {"ok.txt": b"fine", "taken": b"file", "taken/inside.txt": b"needs taken as a directory"})
    stored = set(listing(s3))
    assert set(hostile) <= stored, "moto must store every hostile key for this test to mean something"

    run = play([mirror_task(dest=str(dest))])
    result = run.result("mirror")
    assert run.rc == 0, result
    reasons = {item["resource"]: item["reason"] for item in result["skipped_resources"]}
    assert {key: reasons.get(key) for key in hostile} == hostile
    assert {item["region"] for item in result["skipped_resources"]} == {"us-east-1"}
    assert "Left alone {0} key(s): ".format(len(hostile) + 1) in result["msg"]
    assert "is taken by the file of key 'taken'" in reasons["taken/inside.txt"]
    assert result["counts"]["skipped"] == len(hostile) + 1
    assert s3h.local_files(dest) == {"ok.txt": b"fine", "taken": b"file"}
    assert sorted(os.listdir(tmp_path / "box")) == ["mirror"]
    assert not os.path.exists("/etc/escaped3")
    assert json.loads((dest / ".s3_mirror_index.jsonl").read_text().splitlines()[0])["format"]

    outside = tmp_path / "outside"
    outside.mkdir()
    (dest / "link").symlink_to(outside)
    s3h.put(s3, BUCKET, {"link/pwned.txt": b"through a symlink"})
    run = play([mirror_task(dest=str(dest))])
    result = run.result("mirror")
    assert run.rc != 0
    [error] = result["errors"]
    assert error["resource"] == "link/pwned.txt" and "symlink" in error["message"]
    assert error["region"] == "us-east-1" and error["action"] == "download" and error["code"] == "UnsafePath"
    assert "1 error(s): link/pwned.txt in us-east-1 (download): UnsafePath" in result["msg"]
    assert list(outside.iterdir()) == []


def test_delete_never_follows_a_symlink_out_of_dest(s3, play, tmp_path):
    dest = tmp_path / "mirror"
    s3h.put(s3, BUCKET, {"sub/a.txt": b"a", "b.txt": b"b"})
    assert play([mirror_task(dest=str(dest))]).rc == 0
    outside = tmp_path / "outside"
    (dest / "sub").rename(outside)
    (dest / "sub").symlink_to(outside)
    s3.delete_object(Bucket=BUCKET, Key="sub/a.txt")

    run = play([mirror_task(dest=str(dest), delete=True)])
    result = run.result("mirror")
    assert run.rc != 0
    [error] = result["errors"]
    assert error["resource"] == "sub/a.txt" and "symlink" in error["message"]
    assert error["action"] == "delete" and error["code"] == "UnsafePath"
    assert (outside / "a.txt").read_bytes() == b"a"


def test_check_mode_lists_the_plan_and_writes_nothing(s3, play, tmp_path):
    dest = tmp_path / "mirror"
    s3h.put(s3, BUCKET, {"a.txt": b"a", "dir/": b""})
    run = play([mirror_task(dest=str(dest))], check=True)
    result = run.result("mirror")
    assert run.rc == 0, result
    assert result["changed"] is True
    assert result["downloaded_keys"] == [{"key": "a.txt", "size": 1, "reason": "new", "state": "planned"}]
    assert result["counts"]["directories"] == 1
    assert result["regions"] == ["us-east-1"]
    assert result["msg"] == (
        "s3://{0}/ -> {1}: check mode, nothing changed. Would download 1 object(s): a.txt (new). "
        "Would create 1 directory(ies). 2 listed (1 bytes), 0 unchanged, 0 excluded.".format(BUCKET, dest)
    )
    assert not dest.exists()

    assert play([mirror_task(dest=str(dest))]).rc == 0
    s3h.put(s3, BUCKET, {"a.txt": b"b", "new.txt": b"n"})
    s3h.put(s3, BUCKET, {"old.txt": b"o"})
    assert play([mirror_task(dest=str(dest))]).rc == 0
    s3.delete_object(Bucket=BUCKET, Key="old.txt")
    s3h.put(s3, BUCKET, {"a.txt": b"c", "newer.txt": b"n"})
    before = {path: (os.stat(dest / path).st_ino, data) for path, data in s3h.local_files(dest).items()}
    index_before = (dest / ".s3_mirror_index.jsonl").read_bytes()

    run = play([mirror_task(dest=str(dest), delete=True)], check=True)
    result = run.result("mirror")
    assert run.rc == 0, result
    assert result["changed"] is True
    assert sorted(item["key"] for item in result["downloaded_keys"]) == ["a.txt", "newer.txt"]
    assert {item["state"] for item in result["downloaded_keys"]} == {"planned"}
    assert result["deleted_files"] == [str(dest / "old.txt")]
    assert "Would download 2 object(s): a.txt (changed); newer.txt (new)" in result["msg"]
    assert "Would delete 1 file(s): old.txt." in result["msg"]
    assert "downloaded" not in result["msg"] and "deleted" not in result["msg"]
    assert {path: (os.stat(dest / path).st_ino, data) for path, data in s3h.local_files(dest).items()} == before
    assert (dest / ".s3_mirror_index.jsonl").read_bytes() == index_before


def test_checksum_mismatch_is_an_error_and_keeps_the_old_copy(s3, play, tmp_path):
    dest = tmp_path / "mirror"
    s3.put_object(Bucket=BUCKET, Key="plain.txt", Body=b"version 1")
    s3.put_object(Bucket=BUCKET, Key="sha.txt", Body=b"version 1", ChecksumAlgorithm="SHA256")
    assert play([mirror_task(dest=str(dest))]).rc == 0

    s3.put_object(Bucket=BUCKET, Key="plain.txt", Body=b"version 2")
    s3h.stored_key(BUCKET, "plain.txt")._etag = hashlib.md5(b"something else").hexdigest()
    s3.put_object(Bucket=BUCKET, Key="sha.txt", Body=b"version 2", ChecksumAlgorithm="SHA256")
    s3h.stored_key(BUCKET, "sha.txt").checksum_value = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    s3h.put(s3, BUCKET, {"good.txt": b"fine"})
    s3h.put_multipart(s3, BUCKET, "parts.bin", [5 * MIB, 100])
    s3h.stored_key(BUCKET, "parts.bin")._etag = "0" * 32 + "-2"

    run = play([mirror_task(dest=str(dest))])
    result = run.result("mirror")
    assert run.rc != 0
    errors = {error["resource"]: error for error in result["errors"]}
    assert set(errors) == {"plain.txt", "sha.txt", "parts.bin"}
    assert errors["plain.txt"]["code"] == "ChecksumMismatch" and "MD5" in errors["plain.txt"]["message"]
    assert errors["parts.bin"]["code"] == "ChecksumMismatch" and "multipart ETag" in errors["parts.bin"]["message"]
    assert errors["sha.txt"]["code"] == "ChecksumMismatch" and "ChecksumSHA256" in errors["sha.txt"]["message"]
    assert {(error["region"], error["action"]) for error in result["errors"]} == {("us-east-1", "download")}
    assert "3 error(s): " in result["msg"] and "Downloaded 1 object(s): good.txt (new)" in result["msg"]
    assert s3h.local_files(dest) == {"plain.txt": b"version 1", "sha.txt": b"version 1", "good.txt": b"fine"}


def test_missing_bucket_unwritable_dest_and_bad_credentials_fail_clearly(s3, play, aws, tmp_path):
    run = play([mirror_task(bucket="no-such-bucket", dest=str(tmp_path / "m1"))])
    assert run.rc != 0
    failed = run.result("mirror")
    assert "bucket 'no-such-bucket' does not exist" in failed["msg"]
    assert [(e["resource"], e["region"], e["action"], e["code"]) for e in failed["errors"]] == [
        ("no-such-bucket", "us-east-1", "list", "NoSuchBucket")
    ]
    assert not (tmp_path / "m1").exists()

    s3h.put(s3, BUCKET, {"a.txt": b"a"})
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    run = play([mirror_task(dest=str(blocker / "mirror"))])
    assert run.rc != 0
    failed = run.result("mirror")
    assert "dest {0} cannot be created: Not a directory".format(blocker / "mirror") in failed["msg"]
    assert failed["errors"][0]["resource"] == str(blocker / "mirror")
    assert failed["errors"][0]["action"] == "prepare dest"

    readonly = tmp_path / "readonly"
    readonly.mkdir()
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(readonly)], check=True)
    else:
        readonly.chmod(0o555)
    try:
        run = play([mirror_task(dest=str(readonly))])
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(readonly)], check=True)
        readonly.chmod(0o755)
    assert run.rc != 0
    message = run.result("mirror")["msg"]
    assert "dest {0} is not writable".format(readonly) in message, message
    assert os.listdir(readonly) == []

    iam = aws.client("iam")
    keys = {}
    policies = {
        "mirror": iam_actions.policy_document([{"name": "s3_mirror", "bucket": BUCKET}]),
        "reader-without-list": {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::{0}/*".format(BUCKET)}
            ],
        },
    }
    for user, policy in policies.items():
        iam.create_user(UserName=user)
        keys[user] = iam.create_access_key(UserName=user)["AccessKey"]
        iam.put_user_policy(UserName=user, PolicyName="policy", PolicyDocument=json.dumps(policy))

    def as_user(dest, access_key, secret_key):
        return play([mirror_task(dest=str(tmp_path / dest), access_key=access_key, secret_key=secret_key)])

    s3h.set_auth(aws.endpoint, 0)
    try:
        runs = {
            "unknown key": as_user("m2", "AKIANOTAREALKEY00000", "not-the-secret-of-anyone"),
            "wrong secret": as_user("m2", keys["mirror"]["AccessKeyId"], "wrong" * 8),
            "no s3:ListBucket": as_user(
                "m2", keys["reader-without-list"]["AccessKeyId"], keys["reader-without-list"]["SecretAccessKey"]
            ),
            "least privilege": as_user("m3", keys["mirror"]["AccessKeyId"], keys["mirror"]["SecretAccessKey"]),
        }
    finally:
        s3h.set_auth(aws.endpoint, "inf")
    messages = {name: run.result("mirror").get("msg", "") for name, run in runs.items()}
    assert runs["unknown key"].rc != 0
    assert "S3 rejected the credentials" in messages["unknown key"] and "InvalidAccessKeyId" in messages["unknown key"]
    assert runs["wrong secret"].rc != 0
    assert (
        "S3 rejected the credentials" in messages["wrong secret"]
        and "SignatureDoesNotMatch" in messages["wrong secret"]
    )
    assert runs["no s3:ListBucket"].rc != 0
    assert "access denied listing bucket 'photos-backup'" in messages["no s3:ListBucket"], messages
    assert runs["least privilege"].rc == 0, runs["least privilege"].result("mirror")
    assert not (tmp_path / "m2").exists()
    assert s3h.local_files(tmp_path / "m3") == {"a.txt": b"a"}


def slow_ranged_gets(monkeypatch, key, delay):
    """Make moto (in this process) hold every ranged GET of one key but the first part, so a run is killed mid-download."""
    from moto.s3.responses import S3Response

    original = S3Response._key_response_get

    def slow(self, *args, **kwargs):
        requested_range = self.headers.get("Range") or ""
        if self.path.endswith("/" + key) and requested_range and not requested_range.startswith("bytes=0-"):
            time.sleep(delay)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(S3Response, "_key_response_get", slow)


def test_interrupted_run_leaves_no_partial_file_and_rerun_completes(s3, aws, tmp_path, monkeypatch):
    dest = tmp_path / "mirror"
    small = s3h.put(s3, BUCKET, {"photo-{0:02d}.jpg".format(n): os.urandom(2048) for n in range(20)})
    big = s3h.put_multipart(s3, BUCKET, "zz-big.bin", [5 * MIB, 5 * MIB, 5 * MIB, 1000])
    slow_ranged_gets(monkeypatch, "zz-big.bin", 20)

    tasks = [mirror_task(dest=str(dest), multipart_threshold=5 * MIB, max_concurrency=4)]
    playbook = tmp_path / "mirror.yml"
    playbook.write_text(yaml.safe_dump(ansible_run.aws_play(aws.endpoint, tasks), sort_keys=False))
    process = subprocess.Popen(
        [ansible_run.ANSIBLE_PLAYBOOK, str(playbook)],
        cwd=str(tmp_path),
        env=ansible_run.environment(aws.endpoint),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    temp_dir = dest / ".s3_mirror_tmp"
    deadline = time.monotonic() + 120
    try:
        while not any(name.startswith("transfer-") for name in (os.listdir(temp_dir) if temp_dir.exists() else [])):
            assert process.poll() is None, "the run ended before the large download started"
            assert time.monotonic() < deadline, "no transfer temp file appeared"
            time.sleep(0.05)
        module_processes = s3h.processes_holding(dest / ".s3_mirror.lock")
        assert module_processes, "no process holds the mirror's lock"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    for pid in module_processes:
        os.kill(pid, signal.SIGKILL)
    while any(s3h.is_running(pid) for pid in module_processes):
        assert time.monotonic() < deadline, "the killed module is still running"
        time.sleep(0.05)

    files = s3h.local_files(dest)
    assert "zz-big.bin" not in files
    assert all(small[path] == data for path, data in files.items())
    assert any(name.startswith("transfer-") for name in os.listdir(temp_dir))

    monkeypatch.undo()
    run = ansible_run.run_playbook(ansible_run.aws_play(aws.endpoint, tasks), tmp_path, endpoint=aws.endpoint)
    result = run.result("mirror")
    assert run.rc == 0, result.get("msg")
    assert s3h.local_files(dest) == dict(small, **{"zz-big.bin": big})
    assert not temp_dir.exists()
    # The files completed before the kill are on disk with the object's size and mtime: adopted, not fetched.
    assert result["counts"]["adopted"] == len(files)
    assert result["counts"]["downloaded"] == 21 - len(files)


def test_fqcn_playbook_mirrors_with_environment_credentials(s3, aws, tmp_path):
    dest = tmp_path / "myS3backup"
    s3h.put(s3, BUCKET, {"img/a.jpg": b"a", "img/b.png": b"b", "img/c.txt": b"c", "gone.jpg": b"g"})
    extra_vars = {
        "s3_mirror_bucket": BUCKET,
        "s3_mirror_dest": str(dest),
        "s3_mirror_include": ["*.jpg", "*.png"],
        "s3_mirror_delete": True,
        "s3_mirror_max_delete": 1,
    }
    run = ansible_run.run_playbook(
        "opsvault.aws_backup.s3_mirror",
        tmp_path,
        endpoint=aws.endpoint,
        extra_vars=extra_vars,
        env={"AWS_REGION": "us-east-1"},
    )
    assert run.rc == 0, run.stdout
    assert s3h.local_files(dest) == {"img/a.jpg": b"a", "img/b.png": b"b", "gone.jpg": b"g"}
    s3.delete_object(Bucket=BUCKET, Key="gone.jpg")
    run = ansible_run.run_playbook(
        "opsvault.aws_backup.s3_mirror",
        tmp_path,
        endpoint=aws.endpoint,
        extra_vars=extra_vars,
        env={"AWS_REGION": "us-east-1"},
    )
    assert run.rc == 0, run.stdout
    result = run.result("Download new and changed objects")
    assert result["counts"]["deleted"] == 1 and result["changed"] is True
    assert s3h.local_files(dest) == {"img/a.jpg": b"a", "img/b.png": b"b"}
    assert "Deleted 1 file(s): gone.jpg." in result["msg"]


def test_an_object_rewritten_during_its_download_is_an_error_and_the_rerun_gets_it(s3, play, tmp_path, monkeypatch):
    from moto.s3.responses import S3Response

    dest = tmp_path / "mirror"
    s3h.put(s3, BUCKET, {"racy.txt": b"listed version", "calm.txt": b"calm"})
    original = S3Response._key_response_get
    rewritten = []

    def rewrite_first(self, *args, **kwargs):
        if self.path.endswith("/racy.txt") and not rewritten:
            rewritten.append(True)
            s3.put_object(Bucket=BUCKET, Key="racy.txt", Body=b"newer version")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(S3Response, "_key_response_get", rewrite_first)
    run = play([mirror_task(dest=str(dest))])
    result = run.result("mirror")
    assert run.rc != 0 and rewritten
    assert [(error["resource"], error["code"]) for error in result["errors"]] == [("racy.txt", "ObjectChanged")]
    assert s3h.local_files(dest) == {"calm.txt": b"calm"}

    monkeypatch.undo()
    run = play([mirror_task(dest=str(dest))])
    assert run.rc == 0, run.result("mirror")
    assert s3h.local_files(dest) == {"calm.txt": b"calm", "racy.txt": b"newer version"}


# ---------------------------------------------------------------- resume


def index_keys(dest):
    path = dest / ".s3_mirror_index.jsonl"
    return [json.loads(line)[0] for line in path.read_text().splitlines()[1:]] if path.exists() else []


def kill_run_tree(process, dest, deadline):
    """Kill ansible-playbook's process group and the module worker (ansible-core runs it under setsid)."""
    module_processes = s3h.processes_holding(dest / ".s3_mirror.lock")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    for pid in module_processes:
        os.kill(pid, signal.SIGKILL)
    while any(s3h.is_running(pid) for pid in module_processes):
        assert time.monotonic() < deadline, "the killed module is still running"
        time.sleep(0.05)
    return module_processes


def test_a_first_mirror_killed_midway_is_resumed_with_gets_only_for_what_was_not_complete(
    s3, aws, counting_proxy, tmp_path
):
    dest = tmp_path / "mirror"
    objects = s3h.put(
        s3, BUCKET, {"batch-{0}/object-{1:04d}.bin".format(n % 9, n): os.urandom(64 + n % 300) for n in range(2000)}
    )
    tasks = [mirror_task(dest=str(dest), max_concurrency=4)]
    playbook = tmp_path / "mirror.yml"
    playbook.write_text(yaml.safe_dump(ansible_run.aws_play(counting_proxy.endpoint, tasks), sort_keys=False))
    counting_proxy.configure(latency_ms=10)
    process = subprocess.Popen(
        [ansible_run.ANSIBLE_PLAYBOOK, str(playbook)],
        cwd=str(tmp_path),
        env=ansible_run.environment(counting_proxy.endpoint),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    try:
        while len(s3h.local_files(dest)) < 1300 if dest.exists() else True:
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "the run did not get far enough"
            time.sleep(0.1)
    finally:
        module_processes = kill_run_tree(process, dest, deadline)
    assert module_processes, "no process held the mirror's lock"

    on_disk = s3h.local_files(dest)
    indexed = index_keys(dest)
    assert 1300 <= len(on_disk) < 2000
    assert all(objects[path] == data for path, data in on_disk.items()), "a partial file under a real name"
    assert len(indexed) >= 1000, "no checkpoint of the index during the run"
    assert set(indexed) <= set(on_disk), "the checkpoint lists a file that is not on disk"

    counting_proxy.reset(config=True)
    run = ansible_run.run_playbook(
        ansible_run.aws_play(counting_proxy.endpoint, tasks), tmp_path, endpoint=counting_proxy.endpoint
    )
    result = run.result("mirror")
    assert run.rc == 0, result.get("msg")
    stats = counting_proxy.stats()
    assert aws_proxy.count(stats, action="GetObject") == 2000 - len(on_disk)
    assert result["counts"]["downloaded"] == 2000 - len(on_disk)
    assert result["counts"]["adopted"] == len(on_disk) - len(indexed)
    assert result["counts"]["unchanged"] == len(indexed)
    assert s3h.local_files(dest) == objects
    assert index_keys(dest) == sorted(objects)


# ---------------------------------------------------------------- the guard against a rewritten bucket


def test_max_changed_stops_a_run_where_half_the_objects_were_rewritten_and_writes_nothing(s3, play, tmp_path):
    dest = tmp_path / "mirror"
    originals = s3h.put(s3, BUCKET, {"doc-{0:02d}.txt".format(n): b"good %d" % n for n in range(20)})
    assert play([mirror_task(dest=str(dest))]).rc == 0
    s3h.put(s3, BUCKET, {"doc-{0:02d}.txt".format(n): b"encrypted!! %d" % n for n in range(0, 20, 2)})
    s3h.put(s3, BUCKET, {"new.txt": b"new"})
    s3.delete_object(Bucket=BUCKET, Key="doc-01.txt")
    before = {path: (os.stat(dest / path).st_ino, data) for path, data in s3h.local_files(dest).items()}
    index_before = (dest / ".s3_mirror_index.jsonl").read_bytes()
    listing_before = sorted(os.listdir(dest))

    for guard, check in (("20%", False), ("9", False), ("49%", True)):
        run = play([mirror_task(dest=str(dest), delete=True, max_changed=guard)], check=check)
        result = run.result("mirror")
        assert run.rc != 0, result
        assert "10 of 20 mirrored files (50.0%) would be replaced" in result["msg"] or (
            "10 mirrored files would be replaced" in result["msg"]
        ), result["msg"]
        assert "max_changed is " + guard in result["msg"]
        [error] = result["errors"]
        assert (error["resource"], error["action"], error["code"]) == (str(dest), "download", "MaxChangedExceeded")
        assert result["changed"] is False or check
        assert {path: (os.stat(dest / path).st_ino, data) for path, data in s3h.local_files(dest).items()} == before
        assert (dest / ".s3_mirror_index.jsonl").read_bytes() == index_before
        assert sorted(os.listdir(dest)) == listing_before

    run = play([mirror_task(dest=str(dest), delete=True, max_changed="50%")])
    assert run.rc == 0, run.result("mirror")
    expected = dict(originals, **{"doc-{0:02d}.txt".format(n): b"encrypted!! %d" % n for n in range(0, 20, 2)})
    expected["new.txt"] = b"new"
    del expected["doc-01.txt"]
    assert s3h.local_files(dest) == expected


def test_keep_previous_keeps_replaced_and_deleted_files_until_their_time_and_restore_ignores_them(s3, play, tmp_path):
    dest = tmp_path / "mirror"
    s3h.put(s3, BUCKET, {"a.txt": b"a good", "sub/b.txt": b"b good", "c.txt": b"c"})
    assert play([mirror_task(dest=str(dest))]).rc == 0
    s3h.put(s3, BUCKET, {"a.txt": b"a overwritten"})
    s3.delete_object(Bucket=BUCKET, Key="sub/b.txt")

    run = play([mirror_task(dest=str(dest), delete=True, keep_previous="15s")])
    result = run.result("mirror")
    assert run.rc == 0, result
    assert result["counts"]["kept_previous"] == 2 and result["counts"]["deleted"] == 1
    assert "2 replaced or deleted file(s) kept in .s3_mirror_previous (keep_previous)" in result["msg"]
    assert s3h.local_files(dest) == {"a.txt": b"a overwritten", "c.txt": b"c"}
    [kept] = list((dest / ".s3_mirror_previous").iterdir())
    assert s3h.local_files(kept) == {"a.txt": b"a good", "sub/b.txt": b"b good"}
    until = datetime.datetime.strptime(kept.name, "until-%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)

    run = play([mirror_task(dest=str(dest))])
    assert run.rc == 0 and kept.exists(), "removed before its time"
    assert datetime.datetime.now(datetime.timezone.utc) < until, "the test ran too slowly to show this"

    s3.create_bucket(Bucket="restored")
    restore = play([ansible_run.task("s3_restore", "restore", src=str(dest), bucket="restored")])
    assert restore.rc == 0, restore.result("restore")
    assert s3h.bucket_contents(s3, "restored") == {"a.txt": b"a overwritten", "c.txt": b"c"}

    time.sleep(max(0.0, until.timestamp() + 1 - time.time()))
    run = play([mirror_task(dest=str(dest))])
    result = run.result("mirror")
    assert run.rc == 0, result
    assert not (dest / ".s3_mirror_previous").exists()
    assert "Removed 1 folder(s) of previous files past their keep_previous time." in result["msg"]
    assert s3h.local_files(dest) == {"a.txt": b"a overwritten", "c.txt": b"c"}


def test_bad_guard_values_are_named(s3, play, tmp_path):
    for option, value, message in (
        ("max_changed", "150%", "max_changed must be between 0 and 100% or a count of at least 0, got '150%'"),
        ("keep_previous", "soon", "keep_previous 'soon' is not a duration"),
    ):
        run = play([mirror_task(dest=str(tmp_path / "m"), **{option: value})])
        assert run.rc != 0
        assert message in run.result("mirror")["msg"]
    assert not (tmp_path / "m").exists()


# ---------------------------------------------------------------- versions


def test_version_as_of_reproduces_the_bucket_before_objects_were_overwritten_and_deleted(s3, aws, play, tmp_path):
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3h.put(s3, BUCKET, {"a.txt": b"a v1", "b.txt": b"b v1", "dir/c.txt": b"c v1"})
    time.sleep(1.5)
    moment = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    time.sleep(1.5)
    s3h.put(s3, BUCKET, {"a.txt": b"a v2 (encrypted)", "dir/c.txt": b"c v2", "d.txt": b"created later"})
    s3.delete_object(Bucket=BUCKET, Key="b.txt")
    versions = s3.list_object_versions(Bucket=BUCKET)
    first_ids = {item["Key"]: item["VersionId"] for item in versions["Versions"] if item["LastModified"] <= moment}
    assert set(first_ids) == {"a.txt", "b.txt", "dir/c.txt"}

    dest = tmp_path / "as-of"
    run = play([mirror_task(dest=str(dest), version_as_of=moment.isoformat(), delete=True)])
    result = run.result("mirror")
    assert run.rc == 0, result
    assert s3h.local_files(dest) == {"a.txt": b"a v1", "b.txt": b"b v1", "dir/c.txt": b"c v1"}
    rows = [json.loads(line) for line in (dest / ".s3_mirror_index.jsonl").read_text().splitlines()[1:]]
    assert {row[0]: row[4] for row in rows} == first_ids

    rerun = play([mirror_task(dest=str(dest), version_as_of=moment.isoformat(), delete=True)])
    assert rerun.rc == 0 and rerun.result("mirror")["changed"] is False
    now = play([mirror_task(dest=str(dest), delete=True)])
    assert now.rc == 0, now.result("mirror")
    assert s3h.local_files(dest) == {"a.txt": b"a v2 (encrypted)", "dir/c.txt": b"c v2", "d.txt": b"created later"}

    early = play([mirror_task(dest=str(tmp_path / "early"), version_as_of="2020-01-01T00:00:00Z", delete=True)])
    result = early.result("mirror")
    assert early.rc != 0
    assert "version_as_of 2020-01-01T00:00:00+00:00 is before the oldest object version" in result["msg"]
    assert [error["code"] for error in result["errors"]] == ["VersionAsOfTooEarly"]
    assert s3h.local_files(tmp_path / "early") == {}


def test_version_as_of_on_an_unversioned_bucket_fails_naming_the_value(s3, play, tmp_path):
    s3h.put(s3, BUCKET, {"a.txt": b"a"})
    run = play([mirror_task(dest=str(tmp_path / "m"), version_as_of="2026-11-23")])
    result = run.result("mirror")
    assert run.rc != 0
    assert "version_as_of 2026-11-23T00:00:00+00:00 cannot be honoured" in result["msg"]
    assert "does not keep object versions" in result["msg"]
    assert [(error["resource"], error["code"]) for error in result["errors"]] == [(BUCKET, "BucketNotVersioned")]
    assert not (tmp_path / "m").exists()


# ---------------------------------------------------------------- parallel listing

BOUNDARY_KEYS = [
    "a",
    "a!",
    "a-b",
    "a.txt",
    "a/",
    "a/b",
    "a/b/",
    "a/b/c.txt",
    "a/b/c/d/e.txt",
    "a/ü.txt",
    "a0",
    "a0/x",
    "a//double",
    "b",
    "b/\u00ff",
    "b/\U0001f600.png",
    "b\u00e9/straße/x",
    "c~",
    "c~/y",
    "\u00e9t\u00e9/photo.jpg",
    "\U0001f600/smile",
    "zz/deep/er/still/key",
]


NESTED_KEYS = [
    "n/1",
    "n/1!",
    "n/1/2",
    "n/1/2!",
    "n/1/2.txt",
    "n/1/2/3/4/5/leaf",
    "n/1/2/3/4/5!",
    "n/1/2/3/4/5/6/7/deepest",
    "n/1/2/3/4/b",
    "n/1/2/3/4/a/x",
    "n/1/2/3/4/c/y",
    "n/1/2/3/\u00e9/z",
    "n/1/2/3/\uffff/z",
    "n/1/2/3/\U0001f600/z",
    "n/1/2/3/\U0010fffd/z",
    "n/1/2/3/wide/",
    "n/\u00e9t\u00e9/",
    "n/\u00e9t\u00e9/a",
    "n/\U0001f600/b",
    "n/z",
] + ["n/1/2/3/wide/{0:02d}/k{1}".format(n, m) for n in range(24) for m in range(3)]


class ListingWatch:
    """The ListObjectsV2 calls of a client: (Prefix, Delimiter) of each, and the most in flight at once.

    Each call is held ``hold`` seconds before it is sent, so that calls made concurrently overlap."""

    def __init__(self, client, hold=0.05):
        self.hold = hold
        self.calls = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.lock = threading.Lock()
        client.meta.events.register("before-parameter-build.s3.ListObjectsV2", self.parameters)
        client.meta.events.register("before-send.s3.ListObjectsV2", self.sending)
        client.meta.events.register("after-call.s3.ListObjectsV2", self.answered)

    def parameters(self, params, **_kwargs):
        with self.lock:
            self.calls.append((params["Prefix"], params.get("Delimiter")))

    def sending(self, **_kwargs):
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(self.hold)

    def answered(self, **_kwargs):
        with self.lock:
            self.in_flight -= 1

    def stop(self, client):
        client.meta.events.unregister("before-parameter-build.s3.ListObjectsV2", self.parameters)
        client.meta.events.unregister("before-send.s3.ListObjectsV2", self.sending)
        client.meta.events.unregister("after-call.s3.ListObjectsV2", self.answered)


def test_parallel_listing_splits_folders_recursively_and_concurrently(s3, aws):
    from ansible_collections.opsvault.aws_backup.plugins.module_utils import s3_listing

    s3h.put(s3, BUCKET, {key: b"x" for key in NESTED_KEYS + ["other/key"]})
    in_key_order = sorted(NESTED_KEYS, key=lambda key: key.encode("utf-8"))
    assert in_key_order == sorted(NESTED_KEYS)
    single = [obj.key for obj in s3_listing.listed_objects(s3_listing.open_listing(s3, BUCKET, "n/"))]
    assert single == in_key_order
    for workers in (2, 3, 8):
        watch = ListingWatch(s3)
        pages = s3_listing.open_listing(s3, BUCKET, "n/", Delimiter="/")
        split = [
            obj.key for obj in s3_listing.listed_objects(s3_listing.parallel_pages(s3, BUCKET, "n/", workers, pages))
        ]
        assert split == single
        assert 1 < watch.most_in_flight <= workers
        split_levels = {prefix for prefix, delimiter in watch.calls if delimiter == "/"}
        streams = {prefix for prefix, delimiter in watch.calls if delimiter is None}
        # Split while fewer than ``workers`` folders are known, then one stream per folder.
        if workers == 8:
            assert {"n/", "n/1/", "n/1/2/", "n/1/2/3/", "n/\u00e9t\u00e9/", "n/\U0001f600/"} == split_levels
            assert {"n/1/2/3/4/", "n/1/2/3/wide/", "n/1/2/3/\U0010fffd/"} <= streams
        assert len(split_levels) < workers + 2
        watch.stop(s3)
    # A level of many folders and no keys: the folders ahead are listed at once, never more than ``workers``.
    watch = ListingWatch(s3, hold=0.2)
    wide = "n/1/2/3/wide/"
    pages = s3_listing.open_listing(s3, BUCKET, wide, Delimiter="/")
    split = [obj.key for obj in s3_listing.listed_objects(s3_listing.parallel_pages(s3, BUCKET, wide, 3, pages))]
    assert split == [key for key in single if key.startswith(wide)]
    assert watch.most_in_flight == 3
    watch.stop(s3)


def test_parallel_listing_gives_the_same_keys_in_the_same_order_as_one_stream(s3, aws, play, tmp_path):
    from ansible_collections.opsvault.aws_backup.plugins.module_utils import s3_listing

    keys = BOUNDARY_KEYS + ["big/part-{0:04d}".format(n) for n in range(1100)]
    s3h.put(s3, BUCKET, {key: key.encode("utf-8") for key in keys})
    single = [obj.key for obj in s3_listing.listed_objects(s3_listing.open_listing(s3, BUCKET, ""))]
    assert single == sorted(keys)
    prefixes_listed = []
    s3.meta.events.register(
        "before-parameter-build.s3.ListObjectsV2", lambda params, **kwargs: prefixes_listed.append(params["Prefix"])
    )
    for workers in (2, 8):
        pages = s3_listing.open_listing(s3, BUCKET, "", Delimiter="/")
        split = [
            obj.key for obj in s3_listing.listed_objects(s3_listing.parallel_pages(s3, BUCKET, "", workers, pages))
        ]
        assert split == single
    assert {"a/", "a0/", "b/", "big/", "zz/", "\U0001f600/"} <= set(prefixes_listed), "the key space was not split"
    # One folder at the top: the split happens a level down.
    pages = s3_listing.open_listing(s3, BUCKET, "a/", Delimiter="/")
    split = [obj.key for obj in s3_listing.listed_objects(s3_listing.parallel_pages(s3, BUCKET, "a/", 4, pages))]
    assert split == [key for key in single if key.startswith("a/")]

    plans = {}
    for concurrency in (1, 8):
        run = play([mirror_task(dest=str(tmp_path / "m"), list_concurrency=concurrency, report_limit=2000)], check=True)
        result = run.result("mirror")
        assert run.rc == 0, result
        plans[concurrency] = (result["downloaded_keys"], result["skipped_resources"], result["counts"])
    assert plans[1] == plans[8]
    assert len(plans[8][0]) + plans[8][2]["skipped"] + plans[8][2]["directories"] == len(keys)
