"""Instance restores: instance_restore vs the playbook an amazon.aws user writes (ec2_ami_info, then ec2_instance).

Each source instance has one managed AMI. Ours is one ``opsvault.aws_backup.instance_restore`` task over
the 4 regions; the peer looks up each source's newest available AMI with ``amazon.aws.ec2_ami_info``
and launches it with ``amazon.aws.ec2_instance`` in a loop (``wait: false`` for both). Behind the proxy
(50 ms per call, EC2's token buckets; RunInstances and TerminateInstances with their resource buckets).

Run alone: ``.venv/bin/python bench/restore.py --sources 200`` (or through ``bench/run.py --only restore``).
"""

import argparse
import collections
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for path in (REPO / "build" / "collections", REPO):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench.ami_backup import REGIONS  # noqa: E402
from bench.ami_backup import seed_fleet  # noqa: E402
from bench.memory import PeakMemory  # noqa: E402
from bench.servers import Servers  # noqa: E402
from bench.timeline import phases  # noqa: E402
from tests.harness import ansible_run  # noqa: E402
from tests.harness import aws_proxy  # noqa: E402
from tests.harness import fleet  # noqa: E402

TOOLS = ("instance_restore", "amazon_aws_loop")
# https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html, "Resource token bucket sizes and
# refill rates": RunInstances 1,000 instances refilled at 2 per second, TerminateInstances 1,000 at 20.
RESOURCE_BUCKETS = {"RunInstances": [1000, 2], "TerminateInstances": [1000, 20]}
PROXY_CONFIG = {"latency_ms": 50.0, "throttle": True, "bucket_overrides": RESOURCE_BUCKETS}
MANAGED = {"CreatedBy": "opsvault.aws_backup", "BackupPolicy": "default", "DeleteOn": "2999-01-01"}


def seed(moto_endpoint, sources, regions):
    """``sources`` running instances over ``regions``, each with one managed AMI, and a subnet per region."""
    launched = seed_fleet(moto_endpoint, sources, regions)
    networks = {}
    for region, instance_ids in launched.items():
        ec2 = fleet.client(moto_endpoint, "ec2", region)
        vpc = ec2.create_vpc(CidrBlock="10.60.0.0/16")["Vpc"]["VpcId"]
        networks[region] = ec2.create_subnet(VpcId=vpc, CidrBlock="10.60.1.0/24")["Subnet"]["SubnetId"]
        for instance_id in instance_ids:
            tags = dict(MANAGED, SourceInstanceId=instance_id, Region=region)
            ec2.create_image(
                InstanceId=instance_id,
                Name="backup-" + instance_id,
                TagSpecifications=[{"ResourceType": "image", "Tags": fleet.tag_list(tags)}],
            )
    return launched, networks


def sources_of(launched, networks):
    return [
        {"instance_id": instance_id, "region": region, "subnet_id": networks[region]}
        for region, instance_ids in launched.items()
        for instance_id in instance_ids
    ]


def instance_restore_play(endpoint, launched, networks):
    options = {
        "regions": sorted(launched),
        "instance_ids": [instance_id for ids in launched.values() for instance_id in ids],
        "networks": {region: {"subnet_id": subnet} for region, subnet in networks.items()},
        "instance_type": "t3.micro",
        "restore_id": "bench",
    }
    tasks = [{"name": "restore", "opsvault.aws_backup.instance_restore": options, "register": "result"}]
    return ansible_run.aws_play(endpoint, tasks)


def amazon_aws_play(endpoint):
    """What a user of amazon.aws writes: the newest available managed AMI of each source, then a launch of each."""
    tasks = [
        {
            "name": "find the newest available backup of each source",
            "amazon.aws.ec2_ami_info": {
                "region": "{{ item.region }}",
                "owners": ["self"],
                "filters": {
                    "tag:SourceInstanceId": "{{ item.instance_id }}",
                    "tag:CreatedBy": "opsvault.aws_backup",
                    "state": "available",
                },
            },
            "loop": "{{ sources }}",
            "loop_control": {"label": "{{ item.instance_id }}"},
            "register": "backups",
        },
        {
            "name": "launch a restore of each",
            "amazon.aws.ec2_instance": {
                "region": "{{ item.item.region }}",
                "name": "restore of {{ item.item.instance_id }}",
                "image_id": "{{ (item.images | sort(attribute='creation_date') | last).image_id }}",
                "instance_type": "t3.micro",
                "vpc_subnet_id": "{{ item.item.subnet_id }}",
                "metadata_options": {"http_tokens": "required"},
                "tags": {"SourceInstanceId": "{{ item.item.instance_id }}", "RestoredBy": "opsvault.aws_backup"},
                "state": "running",
                "wait": False,
            },
            "loop": "{{ backups.results }}",
            "loop_control": {"label": "{{ item.item.instance_id }}"},
        },
    ]
    return ansible_run.aws_play(endpoint, tasks)


def restored_per_source(moto_endpoint, launched):
    """How many live instances each source has restored (the SourceInstanceId tag), read from moto."""
    counts = collections.Counter()
    for region in launched:
        ec2 = fleet.client(moto_endpoint, "ec2", region)
        pages = ec2.get_paginator("describe_instances").paginate(
            Filters=[
                {"Name": "tag-key", "Values": ["SourceInstanceId"]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]},
            ]
        )
        for page in pages:
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    counts[fleet.tags_of(instance)["SourceInstanceId"]] += 1
    return {instance_id: counts.get(instance_id, 0) for ids in launched.values() for instance_id in ids}


def measure(servers, tool, sources, workdir, regions=None):
    """One timed run of ``tool`` restoring ``sources`` fresh sources; returns a result row."""
    regions = regions or REGIONS
    servers.reset()
    launched, networks = seed(servers.moto, sources, regions)
    servers.control.reset()
    if tool == "instance_restore":
        playbook, extra_vars = instance_restore_play(servers.proxy, launched, networks), None
    else:
        playbook, extra_vars = amazon_aws_play(servers.proxy), {"sources": sources_of(launched, networks)}
    started, started_at = time.monotonic(), time.time()
    with PeakMemory() as memory:
        run = ansible_run.run_playbook(
            playbook, Path(workdir), endpoint=servers.proxy, extra_vars=extra_vars, timeout=7200
        )
    wall = time.monotonic() - started
    failed = [task for task in run.tasks if task.get("failed")]
    stats = servers.control.stats()
    restored = restored_per_source(servers.moto, launched)
    run_instances_ok = aws_proxy.count(stats, action="RunInstances", outcome="ok")
    floor, _per_bucket = aws_proxy.throttle_floor(
        {(region, "RunInstances"): len(ids) for region, ids in launched.items()},
        families={"RunInstances": aws_proxy.Family("resource", *RESOURCE_BUCKETS["RunInstances"])},
    )
    return {
        "job": "instance_restore",
        "tool": tool,
        "instances": sources,
        "regions": len(regions),
        "wall_seconds": round(wall, 2),
        "succeeded": run.rc == 0 and not failed,
        "error": failed[0].get("msg") if failed else None,
        "restored": sum(1 for count in restored.values() if count >= 1),
        "doubled": sum(1 for count in restored.values() if count > 1),
        "run_instances_ok": run_instances_ok,
        "run_instances_ok_per_source": round(run_instances_ok / sources, 3),
        "requests": stats["total"],
        "requests_per_instance": round(stats["total"] / sources, 3),
        "mutating_requests_per_instance": round(stats["mutating"] / sources, 3),
        "mutating_ok_per_instance": round(aws_proxy.count(stats, mutating=True, outcome="ok") / sources, 3),
        "describe_requests": stats["total"] - stats["mutating"],
        "throttled": stats["outcomes"].get("throttled", 0),
        "by_action": stats["requests"],
        "floor_seconds": round(floor, 2),
        "ratio_to_floor": round(wall / floor, 2) if floor else None,
        "phases": phases(started_at, wall, stats.get("timeline")),
        "peak_memory_mib": memory.report(),
        "timeline": stats.get("timeline"),
    }


def targets(rows):
    """The issue's targets: at least 30x faster than the amazon.aws loop, one successful RunInstances per source."""
    found = {(row["tool"], row["instances"]): row for row in rows if row["job"] == "instance_restore"}
    checks = []
    for (tool, size), row in sorted(found.items()):
        if tool == "instance_restore":
            checks.append(
                dict(
                    target="instance_restore: exactly 1 successful RunInstances per source",
                    instances=size,
                    measured=row["run_instances_ok_per_source"],
                    met=row["run_instances_ok"] == size and row["restored"] == size and not row["doubled"],
                )
            )
        loop = found.get(("amazon_aws_loop", size))
        if tool == "instance_restore" and loop:
            speedup = loop["wall_seconds"] / row["wall_seconds"]
            checks.append(
                dict(
                    target="instance_restore >= 30x faster than the amazon.aws loop",
                    instances=size,
                    measured=round(speedup, 1),
                    met=speedup >= 30,
                )
            )
    return checks


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=200, help="source instances over 4 regions")
    parser.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    parser.add_argument("--out", default=str(REPO / "bench" / "restore_results.json"))
    args = parser.parse_args()

    ansible_run.ensure_collection_link()
    rows = []
    with tempfile.TemporaryDirectory(prefix="opsvault-bench-restore-") as workdir:
        with Servers(workdir, PROXY_CONFIG) as servers:
            for tool in args.tools:
                row = measure(servers, tool, args.sources, workdir)
                rows.append(row)
                print(
                    "{tool:<17} {instances:>5} sources  {wall_seconds:>8.1f} s  ok={succeeded}  restored={restored} "
                    "doubled={doubled}  RunInstances ok={run_instances_ok}  requests={requests}".format(**row),
                    flush=True,
                )
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "settings": dict(PROXY_CONFIG, regions=REGIONS),
        "runs": [{key: value for key, value in row.items() if key != "timeline"} for row in rows],
        "targets": targets(rows),
    }
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    for check in results["targets"]:
        print(
            "{target:<60} {instances:>5}: {measured:>7}  {verdict}".format(
                verdict="met" if check["met"] else "NOT MET", **check
            )
        )
    print("wrote " + args.out)


if __name__ == "__main__":
    main()
