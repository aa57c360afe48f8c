"""What one ListObjectsV2 page costs moto, with and without the harness's listing patch.

    .venv/bin/python bench/s3_mirror/page_cost.py [--keys 100000] [--pages 20]

Starts two moto servers (bench/s3_mirror/seeded_moto.py) holding the bench's bucket of ``--keys``
objects, one serving ListObjectsV2 as moto 5.2.5 does, one with tests/harness/moto_s3_listing.py,
and reads the first ``--pages`` pages of 1,000 keys of each listing below in turn from each server,
one request at a time. A page's cost is the CPU time (user + system) the moto process spent while
the page was asked for and read, from /proc; moto serves one request at a time per CPU (one Python
process), so that CPU is what bounds the pages per second any number of clients can get.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402

LISTINGS = [
    ("whole bucket", {}),
    ("photos/00/", {"Prefix": "photos/00/"}),
    ("delimiter, top level", {"Delimiter": "/"}),
    ("delimiter, photos/", {"Prefix": "photos/", "Delimiter": "/"}),
    ("delimiter, photos/00/", {"Prefix": "photos/00/", "Delimiter": "/"}),
    ("delimiter, photos/00/000/", {"Prefix": "photos/00/000/", "Delimiter": "/"}),
]


def cpu_seconds(pid):
    fields = Path("/proc/{0}/stat".format(pid)).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, workdir, keys, moto_listing):
        self.workdir = Path(workdir)
        self.workdir.mkdir()
        self.command = [
            str(run.PROJECT_PYTHON),
            str(REPO / "bench" / "s3_mirror" / "seeded_moto.py"),
            "--port-file",
            str(self.workdir / "port"),
            "--expected",
            str(self.workdir / "expected.json"),
            "--bucket",
            run.BUCKET,
            "--small",
            str(keys),
            "--small-size",
            "16",
        ] + (["--moto-listing"] if moto_listing else [])
        self.keys = keys

    def __enter__(self):
        self.process = subprocess.Popen(
            self.command, env=run.project_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60 + self.keys / 1000
        while not (self.workdir / "port").exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("moto server did not start")
            time.sleep(0.1)
        self.client = run.s3_client("http://127.0.0.1:{0}".format((self.workdir / "port").read_text()))
        return self

    def __exit__(self, *exc):
        self.process.terminate()
        self.process.wait()

    def page_costs(self, parameters, pages):
        """CPU seconds of moto per page, and the number of entries (keys and common prefixes) per page."""
        costs, entries = [], []
        token = None
        while len(costs) < pages:
            request = dict(parameters, Bucket=run.BUCKET, **({"ContinuationToken": token} if token else {}))
            before = cpu_seconds(self.process.pid)
            page = self.client.list_objects_v2(**request)
            costs.append(cpu_seconds(self.process.pid) - before)
            entries.append(page["KeyCount"])
            token = page.get("NextContinuationToken")
            if not token:
                break
        return costs, entries


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100000)
    parser.add_argument("--pages", type=int, default=20, help="pages read per listing and server")
    args = parser.parse_args()
    print("load average {0:.2f} {1:.2f} {2:.2f}".format(*os.getloadavg()))
    with tempfile.TemporaryDirectory() as workdir:
        with Server(Path(workdir) / "moto", args.keys, True) as moto, Server(
            Path(workdir) / "patched", args.keys, False
        ) as patched:
            print(
                "{0:<28} {1:>8} {2:>8} {3:>14} {4:>14}".format("listing", "pages", "entries", "moto ms", "patched ms")
            )
            for name, parameters in LISTINGS:
                original, entries = moto.page_costs(parameters, args.pages)
                faster, same_entries = patched.page_costs(parameters, args.pages)
                assert entries == same_entries, (name, entries, same_entries)
                print(
                    "{0:<28} {1:>8} {2:>8} {3:>14.1f} {4:>14.1f}".format(
                        name,
                        len(entries),
                        sum(entries) // len(entries),
                        1000 * statistics.mean(original),
                        1000 * statistics.mean(faster),
                    ),
                    flush=True,
                )
    print("load average {0:.2f} {1:.2f} {2:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
