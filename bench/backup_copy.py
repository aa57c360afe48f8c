"""AMI copies to another region: backup_copy vs a 16-thread boto3 reference and the community.aws.ec2_ami_copy loop.

(Named backup_copy.py: a bench/copy.py would shadow the standard library's copy module when bench/run.py
runs as a script, with bench/ first on sys.path.)

The proxy gives CopyImage the token bucket the issue names (100 tokens, refilled at 1 per second, per
destination region), so the floor for N copies is ``(N - 100) / 1`` seconds.
"""

import collections
import json
import subprocess
import sys
import time
from pathlib import Path

from bench.memory import PeakMemory
from bench.servers import REPO
from bench.servers import python_env
from bench.timeline import phases
from tests.harness import ansible_run
from tests.harness import aws_proxy
from tests.harness import fleet

SOURCE = "us-east-1"
DESTINATION = "eu-west-1"
TOOLS = ("backup_copy", "boto3_threads", "ec2_ami_copy_loop")
# CopyImage's bucket as the issue gives it: burst 100, refill 1 per second.
COPY_IMAGE_BUCKET = aws_proxy.Family("copy-image", 100, 1)
DELETE_ON = "2999-01-01"


def seed_images(moto_endpoint, count):
    """``count`` managed AMIs in the source region, straight into moto (10 instances, many AMIs each)."""
    ec2 = fleet.client(moto_endpoint, "ec2", SOURCE)
    instances = fleet.launch(ec2, {"Backup": ""}, count=10)
    tags = {"CreatedBy": "opsvault.aws_backup", "BackupPolicy": "default", "DeleteOn": DELETE_ON}
    for number in range(count):
        instance_id = instances[number % len(instances)]
        ec2.create_image(
            InstanceId=instance_id,
            Name="backup-{0}-{1:05d}".format(instance_id, number),
            TagSpecifications=[
                {"ResourceType": "image", "Tags": fleet.tag_list(dict(tags, SourceInstanceId=instance_id))}
            ],
        )


def copies_per_source(moto_endpoint):
    counts = collections.Counter()
    for image in fleet.client(moto_endpoint, "ec2", DESTINATION).describe_images(Owners=["self"])["Images"]:
        source = fleet.tags_of(image).get("SourceImageId")
        if source:
            counts[source] += 1
    return counts


def backup_copy_play(endpoint):
    tasks = [
        {
            "name": "copy",
            "opsvault.aws_backup.backup_copy": {
                "regions": [SOURCE],
                "destinations": [{"region": DESTINATION}],
                "resource_types": ["image"],
            },
            "register": "result",
        }
    ]
    return ansible_run.aws_play(endpoint, tasks, region=SOURCE)


def loop_play(endpoint):
    """What a user of community.aws writes: list the backups, then ec2_ami_copy in a loop."""
    tasks = [
        {
            "name": "find the backups",
            "amazon.aws.ec2_ami_info": {"owners": ["self"], "filters": {"tag:CreatedBy": "opsvault.aws_backup"}},
            "register": "found",
        },
        {
            "name": "copy each",
            "community.aws.ec2_ami_copy": {
                "source_region": SOURCE,
                "region": DESTINATION,
                "endpoint_url": endpoint,
                "source_image_id": "{{ item.image_id }}",
                "name": "{{ item.name }}",
                "tag_equality": False,
                "tags": {"CreatedBy": "opsvault.aws_backup", "SourceImageId": "{{ item.image_id }}"},
            },
            "loop": "{{ found.images }}",
            "loop_control": {"label": "{{ item.image_id }}"},
        },
    ]
    return ansible_run.aws_play(endpoint, tasks, region=SOURCE)


def run_tool(tool, endpoint, workdir):
    if tool == "boto3_threads":
        process = subprocess.run(
            [
                sys.executable,
                str(REPO / "bench" / "threaded_copy.py"),
                "--endpoint",
                endpoint,
                "--source",
                SOURCE,
                "--destination",
                DESTINATION,
            ],
            env=dict(python_env(), **ansible_run.CREDENTIALS),
            capture_output=True,
            text=True,
            check=False,
        )
        summary = json.loads(process.stdout) if process.stdout.strip() else {"error": process.stderr[-500:]}
        return process.returncode == 0, summary.get("error")
    playbook = backup_copy_play(endpoint) if tool == "backup_copy" else loop_play(endpoint)
    run = ansible_run.run_playbook(playbook, workdir, endpoint=endpoint, timeout=7200)
    failed = [task for task in run.tasks if task.get("failed")]
    return run.rc == 0 and not failed, (str(failed[0].get("msg"))[:500] if failed else None)


def measure(servers, tool, count, workdir):
    """One timed run of ``tool`` copying ``count`` fresh AMIs; returns a result row."""
    servers.reset()
    servers.control.configure(
        bucket_overrides={"CopyImage": [COPY_IMAGE_BUCKET.burst, COPY_IMAGE_BUCKET.refill_per_second]}
    )
    seed_images(servers.moto, count)
    servers.control.reset()
    started, started_at = time.monotonic(), time.time()
    with PeakMemory() as memory:
        succeeded, detail = run_tool(tool, servers.proxy, Path(workdir))
    wall = time.monotonic() - started
    stats = servers.control.stats()
    servers.control.configure(bucket_overrides={})
    counts = copies_per_source(servers.moto)
    floor, _per_bucket = aws_proxy.throttle_floor(
        {(DESTINATION, "CopyImage"): count}, families={"CopyImage": COPY_IMAGE_BUCKET}
    )
    return {
        "job": "backup_copy",
        "tool": tool,
        "instances": count,
        "regions": 1,
        "wall_seconds": round(wall, 2),
        "succeeded": succeeded and len(counts) == count,
        "error": detail,
        "copied": len(counts),
        "doubled": sum(1 for number in counts.values() if number > 1),
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
