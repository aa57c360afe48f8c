"""One (account, region) host with a very large fleet: ami_backup's peak memory and time against its size.

The module's own job (``AmiBackup``: describe, plan, apply, result) runs in a fresh process per size
against a pre-seeded EC2 stand-in: DescribeInstances returns ``size`` instances shaped as AWS returns
them (tags, block device mappings, a network interface), DescribeImages none, and CreateImage
answers at once. The result is serialised as Ansible's ``exit_json`` does. Prints seconds and peak
RSS (``getrusage``) per size, the RSS once the describe answer is in memory, and the time per instance.

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
    def __init__(self, result):
        self.result = result

    def paginate(self, **params):
        return self

    def build_full_result(self):
        return self.result


class SeededEc2:
    """The EC2 calls ami_backup makes, answered from a pre-seeded fleet."""

    def __init__(self, size):
        self.reservations = [{"Instances": [instance(index) for index in range(size)]}]
        self.created = 0

    def get_paginator(self, operation):
        if operation == "describe_instances":
            return _Pages({"Reservations": self.reservations})
        return _Pages({"Images": []})

    def create_image(self, **params):
        self.created += 1
        return {"ImageId": "ami-{0:017x}".format(self.created)}


def measure(size):
    """Run in the child: one ami_backup job of ``size`` instances; prints JSON."""
    from ansible_collections.opsvault.aws_backup.plugins.modules import ami_backup
    from tests.harness.module_options import ModuleExit
    from tests.harness.module_options import StandInModule
    from tests.harness.module_options import options_of

    start = time.monotonic()
    client = SeededEc2(size)
    seeded = time.monotonic() - start
    # What the describe answer alone takes (botocore holds the same parsed response in a real run).
    seeded_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    module = StandInModule({"max_concurrency": 16})
    job = ami_backup.AmiBackup(module, options_of(ami_backup), [REGION], {REGION: client})
    result = None
    try:
        job.run()
    except ModuleExit as exited:
        result = exited.result
    assert result is not None, "the job did not exit"
    output = json.dumps(result)
    elapsed = time.monotonic() - start - seeded
    assert len(result["images"]) == size == client.created, (len(result["images"]), client.created)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(
        json.dumps(
            dict(
                instances=size,
                job_s=round(elapsed, 2),
                peak_rss_mib=round(peak, 1),
                described_rss_mib=round(seeded_rss, 1),
                result_mib=round(len(output) / 2**20, 1),
            )
        )
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[25000, 50000, 100000])
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure)
        return 0
    rows = []
    for size in args.sizes:
        child = subprocess.run(
            [sys.executable, "-m", "bench.single_host", "--measure", str(size)],
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
