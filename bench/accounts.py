"""Many accounts: the shipped ami_backup and ami_purge playbooks over the accounts inventory, with forks.

An organisation of ``--accounts`` member accounts (under one OU) x ``--regions`` regions, with
``--instances`` tagged instances spread over every (account, region), seeded straight into moto
(a separate process) through each account's OrganizationAccountAccessRole. Then one run of
``opsvault.aws_backup.ami_backup`` and one of ``opsvault.aws_backup.ami_purge`` (``--check`` with a
future ``as_of``: every AMI is the newest of its instance, so the plan keeps all) over the inventory
with ``-f FORKS``, each host assuming its account's role. Prints wall time, the peak RSS of the
largest process of each run (``getrusage`` of the children: the controller, a fork or a module),
and checks one AMI per instance, each in its own account.

    .venv/bin/python bench/accounts.py --accounts 10 --regions 17 --instances 10000 --forks 10
"""

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from bench.servers import Servers
from tests.harness import ansible_run
from tests.harness import fleet
from tests.harness import organization

ROLE = "OrganizationAccountAccessRole"  # what AWS Organizations creates in each new account


def member_ec2(endpoint, account_id, region):
    return organization.ec2_in(endpoint, "arn:aws:iam::{0}:role/{1}".format(account_id, ROLE), region)


def seed(endpoint, accounts, regions, instances):
    names = {"member{0:02d}".format(index): "ACTIVE" for index in range(accounts)}
    org = organization.Organization(endpoint, names, ous={"Workloads": list(names)})
    hosts = [(account_id, region) for account_id in org.accounts.values() for region in regions]
    share, extra = divmod(instances, len(hosts))
    launched = {}
    for index, (account_id, region) in enumerate(hosts):
        count = share + (1 if index < extra else 0)
        ec2 = member_ec2(endpoint, account_id, region)
        ids = []
        while len(ids) < count:
            ids += fleet.launch(ec2, {"Backup": "", "Retention": "7"}, count=min(250, count - len(ids)))
        launched[(account_id, region)] = ids
    return org, launched


def run(playbook, inventory, workdir, endpoint, forks, extra_vars, check=False):
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.monotonic()
    result = ansible_run.run_playbook(
        playbook,
        workdir,
        endpoint=endpoint,
        inventory=inventory,
        extra_vars=extra_vars,
        options=["-f", str(forks)],
        check=check,
        timeout=7200,
    )
    wall = time.monotonic() - start
    # ru_maxrss (KiB) of the children is the largest any single process of the run reached (if above earlier runs').
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return result, wall, peak / 1024.0, peak > before


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10)
    parser.add_argument("--regions", type=int, default=17)
    parser.add_argument("--instances", type=int, default=10000)
    parser.add_argument("--forks", type=int, default=10)
    parser.add_argument("--out", default="bench/accounts-results.json")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-accounts-"))
    with Servers(workdir, {"latency_ms": 0, "throttle": False}) as servers:
        described = fleet.client(servers.moto, "ec2", "us-east-1").describe_regions(AllRegions=True)["Regions"]
        enabled = [item["RegionName"] for item in described if item["OptInStatus"] != "not-opted-in"]
        regions = sorted(enabled)[: args.regions]
        started = time.monotonic()
        org, launched = seed(servers.moto, args.accounts, regions, args.instances)
        seeded = time.monotonic() - started
        inventory = workdir / "bench.accounts.yml"
        inventory.write_text(
            json.dumps(
                {
                    "plugin": "opsvault.aws_backup.accounts",
                    "organizational_units": [org.ous["Workloads"]],
                    "regions": regions,
                    "role_arn_template": "arn:aws:iam::{account_id}:role/" + ROLE,
                    "endpoint_url": servers.proxy,
                    "region": "us-east-1",
                }
            )
        )
        rows = {}
        backup, wall, peak, _output = run(
            "opsvault.aws_backup.ami_backup", inventory, workdir, servers.proxy, args.forks, {"ami_backup_hosts": "all"}
        )
        rows["ami_backup"] = dict(rc=backup.rc, wall_s=round(wall, 1), peak_rss_mib=round(peak, 1))
        purge, wall, peak, grew = run(
            "opsvault.aws_backup.ami_purge",
            inventory,
            workdir,
            servers.proxy,
            args.forks,
            {"ami_purge_hosts": "all", "ami_purge_as_of": "2099-01-01"},
            check=True,
        )
        rows["ami_purge_check"] = dict(
            rc=purge.rc, wall_s=round(wall, 1), peak_rss_mib=round(peak, 1) if grew else "<= ami_backup's"
        )

        wrong = 0
        for (account_id, region), ids in launched.items():
            images = fleet.images(member_ec2(servers.moto, account_id, region)).values()
            sources = sorted(fleet.tags_of(image).get("SourceInstanceId") for image in images)
            wrong += sources != sorted(ids)
        hosts = len(backup.by_host("Create AMIs of the tagged instances"))
        summary = dict(
            accounts=args.accounts,
            regions=len(regions),
            hosts=hosts,
            instances=args.instances,
            forks=args.forks,
            cpu_count=os.cpu_count(),
            seed_s=round(seeded, 1),
            hosts_with_wrong_amis=wrong,
            runs=rows,
        )
    print(json.dumps(summary, indent=1))
    Path(args.out).write_text(json.dumps(summary, indent=1) + "\n")
    return 0 if wrong == 0 and backup.rc == 0 and purge.rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
