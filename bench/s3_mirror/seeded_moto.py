"""The bench's moto server, started with its bucket of small objects already in it.

    .venv/bin/python bench/s3_mirror/seeded_moto.py --port-file F --bucket B --small N \
        [--small-size 8192] [--seed 3] --expected E

Putting 100,000 objects through moto's HTTP front takes more than ten minutes on this machine (about
150 PutObject/s at any client concurrency: one Python process), so the server process puts them
itself before it listens, with the calls moto's PutObject handler makes for a boto3 ``put_object``:
``S3Backend.put_object`` with the body and its CRC32 checksum (boto3 sends one by default), the
bucket's ACL, no metadata or tags. The objects are the ones a PutObject would have made (same ETag,
size, checksum, LastModified); the tools then read them over HTTP as usual. ``--expected`` receives
``{key: md5 hex}`` before the port file is written.
"""

import argparse
import hashlib
import json
import os
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from moto.backends import get_backend  # noqa: E402
from moto.s3.utils import compute_checksum  # noqa: E402

from tests.harness import moto_s3_listing  # noqa: E402
from tests.harness import moto_server  # noqa: E402


def small_key(number):
    return "photos/{0:02d}/{1:03d}/IMG_{2:05d}.jpg".format(number % 7, number % 97, number)


def put_small_objects(bucket, count, size, seed):
    """``{key: md5 hex}`` of ``count`` objects of ``size`` random bytes put into ``bucket``."""
    backend = get_backend("s3")[moto_server.ACCOUNT_ID]["global"]
    backend.create_bucket(bucket, "us-east-1")
    acl = backend.get_bucket(bucket).acl
    rng = random.Random(seed)
    expected = {}
    for number in range(count):
        key, body = small_key(number), rng.randbytes(size)
        checksum = compute_checksum(body, algorithm="CRC32").decode("utf-8")
        new_key = backend.put_object(bucket, key, body, checksum_value=checksum)
        new_key.set_metadata({})
        new_key.set_acl(acl)
        new_key.checksum_algorithm = "CRC32"
        backend.put_object_tagging(new_key, {})
        expected[key] = hashlib.md5(body).hexdigest()
    return expected


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--small", type=int, required=True)
    parser.add_argument("--small-size", type=int, default=8192)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--expected", required=True)
    parser.add_argument(
        "--moto-listing", action="store_true", help="serve ListObjectsV2 as moto 5.2.5 does, without the harness patch"
    )
    args = parser.parse_args()
    server, endpoint = moto_server.start()
    if args.moto_listing:
        moto_s3_listing.unapply()
    started = time.monotonic()
    expected = put_small_objects(args.bucket, args.small, args.small_size, args.seed)
    Path(args.expected).write_text(json.dumps(expected))
    print("put {0} objects in {1:.1f} s".format(len(expected), time.monotonic() - started), flush=True)
    temporary = args.port_file + ".tmp"
    Path(temporary).write_text(endpoint.rsplit(":", 1)[1])
    os.replace(temporary, args.port_file)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
