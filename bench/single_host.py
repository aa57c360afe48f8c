"""One (account, region) host with a very large fleet: ami_backup's peak memory and time against its size.

The module's own job (``AmiBackup``: describe, plan, apply, result) runs in a fresh process per size
against an EC2 stand-in: DescribeInstances answers ``size`` instances shaped as AWS returns them
(tags, block device mappings, a network interface) in pages of ``--page-size`` (each page made when
it is asked for, as botocore parses each HTTP answer), DescribeImages none, and CreateImage answers
at once. The result is serialised as Ansible's ``exit_json`` does. Prints seconds and peak RSS
(``getrusage``) per size, and the time per instance.

    .venv/bin/python bench/single_host.py --sizes 25000 50000 100000
"""

import argparse
import json
import resource
import subprocess
import sys
import time

from bench.servers import REPO
from bench.servers import python_env

REGION = "eu-west-1"


def instance(index):
    instance_id = "i-{0:017x}".format(index)
    return {
        "InstanceId": instance_id,
        "ImageId": "ami-12c6146b",
        "InstanceType": "t3.micro",
        "State": {"Code": 16, "Name": "running"},
        "LaunchTime": "2026-11-01T00:00:00.000Z",
        "Placement": {"AvailabilityZone": REGION + "a", "Tenancy": "default"},
        "PrivateIpAddress": "10.0.{0}.{1}".format(index // 256 % 256, index % 256),
        "SubnetId": "subnet-0123456789abcdef0",
        "VpcId": "vpc-0123456789abcdef0",
        "Architecture": "x86_64",
        "RootDeviceName": "/dev/xvda",
        "BlockDeviceMappings": [
            {"DeviceName": "/dev/xvda", "Ebs": {"VolumeId": "vol-{0:017x}".format(index), "Status": "attached"}}
        ],
        "NetworkInterfaces": [{"NetworkInterfaceId": "eni-{0:017x}".format(index), "Status": "in-use"}],
        "Tags": [
            {"Key": "Backup", "Value": ""},
            {"Key": "Name", "Value": "web-{0}".format(index)},
            {"Key": "Retention", "Value": "7"},
        ],
    }


class _Pages:
    def __init__(self, make_pages):
        self.make_pages = make_pages

    def paginate(self, **params):
        return self.make_pages()

    def build_full_result(self):
        full = {}
        for page in self.make_pages():
            for key, items in page.items():
                full.setdefault(key, []).extend(items)
        return full


class SeededEc2:
    """The EC2 calls ami_backup makes, answered from a fleet of ``size`` instances, page by page."""

    def __init__(self, size, page_size):
        self.size, self.page_size = size, page_size
        self.created = 0

    def instance_pages(self):
        for first in range(0, self.size, self.page_size):
            last = min(first + self.page_size, self.size)
            yield {"Reservations": [{"Instances": [instance(index) for index in range(first, last)]}]}

    def get_paginator(self, operation):
        if operation == "describe_instances":
            return _Pages(self.instance_pages)
        return _Pages(lambda: iter([{"Images": []}]))

    def create_image(self, **params):
        self.created += 1
        return {"ImageId": "ami-{0:017x}".format(self.created)}


def measure(size, page_size):
    """Run in the child: one ami_backup job of ``size`` instances; prints JSON."""
    from ansible_collections.opsvault.aws_backup.plugins.modules import ami_backup
    from tests.harness.module_options import ModuleExit
    from tests.harness.module_options import StandInModule
    from tests.harness.module_options import options_of

    start = time.monotonic()
    client = SeededEc2(size, page_size)
    module = StandInModule({"max_concurrency": 16})
    job = ami_backup.AmiBackup(module, options_of(ami_backup), [REGION], {REGION: client})
    result = None
    try:
        job.run()
    except ModuleExit as exited:
        result = exited.result
    assert result is not None, "the job did not exit"
    output = json.dumps(result)
    elapsed = time.monotonic() - start
    assert len(result["images"]) == size == client.created, (len(result["images"]), client.created)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(
        json.dumps(
            dict(
                instances=size,
                job_s=round(elapsed, 2),
                peak_rss_mib=round(peak, 1),
                page_size=page_size,
                result_mib=round(len(output) / 2**20, 1),
            )
        )
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[25000, 50000, 100000])
    parser.add_argument("--page-size", type=int, default=1000, help="instances per DescribeInstances page")
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure, args.page_size)
        return 0
    rows = []
    for size in args.sizes:
        child = subprocess.run(
            [sys.executable, "-m", "bench.single_host", "--measure", str(size), "--page-size", str(args.page_size)],
            cwd=str(REPO),
            env=python_env(),
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(child.stdout.strip().splitlines()[-1])
        row["us_per_instance"] = round(row["job_s"] / size * 1e6, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
