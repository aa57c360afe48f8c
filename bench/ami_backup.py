"""AMI backups of a tagged fleet: ami_backup vs an amazon.aws playbook loop vs a seed-style boto3 script."""

import collections
import datetime
import json
import re
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

REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2", "us-west-2"]
INSTANCE_ID = re.compile(r"i-[0-9a-f]{8,17}")
TOOLS = ("ami_backup", "amazon_aws_loop", "seed_style", "boto3_threads")
SCRIPTS = {"seed_style": "seed_style_backup.py", "boto3_threads": "threaded_backup.py"}


def spread(total, regions):
    share, extra = divmod(total, len(regions))
    return {region: share + (1 if index < extra else 0) for index, region in enumerate(regions)}


def seed_fleet(moto_endpoint, instances, regions):
    """Launch ``instances`` running instances tagged Backup, spread over ``regions``, straight into moto,
    one instance per launch as fleets grow (DescribeInstances pages count reservations); one launch at
    a time, as moto's RunInstances is not safe to call concurrently."""
    launched = {}
    for region, count in spread(instances, regions).items():
        ec2 = fleet.client(moto_endpoint, "ec2", region)
        launched[region] = [
            instance_id for _n in range(count) for instance_id in fleet.launch(ec2, {"Backup": "", "Retention": "7"})
        ]
    return launched


def images_per_instance(moto_endpoint, launched):
    """How many AMIs each launched instance has, read from moto (the AMI name carries the instance id)."""
    counts = collections.Counter()
    for region in launched:
        ec2 = fleet.client(moto_endpoint, "ec2", region)
        for image in ec2.describe_images(Owners=["self"])["Images"]:
            match = INSTANCE_ID.search(image.get("Name") or "")
            if match:
                counts[match.group(0)] += 1
    wanted = {instance_id for ids in launched.values() for instance_id in ids}
    return {instance_id: counts.get(instance_id, 0) for instance_id in wanted}


def ami_backup_play(endpoint, regions):
    tasks = [{"name": "back up", "opsvault.aws_backup.ami_backup": {"regions": regions}, "register": "result"}]
    return ansible_run.aws_play(endpoint, tasks)


def amazon_aws_play(endpoint, regions):
    """What a user of amazon.aws writes: ec2_instance_info per region, then ec2_ami in a loop."""
    tasks = [
        {
            "name": "find the instances to back up",
            "amazon.aws.ec2_instance_info": {
                "region": "{{ item }}",
                "filters": {"tag-key": "Backup", "instance-state-name": "running"},
            },
            "loop": regions,
            "register": "found",
        },
        {
            "name": "create an AMI of each",
            "amazon.aws.ec2_ami": {
                "region": "{{ item.placement.availability_zone[:-1] }}",
                "instance_id": "{{ item.instance_id }}",
                "name": "{{ item.instance_id }}-{{ stamp }}",
                "no_reboot": True,
                "wait": False,
                "tags": {"DeleteOn": "{{ delete_on }}", "SourceInstanceId": "{{ item.instance_id }}"},
            },
            "loop": "{{ found.results | map(attribute='instances') | flatten }}",
            "loop_control": {"label": "{{ item.instance_id }}"},
        },
    ]
    return ansible_run.aws_play(endpoint, tasks)


def run_tool(tool, endpoint, regions, workdir):
    """Run one contender against ``endpoint``; returns ``(succeeded, detail)``."""
    if tool in SCRIPTS:
        process = subprocess.run(
            [
                sys.executable,
                str(REPO / "bench" / SCRIPTS[tool]),
                "--endpoint",
                endpoint,
                "--regions",
                *regions,
            ],
            env=dict(python_env(), **ansible_run.CREDENTIALS),
            capture_output=True,
            text=True,
            check=False,
        )
        summary = json.loads(process.stdout or "{}") if process.stdout.strip() else {"error": process.stderr[-500:]}
        return process.returncode == 0, summary.get("error")
    if tool == "ami_backup":
        playbook = ami_backup_play(endpoint, regions)
        extra_vars = None
    else:
        playbook = amazon_aws_play(endpoint, regions)
        today = datetime.datetime.now(datetime.timezone.utc)
        extra_vars = {
            "stamp": today.strftime("%Y%m%dT%H%M%SZ"),
            "delete_on": (today.date() + datetime.timedelta(days=7)).isoformat(),
        }
    run = ansible_run.run_playbook(playbook, workdir, endpoint=endpoint, extra_vars=extra_vars, timeout=3600)
    failed = [task for task in run.tasks if task.get("failed")]
    return run.rc == 0 and not failed, (failed[0].get("msg") if failed else None)


def measure(servers, tool, instances, workdir, regions=None):
    """One timed run of ``tool`` on a fresh fleet of ``instances``; returns a result row."""
    regions = regions or REGIONS
    servers.reset()
    launched = seed_fleet(servers.moto, instances, regions)
    servers.control.reset()
    started, started_at = time.monotonic(), time.time()
    with PeakMemory() as memory:
        succeeded, detail = run_tool(tool, servers.proxy, regions, Path(workdir))
    wall = time.monotonic() - started
    stats = servers.control.stats()
    images = images_per_instance(servers.moto, launched)
    floor, _per_bucket = aws_proxy.throttle_floor(
        {(region, "CreateImage"): len(ids) for region, ids in launched.items()}
    )
    return {
        "job": "ami_backup",
        "tool": tool,
        "instances": instances,
        "regions": len(regions),
        "wall_seconds": round(wall, 2),
        "succeeded": succeeded,
        "error": detail,
        "backed_up": sum(1 for count in images.values() if count >= 1),
        "doubled": sum(1 for count in images.values() if count > 1),
        "requests": stats["total"],
        "requests_per_instance": round(stats["total"] / instances, 3),
        "mutating_requests_per_instance": round(stats["mutating"] / instances, 3),
        "mutating_ok_per_instance": round(aws_proxy.count(stats, mutating=True, outcome="ok") / instances, 3),
        "describe_requests": stats["total"] - stats["mutating"],
        "throttled": stats["outcomes"].get("throttled", 0),
        "by_action": stats["requests"],
        "floor_seconds": round(floor, 2),
        "ratio_to_floor": round(wall / floor, 2) if floor else None,
        "phases": phases(started_at, wall, stats.get("timeline")),
        "peak_memory_mib": memory.report(),
        "timeline": stats.get("timeline"),
    }
