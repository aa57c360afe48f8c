"""Seed buckets in moto and compare a local mirror with them."""

import hashlib
import os
import urllib.request
from pathlib import Path

from moto.backends import get_backend

from tests.harness.moto_server import ACCOUNT_ID

MIB = 1024 * 1024
MIRROR_FILES = (".s3_mirror_index.jsonl", ".s3_mirror.lock", ".s3_mirror_last_run.json")


def put(s3, bucket, objects):
    """Put ``{key: bytes}``; returns the objects."""
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    return objects


def put_multipart(s3, bucket, key, part_sizes, seed=b"x"):
    """Upload ``key`` in parts of the given sizes (all but the last at least 5 MiB); returns the bytes."""
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)
    parts, chunks = [], []
    for number, size in enumerate(part_sizes, start=1):
        block = hashlib.sha256(seed + bytes([number])).digest()
        body = (block * (size // len(block) + 1))[:size]
        chunks.append(body)
        response = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=number, Body=body)
        parts.append({"ETag": response["ETag"], "PartNumber": number})
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts})
    return b"".join(chunks)


def bucket_contents(s3, bucket, prefix=""):
    """``{key: bytes}`` of every object under prefix, read back from moto."""
    contents = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            contents[item["Key"]] = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return contents


def local_files(dest):
    """``{relative path: bytes}`` of the regular files under dest, without the mirror's own files."""
    dest = Path(dest)
    files = {}
    for root, directories, names in os.walk(dest):
        directories[:] = [name for name in directories if not name.startswith(".s3_mirror")]
        for name in names:
            path = Path(root) / name
            relative = path.relative_to(dest).as_posix()
            if relative in MIRROR_FILES:
                continue
            files[relative] = path.read_bytes()
    return files


def stored_key(bucket, key):
    """moto's in-process object, to alter what it serves (it runs in the test process)."""
    return get_backend("s3")[ACCOUNT_ID]["global"].buckets[bucket].keys[key]


def set_auth(endpoint, free_requests):
    """Turn moto's IAM authentication on after ``free_requests`` more requests (inf turns it off)."""
    request = urllib.request.Request(
        endpoint + "/moto-api/reset-auth",
        data=str(free_requests).encode(),
        headers={"Content-Type": "text/plain"},
        method="POST",
    )
    return urllib.request.urlopen(request).read()


def processes_holding(path):
    """Ids of the processes with ``path`` open (Linux /proc)."""
    path = os.path.realpath(path)
    holders = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            descriptors = os.listdir("/proc/{0}/fd".format(pid))
            if any(os.readlink("/proc/{0}/fd/{1}".format(pid, fd)) == path for fd in descriptors):
                holders.append(int(pid))
        except OSError:
            continue
    return holders


def is_running(pid):
    """True while the process exists and is not a zombie."""
    try:
        with open("/proc/{0}/stat".format(pid)) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
