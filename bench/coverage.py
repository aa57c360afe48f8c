"""backup_coverage at scale: 10,000 instances and 30,000 snapshots in one region.

moto runs in this process (so the fleet is seeded on its backend directly, in seconds) and the module
runs as its own process, as Ansible runs it (``python backup_coverage.py args.json``, the collection on
PYTHONPATH, without AnsiballZ), so its wall time, CPU time and peak memory (VmHWM) are its own.

moto finds each resource's tags by scanning every tag of the region, so describing 30,000 snapshots
would take hours (4,000 already take minutes). ``fast_tags`` gives moto an index by resource id for
this run: the same answers, found by a dict lookup instead of a scan. moto still answers a describe of
30,000 snapshots slowly (it is one Python process, shared here with the module): ``module_wall_seconds``
includes that wait, ``module_cpu_seconds`` is the module's own work (parsing, classifying, writing).

    .venv/bin/python bench/coverage.py --instances 10000 --snapshots 30000 --out bench/coverage_results.json
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.servers import python_env  # noqa: E402
from tests.harness import fleet  # noqa: E402
from tests.harness import moto_server  # noqa: E402

REGION = "us-east-1"
MODULE = REPO / "plugins" / "modules" / "backup_coverage.py"
MIB = 1024 * 1024
# Runs the module as __main__ and, as it exits, writes its peak resident memory (VmHWM, which exec resets;
# the child's rusage would also count the memory of this process at the fork).
PEAK_LAUNCHER = (
    "import atexit, runpy, sys\n"
    "module, peak, args = sys.argv[1:4]\n"
    "atexit.register(lambda: open(peak, 'w').write("
    "[line for line in open('/proc/self/status') if line.startswith('VmHWM')][0]))\n"
    "sys.argv = [module, args]\n"
    "runpy.run_path(module, run_name='__main__')\n"
)


def fast_tags():
    """Index moto's EC2 tags by resource id (moto 5.2.5 scans all of them for every resource described)."""
    from moto.ec2.models.core import TaggedEC2Resource
    from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE
    from moto.ec2.utils import get_prefix

    def get_tags(self):
        resource_id = getattr(self, "id", None)
        if not resource_id:
            return []
        kind = EC2_PREFIX_TO_RESOURCE.get(get_prefix(resource_id), "")
        return [
            {"resource_id": resource_id, "key": key, "value": value, "resource_type": kind}
            for key, value in self.ec2_backend.tags.get(resource_id, {}).items()
        ]

    TaggedEC2Resource.get_tags = get_tags


def seed(endpoint, instances, snapshots):
    """Tagged instances (no AMIs: each is ``missing``) whose root volumes, also tagged, have the snapshots,
    three per volume of ages 1, 3 and 8 days (the volume is ok or stale by its newest); returns the counts."""
    ec2 = fleet.client(endpoint, "ec2", REGION)
    launched = []
    while len(launched) < instances:
        launched += fleet.launch(ec2, {"Backup": "", "Name": "web"}, count=min(1000, instances - len(launched)))
    backend = fleet.ec2_backend(REGION)
    volumes = [
        mapping.volume_id
        for instance_id in launched
        for mapping in backend.get_instance(instance_id).block_device_mapping.values()
    ]
    now = datetime.datetime.now(datetime.timezone.utc)
    for volume_id in volumes:
        backend.create_tags([volume_id], {"Backup": "Volumes"})
    for number in range(snapshots):
        volume_id = volumes[number % len(volumes)]
        snapshot = backend.create_snapshot(volume_id, "bench")
        backend.create_tags(
            [snapshot.id], {"CreatedBy": "opsvault.aws_backup", "VolumeId": volume_id, "DeleteOn": "2999-01-01"}
        )
        age = (1, 3, 8)[(number // len(volumes)) % 3] if number % 7 else 0.1
        snapshot.start_time = (now - datetime.timedelta(days=age)).replace(tzinfo=None)
    return {"instances": len(launched), "volumes": len(volumes), "snapshots": snapshots}


def run_module(endpoint, workdir, **params):
    """Run the module as its own process; ``(result, wall seconds, peak RSS MiB, stdout bytes)``."""
    args = dict(
        params,
        region=REGION,
        endpoint_url=endpoint,
        access_key="testing",
        secret_key="testing",
        aws_config={"read_timeout": 3600},  # moto takes minutes for one describe of this fleet
        _ansible_check_mode=False,
    )
    args_file = Path(workdir) / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = python_env()
    env.pop("AWS_ENDPOINT_URL", None)
    peak_file = Path(workdir) / "peak"
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-c", PEAK_LAUNCHER, str(MODULE), str(peak_file), str(args_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    stdout, stderr = process.communicate()
    wall = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the module is this process's only child
    peak_kib = int(peak_file.read_text().split()[1]) if peak_file.exists() else None
    try:
        result = json.loads(stdout)
    except ValueError:
        raise RuntimeError("the module printed no JSON:\n{0}\n{1}".format(stdout[-2000:], stderr[-2000:]))
    return result, wall, usage, peak_kib, len(stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=10000)
    parser.add_argument("--snapshots", type=int, default=30000)
    parser.add_argument("--out", default=str(REPO / "bench" / "coverage_results.json"))
    args = parser.parse_args()

    fast_tags()
    server, endpoint = moto_server.start()
    try:
        started = time.monotonic()
        seeded = seed(endpoint, args.instances, args.snapshots)
        seed_seconds = time.monotonic() - started
        with tempfile.TemporaryDirectory() as workdir:
            files = {
                key: str(Path(workdir) / ("coverage." + ext))
                for key, ext in (("json_path", "json"), ("html_path", "html"), ("markdown_path", "md"))
            }
            result, wall, usage, peak_kib, size = run_module(endpoint, workdir, **files)
            file_sizes = {key: os.path.getsize(path) for key, path in files.items()}
    finally:
        server.stop()
    if result.get("failed"):
        raise RuntimeError(result.get("msg"))
    measured = {
        "measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "fleet": seeded,
        "seed_seconds": round(seed_seconds, 1),
        "module_wall_seconds": round(wall, 1),
        "module_cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "module_peak_rss_mib": round(peak_kib / 1024.0, 1),
        "result_bytes": size,
        "result_under_1_mib": size < MIB,
        "report_limit": 50,
        "problems_listed": len(result["problems"]),
        "problems_total": result["problems_total"],
        "counts": result["counts"],
        "coverage_percent": result["coverage"]["percent"],
        "file_bytes": file_sizes,
    }
    Path(args.out).write_text(json.dumps(measured, indent=2) + "\n")
    print(json.dumps(measured, indent=2))


if __name__ == "__main__":
    main()
