"""Purges of expired backups: ami_purge and snapshot_purge vs a seed-style boto3 script."""

import datetime
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.ami_backup import REGIONS
from bench.ami_backup import spread
from bench.memory import PeakMemory
from bench.servers import REPO
from bench.servers import python_env
from bench.timeline import phases
from tests.harness import ansible_run
from tests.harness import aws_proxy
from tests.harness import fleet

JOBS = ("ami_purge", "snapshot_purge")
TOOLS = ("own_module", "seed_style")
SOURCES_PER_REGION = 50
MARKER = {"CreatedBy": "opsvault.aws_backup", "BackupPolicy": "default"}


def day(offset):
    return (datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=offset)).isoformat()


def spec(resource_types, tags):
    return [{"ResourceType": kind, "Tags": fleet.tag_list(tags)} for kind in resource_types]


def seed_images(ec2, region, expired):
    """``expired`` expired managed AMIs over SOURCES_PER_REGION instances, then one fresh AMI each (newer)."""
    instances = fleet.launch(ec2, {"Backup": ""}, count=SOURCES_PER_REGION)
    expired_ids = []
    for number in range(expired):
        instance_id = instances[number % len(instances)]
        tags = dict(MARKER, DeleteOn=day(-1 - number // len(instances)), SourceInstanceId=instance_id, Region=region)
        image = ec2.create_image(
            InstanceId=instance_id,
            Name="{0}-old-{1}".format(instance_id, number),
            NoReboot=True,
            TagSpecifications=spec(["image", "snapshot"], tags),
        )
        expired_ids.append(image["ImageId"])
    return instances, expired_ids


def seed_fresh_images(ec2, region, instances):
    for instance_id in instances:
        tags = dict(MARKER, DeleteOn=day(7), SourceInstanceId=instance_id, Region=region)
        ec2.create_image(
            InstanceId=instance_id,
            Name="{0}-fresh".format(instance_id),
            NoReboot=True,
            TagSpecifications=spec(["image", "snapshot"], tags),
        )


def seed_snapshots(ec2, region, expired):
    volumes = [
        ec2.create_volume(AvailabilityZone=region + "a", Size=8)["VolumeId"] for _source in range(SOURCES_PER_REGION)
    ]
    expired_ids = []
    for number in range(expired):
        volume_id = volumes[number % len(volumes)]
        tags = dict(MARKER, DeleteOn=day(-1 - number // len(volumes)), VolumeId=volume_id, Region=region)
        snapshot = ec2.create_snapshot(VolumeId=volume_id, TagSpecifications=spec(["snapshot"], tags))
        expired_ids.append(snapshot["SnapshotId"])
    return volumes, expired_ids


def seed_fresh_snapshots(ec2, region, volumes):
    for volume_id in volumes:
        tags = dict(MARKER, DeleteOn=day(7), VolumeId=volume_id, Region=region)
        ec2.create_snapshot(VolumeId=volume_id, TagSpecifications=spec(["snapshot"], tags))


def seed(moto_endpoint, job, count, regions):
    """Seed ``count`` expired backups over ``regions`` (plus a newer, unexpired one per source); returns their ids."""
    first, fresh = (seed_images, seed_fresh_images) if job == "ami_purge" else (seed_snapshots, seed_fresh_snapshots)
    clients = {region: fleet.client(moto_endpoint, "ec2", region) for region in regions}
    shares = spread(count, regions)
    with ThreadPoolExecutor(len(regions)) as pool:
        sources = dict(zip(regions, pool.map(lambda r: first(clients[r], r, shares[r]), regions)))
    time.sleep(1.1)
    with ThreadPoolExecutor(len(regions)) as pool:
        list(pool.map(lambda r: fresh(clients[r], r, sources[r][0]), regions))
    return {region: expired for region, (_sources, expired) in sources.items()}


def still_there(moto_endpoint, job, expired):
    left = 0
    for region, ids in expired.items():
        ec2 = fleet.client(moto_endpoint, "ec2", region)
        if job == "ami_purge":
            present = {image["ImageId"] for image in ec2.describe_images(Owners=["self"])["Images"]}
        else:
            present = {snapshot["SnapshotId"] for snapshot in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
        left += len(set(ids) & present)
    return left


def run_tool(job, tool, endpoint, regions, workdir):
    if tool == "seed_style":
        kind = "images" if job == "ami_purge" else "snapshots"
        process = subprocess.run(
            [sys.executable, str(REPO / "bench" / "seed_style_purge.py"), "--endpoint", endpoint, "--regions", *regions]
            + ["--kind", kind],
            env=dict(python_env(), **ansible_run.CREDENTIALS),
            capture_output=True,
            text=True,
            check=False,
        )
        summary = json.loads(process.stdout) if process.stdout.strip() else {"error": process.stderr[-500:]}
        return process.returncode == 0, summary.get("error")
    tasks = [{"name": "purge", "opsvault.aws_backup." + job: {"regions": regions}, "register": "result"}]
    run = ansible_run.run_playbook(ansible_run.aws_play(endpoint, tasks), workdir, endpoint=endpoint, timeout=3600)
    failed = [task for task in run.tasks if task.get("failed")]
    return run.rc == 0 and not failed, (failed[0].get("msg") if failed else None)


def measure(servers, job, tool, count, workdir, regions=None):
    regions = regions or REGIONS
    servers.reset()
    expired = seed(servers.moto, job, count, regions)
    servers.control.reset()
    started, started_at = time.monotonic(), time.time()
    with PeakMemory() as memory:
        succeeded, detail = run_tool(job, tool, servers.proxy, regions, Path(workdir))
    wall = time.monotonic() - started
    stats = servers.control.stats()
    left = still_there(servers.moto, job, expired)
    needed = {}
    for region, ids in expired.items():
        needed[(region, "DeleteSnapshot")] = len(ids)
        if job == "ami_purge":
            needed[(region, "DeregisterImage")] = len(ids)
    floor, _per_bucket = aws_proxy.throttle_floor(needed)
    return {
        "job": job,
        "tool": job if tool == "own_module" else tool,
        "instances": count,
        "regions": len(regions),
        "wall_seconds": round(wall, 2),
        "succeeded": succeeded and left == 0,
        "error": detail if left == 0 else "{0} expired backups left; {1}".format(left, detail),
        "purged": count - left,
        "doubled": 0,
        "requests": stats["total"],
        "requests_per_instance": round(stats["total"] / count, 3),
        "mutating_requests_per_instance": round(stats["mutating"] / count, 3),
        "mutating_ok_per_instance": round(aws_proxy.count(stats, mutating=True, outcome="ok") / count, 3),
        "describe_requests": stats["total"] - stats["mutating"],
        "throttled": stats["outcomes"].get("throttled", 0),
        "by_action": stats["requests"],
        "floor_seconds": round(floor, 2),
        "ratio_to_floor": round(wall / floor, 2) if floor else None,
        "phases": phases(started_at, wall, stats.get("timeline")),
        "peak_memory_mib": memory.report(),
        "timeline": stats.get("timeline"),
    }
