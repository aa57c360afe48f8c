"""What a describe costs in moto, with and without tests/harness/moto_ec2_describe.py, in one run.

Starts two moto servers (both with the harness's conformance patches; one without the describe
patch), seeds each with the same backups (``bench.purge.seed``: by default 2,000 expired AMIs plus
one fresh AMI per source instance, 2,200 AMIs and their snapshots over 4 regions), then times, per
server and alternating between them, the describes our modules make, straight to moto (no proxy):
DescribeImages and DescribeSnapshots of the account filtered by the backup marker tag, unpaginated
and in pages of ``--page-size``. Each time is the best of ``--repeat`` rounds. Prints a table and
writes JSON (``--out``).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import purge  # noqa: E402
from bench.ami_backup import REGIONS  # noqa: E402
from bench.servers import python_env  # noqa: E402
from bench.servers import wait_for_port  # noqa: E402
from tests.harness import fleet  # noqa: E402

MARKER_FILTER = [{"Name": "tag:CreatedBy", "Values": [purge.MARKER["CreatedBy"]]}]


def serve(patched, port_file):
    from tests.harness import moto_ec2_describe
    from tests.harness import moto_server

    moto_server.apply_conformance_patches()
    if not patched:
        moto_ec2_describe.unapply()
    server, endpoint = moto_server.start()
    Path(port_file).write_text(endpoint.rsplit(":", 1)[1])
    while True:
        time.sleep(3600)


def describe_all(ec2, operation, key, page_size, **params):
    """Every item of one describe, following NextToken; returns ``(items, pages)``."""
    items, pages, token = [], 0, None
    while True:
        call = dict(params)
        if page_size:
            call["MaxResults"] = page_size
        if token:
            call["NextToken"] = token
        answer = getattr(ec2, operation)(**call)
        items += answer[key]
        pages += 1
        token = answer.get("NextToken")
        if not token:
            return items, pages


CALLS = {
    "DescribeImages": ("describe_images", "Images", dict(Owners=["self"], Filters=MARKER_FILTER)),
    "DescribeSnapshots": ("describe_snapshots", "Snapshots", dict(OwnerIds=["self"], Filters=MARKER_FILTER)),
}


def time_describe(endpoint, action, page_size):
    """Seconds to describe every marked image (or snapshot) of every region; ``(seconds, items, pages)``."""
    operation, key, params = CALLS[action]
    clients = [fleet.client(endpoint, "ec2", region) for region in REGIONS]
    for ec2 in clients:  # warm the client (service model, connection) outside the timing
        ec2.describe_regions(RegionNames=[ec2.meta.region_name])
    started = time.perf_counter()
    items = pages = 0
    for ec2 in clients:
        found, used = describe_all(ec2, operation, key, page_size, **params)
        items += len(found)
        pages += used
    return time.perf_counter() - started, items, pages


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", choices=["patched", "unpatched"], help=argparse.SUPPRESS)
    parser.add_argument("--port-file", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=2000, help="expired AMIs to seed (plus 50 fresh per region)")
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "build" / "bench" / "describe_cost.json"))
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve == "patched", args.port_file)

    workdir = Path(tempfile.mkdtemp(prefix="opsvault-describe-"))
    processes, endpoints = [], {}
    try:
        for variant in ("unpatched", "patched"):
            port_file = workdir / (variant + ".port")
            process = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--serve", variant, "--port-file", str(port_file)],
                cwd=str(REPO),
                env=python_env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            processes.append(process)
            endpoints[variant] = "http://127.0.0.1:{0}".format(wait_for_port(port_file, process))
        for variant, endpoint in endpoints.items():
            started = time.perf_counter()
            purge.seed(endpoint, "ami_purge", args.count, REGIONS)
            print("seeded {0} in {1:.1f} s".format(variant, time.perf_counter() - started), flush=True)

        results = []
        for action in CALLS:
            for page_size in (None, args.page_size):
                best = {}
                for _round in range(args.repeat):
                    for variant, endpoint in endpoints.items():
                        seconds, items, pages = time_describe(endpoint, action, page_size)
                        if variant not in best or seconds < best[variant][0]:
                            best[variant] = (seconds, items, pages)
                for variant, (seconds, items, pages) in best.items():
                    results.append(
                        dict(
                            action=action,
                            max_results=page_size,
                            moto=variant,
                            seconds=round(seconds, 3),
                            items=items,
                            pages=pages,
                            seconds_per_page=round(seconds / pages, 3),
                            ms_per_item=round(1000 * seconds / max(items, 1), 3),
                        )
                    )
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)

    print()
    print(
        "{0:<18} {1:>10} {2:>10} {3:>8} {4:>6} {5:>6} {6:>8} {7:>8}".format(
            "action", "MaxResults", "moto", "seconds", "items", "pages", "s/page", "ms/item"
        )
    )
    for row in results:
        print(
            "{action:<18} {mr:>10} {moto:>10} {seconds:>8.2f} {items:>6} {pages:>6} {seconds_per_page:>8.2f} "
            "{ms_per_item:>8.2f}".format(mr=row["max_results"] or "-", **row)
        )
    for action in CALLS:
        for page_size in (None, args.page_size):
            pair = {row["moto"]: row for row in results if row["action"] == action and row["max_results"] == page_size}
            print(
                "{0} MaxResults={1}: unpatched / patched = {2:.1f}x".format(
                    action, page_size or "-", pair["unpatched"]["seconds"] / pair["patched"]["seconds"]
                )
            )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps({"count": args.count, "regions": REGIONS, "results": results}, indent=2) + "\n"
    )
    print("wrote " + args.out)


if __name__ == "__main__":
    main()
