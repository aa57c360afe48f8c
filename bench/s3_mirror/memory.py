"""s3_mirror's peak memory against the number of keys, with the listing stubbed.

    .venv/bin/python bench/s3_mirror/memory.py [--keys 100000 1000000] [--list-concurrency 8]

For each size, a child process runs the mirror's engine (s3_transfer.Mirror, in check mode, so
nothing is fetched or written) over a listing of that many keys served by a stub client in pages
of 1,000, merged with an index of as many entries (half the objects changed since, none on disk, so
every key is planned for download and goes through the whole decision), and reports
its peak resident memory (ru_maxrss). Flat memory means the peak does not grow with the keys.
The keys are under ``photos/`` in 97 folders, and the stub answers delimiter listings too, so with
``--list-concurrency`` above 1 (the module's default is 8) the split listing runs as it does on a
bucket, its folders ahead holding their pages until the mirror reads them.
Results go to build/bench/s3_mirror_memory.json.
"""

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "build" / "bench" / "s3_mirror_memory.json"
PAGE = 1000
FOLDERS = 97
WHEN = datetime.datetime(2026, 11, 23, 1, 0, tzinfo=datetime.timezone.utc)


class StubPaginator:
    def __init__(self, keys):
        self.keys = keys
        self.per_folder = keys // FOLDERS + 1

    def paginate(self, Prefix="", Delimiter=None, **_params):  # noqa: N803  pylint: disable=invalid-name
        """ListObjectsV2 pages as S3 gives them: ``photos/`` at the top, its folders, or a folder's keys."""
        folders = -(-self.keys // self.per_folder)
        if Delimiter and Prefix == "":
            yield {"CommonPrefixes": [{"Prefix": "photos/"}]}
        elif Delimiter and Prefix == "photos/":
            for start in range(0, folders, PAGE):
                yield {"CommonPrefixes": [{"Prefix": self.folder(n)} for n in range(start, min(start + PAGE, folders))]}
        else:
            first, end = 0, self.keys
            if Prefix:
                first = int(Prefix.split("/")[1]) * self.per_folder
                end = min(self.keys, first + self.per_folder)
            for start in range(first, end, PAGE):
                yield {"Contents": [self.item(index) for index in range(start, min(start + PAGE, end))]}

    @staticmethod
    def folder(number):
        return "photos/{0:03d}/".format(number)

    def item(self, index):
        """The index-th key in key order: ``photos/<folder>/<number>.jpg``, FOLDERS folders."""
        folder, number = divmod(index, self.per_folder)
        name = "{0}{1:08d}.jpg".format(self.folder(folder), number)
        etag = '"{0:032x}"'.format(index) if index % 2 else '"{0:032x}"'.format(index + 1)
        return {"Key": name, "Size": 4096, "ETag": etag, "LastModified": WHEN, "StorageClass": "STANDARD"}


def stub_client(keys):
    """A real botocore S3 client (the transfer manager registers its events on it) whose listing is the stub."""
    import boto3

    client = boto3.session.Session(
        aws_access_key_id="stub", aws_secret_access_key="stub", region_name="us-east-1"
    ).client("s3", endpoint_url="http://127.0.0.1:9")
    paginator = StubPaginator(keys)
    client.get_paginator = lambda operation: paginator
    return client


def child(keys, dest, list_concurrency):
    sys.path[:0] = [str(REPO), str(REPO / "build" / "collections")]
    from ansible_collections.opsvault.aws_backup.plugins.module_utils import s3_index
    from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_transfer import Mirror

    client = stub_client(keys)
    paginator = client.get_paginator("list_objects_v2")
    os.makedirs(os.path.join(dest, s3_index.TEMP_DIR_NAME), exist_ok=True)
    writer = s3_index.IndexWriter(dest, "bench", "", fsync=False)
    for index in range(keys):
        item = paginator.item(index)
        writer.write(s3_index.IndexEntry(item["Key"], 4096, '"{0:032x}"'.format(index), WHEN.timestamp()))
    writer.commit()
    s3_index.remove_temp_dir(dest)
    options = dict(
        bucket="bench",
        prefix="",
        dest=dest,
        include=[],
        exclude=[],
        delete=True,
        max_delete=None,
        max_concurrency=32,
        multipart_threshold=8 * 1024 * 1024,
        fsync=False,
        report_limit=100,
        list_concurrency=list_concurrency,
    )
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    report = Mirror(client, options, check_mode=True).run()
    elapsed = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            dict(
                keys=keys,
                list_concurrency=list_concurrency,
                listed=report.counts["listed"],
                would_download=report.counts["downloaded"],
                unchanged=report.counts["unchanged"],
                seconds=round(elapsed, 1),
                peak_mib=round(peak / 1024.0, 1),
                before_run_mib=round(baseline / 1024.0, 1),
            )
        )
    )


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        return child(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[100000, 1000000])
    parser.add_argument("--list-concurrency", type=int, default=8, help="the module's list_concurrency (default 8)")
    args = parser.parse_args()
    results = []
    for keys in args.keys:
        with tempfile.TemporaryDirectory(prefix="bench-s3-memory-") as dest:
            output = subprocess.run(
                [sys.executable, __file__, "child", str(keys), dest, str(args.list_concurrency)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
        print(
            "{keys:>9} keys, list_concurrency {list_concurrency}: peak {peak_mib} MiB "
            "(before the run {before_run_mib} MiB), {seconds} s; "
            "listed {listed}, would download {would_download}, unchanged {unchanged}".format(**results[-1]),
            flush=True,
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print("results in {0}".format(RESULTS))


if __name__ == "__main__":
    main()
