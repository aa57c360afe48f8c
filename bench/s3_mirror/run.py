"""s3_mirror side by side with `aws s3 sync`, s5cmd, rclone and a bare list + GET loop, against one moto server.

    .venv/bin/python bench/s3_mirror/run.py [--small 2000] [--multipart 3] [--concurrency 32]
        [--repeat 1] [--list-page-latency-ms 0] [--tools s3_mirror "aws s3 sync" s5cmd rclone "rclone --fast-list"]

Starts its own moto server on 127.0.0.1 (bench/s3_mirror/seeded_moto.py: the harness's moto server
with the bucket's small objects put in by the server process itself, 100,000 in well under a minute),
puts a few multipart objects over HTTP, and times three runs of each tool into its
own directory: cold (empty directory), warm (nothing changed) and 1%-changed (1% of the small
objects rewritten with the same size). After every run it compares the directory with the bucket
byte for byte, which shows `aws s3 sync` missing same-size changes. The peer tools come from
bench/requirements.txt, installed into build/bench-venv on first use (a peer already on PATH is
used when build/bench-venv is absent); rclone is Debian's package (``apt-get install rclone``), run as
``rclone sync`` with ``--checkers`` and ``--transfers`` at the same concurrency, and again with
``--fast-list``. With ``--list-page-latency-ms``, every tool goes through the test proxy
(tests/harness/aws_proxy.py), which adds that latency to each listing page, as S3 takes tens of
milliseconds per page of 1,000 keys. Results go to build/bench/s3_mirror.json.
"""

import argparse
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH_VENV = REPO / "build" / "bench-venv"
RESULTS = REPO / "build" / "bench" / "s3_mirror.json"
PROJECT_PYTHON = REPO / ".venv" / "bin" / "python"
BUCKET = "bench-mirror"
MIB = 1024 * 1024
MIRROR_OWN_FILES = (".s3_mirror_index.jsonl", ".s3_mirror.lock", ".s3_mirror_last_run.json")
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


def project_env(extra=None):
    env = dict(os.environ)
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        env.pop(key, None)
    env.update(CREDENTIALS)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "build" / "collections")])
    env.update(extra or {})
    return env


def ensure_tools(needed):
    """Paths of the peer tools in ``needed``: build/bench-venv's, else PATH's, else installed into build/bench-venv."""
    names = {"aws s3 sync": "aws", "s5cmd": "s5cmd"}
    found = {}
    for tool in needed:
        if tool in names:
            venv_tool = BENCH_VENV / "bin" / names[tool]
            found[tool] = str(venv_tool) if venv_tool.exists() else shutil.which(names[tool])
    if None in found.values():
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
        subprocess.run(
            [str(BENCH_VENV / "bin" / "pip"), "install", "--quiet", "-r", str(REPO / "bench" / "requirements.txt")],
            check=True,
        )
        found = {tool: str(BENCH_VENV / "bin" / names[tool]) for tool in found}
    return found.get("aws s3 sync"), found.get("s5cmd")


def ensure_collection_link():
    link = REPO / "build" / "collections" / "ansible_collections" / "opsvault" / "aws_backup"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO)


class Proxy:
    """tests/harness/aws_proxy.py in front of moto, adding ``list_page_latency_ms`` to each listing page."""

    def __init__(self, workdir, upstream, list_page_latency_ms):
        self.port_file = Path(workdir) / "proxy.port"
        self.upstream = upstream
        self.config = json.dumps({"list_page_latency_ms": list_page_latency_ms})
        self.process = None
        self.endpoint = None

    def __enter__(self):
        command = [str(PROJECT_PYTHON), "-m", "tests.harness.aws_proxy", "--upstream", self.upstream]
        self.process = subprocess.Popen(
            command + ["--port-file", str(self.port_file), "--config", self.config],
            cwd=str(REPO),
            env=project_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not (self.port_file.exists() and self.port_file.read_text().strip()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("proxy did not start")
            time.sleep(0.1)
        self.endpoint = "http://127.0.0.1:{0}".format(self.port_file.read_text().strip())
        return self

    def __exit__(self, *exc):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class MotoServer:
    """bench/s3_mirror/seeded_moto.py: moto with the bucket's small objects put in before it listens."""

    def __init__(self, workdir, small, small_size, seed):
        self.port_file = Path(workdir) / "moto.port"
        self.expected_file = Path(workdir) / "expected.json"
        self.seeding = ["--bucket", BUCKET, "--small", str(small), "--small-size", str(small_size), "--seed", str(seed)]
        self.small = small
        self.process = None
        self.endpoint = None
        self.expected = None

    def __enter__(self):
        command = [str(PROJECT_PYTHON), str(REPO / "bench" / "s3_mirror" / "seeded_moto.py")]
        self.process = subprocess.Popen(
            command + ["--port-file", str(self.port_file), "--expected", str(self.expected_file)] + self.seeding,
            cwd=str(REPO),
            env=project_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60 + self.small / 1000
        while not self.port_file.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("moto server did not start")
            time.sleep(0.1)
        self.endpoint = "http://127.0.0.1:{0}".format(self.port_file.read_text().strip())
        self.expected = json.loads(self.expected_file.read_text())
        return self

    def __exit__(self, *exc):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def s3_client(endpoint, max_pool=32):
    import boto3
    import botocore.config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=botocore.config.Config(max_pool_connections=max_pool),
    )


def seed_multipart(endpoint, expected, multipart, multipart_size, rng):
    """Put the multipart objects (the small ones are in the server already); adds them to ``expected``."""
    s3 = s3_client(endpoint)
    for number in range(multipart):
        key = "videos/clip-{0}.mp4".format(number)
        body = rng.randbytes(multipart_size)
        upload = s3.create_multipart_upload(Bucket=BUCKET, Key=key)
        parts = []
        for part_number, offset in enumerate(range(0, len(body), 8 * MIB), start=1):
            response = s3.upload_part(
                Bucket=BUCKET,
                Key=key,
                UploadId=upload["UploadId"],
                PartNumber=part_number,
                Body=body[offset : offset + 8 * MIB],
            )
            parts.append({"ETag": response["ETag"], "PartNumber": part_number})
        s3.complete_multipart_upload(
            Bucket=BUCKET, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
        )
        expected[key] = hashlib.md5(body).hexdigest()


def change_same_size(endpoint, expected, share, rng):
    """Rewrite ``share`` of the small objects with new bytes of the same size; returns the keys."""
    s3 = s3_client(endpoint)
    small = sorted(key for key in expected if key.startswith("photos/"))
    changed = rng.sample(small, max(1, int(len(small) * share)))
    with ThreadPoolExecutor(16) as pool:
        sizes = list(pool.map(lambda key: s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"], changed))
        bodies = {key: rng.randbytes(size) for key, size in zip(changed, sizes)}
        list(pool.map(lambda key: s3.put_object(Bucket=BUCKET, Key=key, Body=bodies[key]), changed))
    expected.update((key, hashlib.md5(body).hexdigest()) for key, body in bodies.items())
    return changed


def compare(dest, expected):
    """``(missing, stale, extra)`` counts of dest against the bucket."""
    found = {}
    for root, directories, names in os.walk(dest):
        directories[:] = [name for name in directories if not name.startswith(".s3_mirror")]
        for name in names:
            relative = os.path.relpath(os.path.join(root, name), dest)
            if relative in MIRROR_OWN_FILES:
                continue
            with open(os.path.join(root, name), "rb") as handle:
                found[relative] = hashlib.file_digest(handle, "md5").hexdigest()
    missing = sum(1 for key in expected if key not in found)
    stale = sum(1 for key, digest in expected.items() if key in found and found[key] != digest)
    extra = sum(1 for key in found if key not in expected)
    return missing, stale, extra


def floor_main(argv):
    """A bare ListObjectsV2 + N-thread GetObject loop writing files: the floor for a cold mirror."""
    endpoint, dest, workers = argv[0], argv[1], int(argv[2])
    s3 = s3_client(endpoint, max_pool=workers)

    def fetch(key):
        path = os.path.join(dest, key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"]
        with open(path, "wb") as handle:
            for chunk in body.iter_chunks(MIB):
                handle.write(chunk)

    with ThreadPoolExecutor(workers) as pool:
        futures = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            futures.extend(pool.submit(fetch, item["Key"]) for item in page.get("Contents", []))
        for future in futures:
            future.result()


class Tools:
    def __init__(self, endpoint, workdir, concurrency, tools):
        self.endpoint = endpoint
        self.workdir = Path(workdir)
        self.concurrency = concurrency
        self.aws, self.s5cmd = ensure_tools(tools)
        aws_config = self.workdir / "aws-config"
        aws_config.write_text(
            "[default]\nregion = us-east-1\ns3 =\n  max_concurrent_requests = {0}\n".format(concurrency)
        )
        self.aws_env = project_env({"AWS_CONFIG_FILE": str(aws_config)})
        self.rclone = shutil.which("rclone") if any(tool.startswith("rclone") for tool in tools) else None
        if any(tool.startswith("rclone") for tool in tools) and not self.rclone:
            raise RuntimeError("rclone is not installed: apt-get install rclone")
        remote = {
            "TYPE": "s3",
            "PROVIDER": "Other",
            "ENDPOINT": endpoint,
            "ACCESS_KEY_ID": CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "SECRET_ACCESS_KEY": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            "REGION": "us-east-1",
            "FORCE_PATH_STYLE": "true",
        }
        self.rclone_env = project_env({"RCLONE_CONFIG_BENCH_" + name: value for name, value in remote.items()})
        # rclone refuses a CA bundle with its plain-HTTP transport; the endpoint is http://127.0.0.1.
        self.rclone_env.pop("AWS_CA_BUNDLE", None)
        self.ansible_env = project_env(
            {
                "AWS_ENDPOINT_URL": endpoint,
                "ANSIBLE_COLLECTIONS_PATH": str(REPO / "build" / "collections"),
                "ANSIBLE_LOCALHOST_WARNING": "False",
                "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
            }
        )

    def command(self, tool, dest):
        if tool == "s3_mirror":
            extra_vars = {
                "s3_mirror_bucket": BUCKET,
                "s3_mirror_dest": dest,
                "s3_mirror_max_concurrency": self.concurrency,
            }
            return [
                str(REPO / ".venv" / "bin" / "ansible-playbook"),
                "opsvault.aws_backup.s3_mirror",
                "-e",
                json.dumps(extra_vars),
            ], self.ansible_env
        if tool == "aws s3 sync":
            return [
                self.aws,
                "--endpoint-url",
                self.endpoint,
                "s3",
                "sync",
                "--only-show-errors",
                "s3://" + BUCKET,
                dest,
            ], self.aws_env
        if tool == "s5cmd":
            command = [self.s5cmd, "--endpoint-url", self.endpoint, "--numworkers", str(self.concurrency), "sync"]
            return command + ["s3://{0}/*".format(BUCKET), dest + "/"], self.aws_env
        if tool in ("rclone", "rclone --fast-list"):
            concurrency = str(self.concurrency)
            command = [
                self.rclone,
                "sync",
                "bench:" + BUCKET,
                dest,
                "--checkers",
                concurrency,
                "--transfers",
                concurrency,
            ]
            return command + (["--fast-list"] if tool.endswith("--fast-list") else []), self.rclone_env
        if tool == "list+GET floor":
            return [str(PROJECT_PYTHON), __file__, "floor", self.endpoint, dest, str(self.concurrency)], project_env()
        raise ValueError(tool)

    def run(self, tool, dest):
        command, env = self.command(tool, dest)
        started = time.monotonic()
        process = subprocess.run(command, cwd=str(self.workdir), env=env, capture_output=True, text=True, check=False)
        elapsed = time.monotonic() - started
        if process.returncode != 0:
            raise RuntimeError(
                "{0} failed ({1}):\n{2}\n{3}".format(
                    tool, process.returncode, process.stdout[-3000:], process.stderr[-3000:]
                )
            )
        return elapsed

    def killed_and_rerun(self, dest, expected, share, control):
        """A first s3_mirror killed (its whole process tree) once ``share`` of the objects are on disk, then
        rerun: the rerun's GetObject requests counted at the proxy, against what was not complete."""
        sys.path.insert(0, str(REPO))
        from tests.harness import aws_proxy
        from tests.harness import s3 as s3h

        command, env = self.command("s3_mirror", dest)
        process = subprocess.Popen(
            command,
            cwd=str(self.workdir),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        target = int(len(expected) * share)
        while sum(len(names) for _root, _dirs, names in os.walk(dest)) < target + 3:
            if process.poll() is not None:
                raise RuntimeError("s3_mirror ended before it was killed")
            time.sleep(0.2)
        holders = s3h.processes_holding(os.path.join(dest, ".s3_mirror.lock"))
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        for pid in holders:
            os.kill(pid, signal.SIGKILL)
        while any(s3h.is_running(pid) for pid in holders):
            time.sleep(0.05)
        on_disk = set()
        for root, directories, names in os.walk(dest):
            directories[:] = [name for name in directories if not name.startswith(".s3_mirror")]
            on_disk.update(os.path.relpath(os.path.join(root, name), dest) for name in names)
        remaining = [key for key in expected if key not in on_disk]
        control.reset()
        elapsed = self.run("s3_mirror", dest)
        gets = aws_proxy.count(control.stats(), action="GetObject")
        return dict(
            objects=len(expected),
            complete_when_killed=len(expected) - len(remaining),
            remaining=len(remaining),
            rerun_gets=gets,
            rerun_seconds=round(elapsed, 2),
            correct=compare(dest, expected) == (0, 0, 0),
        )

    def ansible_alone(self):
        """ansible-playbook itself: one play on localhost with one debug task, no AWS module."""
        playbook = self.workdir / "noop.yml"
        playbook.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug: {}\n")
        command = [str(REPO / ".venv" / "bin" / "ansible-playbook"), str(playbook)]
        started = time.monotonic()
        subprocess.run(command, cwd=str(self.workdir), env=self.ansible_env, capture_output=True, check=True)
        return time.monotonic() - started

    def ansible_overhead(self):
        """ansible-playbook + module start-up: s3_mirror on an empty prefix."""
        dest = str(self.workdir / "overhead")
        extra_vars = {"s3_mirror_bucket": BUCKET, "s3_mirror_dest": dest, "s3_mirror_prefix": "no-such-prefix/"}
        command = [
            str(REPO / ".venv" / "bin" / "ansible-playbook"),
            "opsvault.aws_backup.s3_mirror",
            "-e",
            json.dumps(extra_vars),
        ]
        started = time.monotonic()
        subprocess.run(command, cwd=str(self.workdir), env=self.ansible_env, capture_output=True, check=True)
        return time.monotonic() - started


TOOLS = ["s3_mirror", "aws s3 sync", "s5cmd", "rclone", "rclone --fast-list"]
FLOOR = "list+GET floor"


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "floor":
        return floor_main(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=2000, help="small objects (default 2000)")
    parser.add_argument("--small-size", type=int, default=8192, help="bytes per small object")
    parser.add_argument("--multipart", type=int, default=3, help="multipart objects (default 3)")
    parser.add_argument("--multipart-size", type=int, default=24 * MIB, help="bytes per multipart object")
    parser.add_argument("--changed", type=float, default=0.01, help="share of small objects changed (default 0.01)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight for every tool")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=1, help="rounds of cold/warm/changed; medians are reported")
    parser.add_argument("--tools", nargs="+", default=TOOLS, choices=TOOLS, help="tools to time (default: all)")
    parser.add_argument(
        "--killed-at",
        type=float,
        default=0.0,
        help="also kill a first s3_mirror once this share of the objects is on disk, and count the rerun's GETs",
    )
    parser.add_argument(
        "--list-page-latency-ms", type=float, default=0.0, help="latency added to each listing page, through the proxy"
    )
    args = parser.parse_args()
    tools_timed = [tool for tool in TOOLS if tool in args.tools]
    ensure_collection_link()
    rng = random.Random(args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="bench-s3-mirror-"))
    samples = {tool: {"cold": [], "warm": [], "1%-changed": []} for tool in tools_timed + [FLOOR]}
    correctness = {tool: {} for tool in tools_timed + [FLOOR]}
    overheads, alone = [], []
    killed = None
    try:
        with contextlib.ExitStack() as servers:
            print("seeding {0} x {1} B into moto".format(args.small, args.small_size), flush=True)
            server = servers.enter_context(MotoServer(workdir, args.small, args.small_size, args.seed))
            endpoint = server.endpoint
            if args.list_page_latency_ms or args.killed_at:
                endpoint = servers.enter_context(Proxy(workdir, server.endpoint, args.list_page_latency_ms)).endpoint
            tools = Tools(endpoint, workdir, args.concurrency, tools_timed)
            print(
                "moto at {0}; putting {1} x {2} MiB multipart".format(
                    server.endpoint, args.multipart, args.multipart_size // MIB
                ),
                flush=True,
            )
            expected = server.expected
            seed_multipart(server.endpoint, expected, args.multipart, args.multipart_size, rng)
            for round_number in range(1, args.repeat + 1):
                overheads.append(tools.ansible_overhead())
                alone.append(tools.ansible_alone())
                phases = [("cold", tools_timed + [FLOOR]), ("warm", tools_timed), ("1%-changed", tools_timed)]
                for phase, phase_tools in phases:
                    if phase == "1%-changed":
                        changed = change_same_size(server.endpoint, expected, args.changed, rng)
                        print("rewrote {0} objects with the same size".format(len(changed)), flush=True)
                    for tool in phase_tools:
                        dest = str(workdir / "round{0}".format(round_number) / tool.replace(" ", "_").replace("+", "_"))
                        elapsed = tools.run(tool, dest)
                        samples[tool][phase].append(elapsed)
                        result = compare(dest, expected)
                        if result != (0, 0, 0) or phase not in correctness[tool]:
                            correctness[tool][phase] = result
                        print(
                            "round {0} {1:>10} {2:<15} {3:7.2f} s  missing {4} stale {5} extra {6}".format(
                                round_number, phase, tool, elapsed, *result
                            ),
                            flush=True,
                        )
                shutil.rmtree(workdir / "round{0}".format(round_number), ignore_errors=True)
            if args.killed_at and "s3_mirror" in tools_timed:
                sys.path.insert(0, str(REPO))
                from tests.harness.aws_proxy import ProxyControl

                killed = tools.killed_and_rerun(
                    str(workdir / "killed"), expected, args.killed_at, ProxyControl(endpoint)
                )
                print("killed at {0:.0%} and rerun: {1}".format(args.killed_at, killed), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    times = {
        tool: {phase: statistics.median(values) for phase, values in phases.items() if values}
        for tool, phases in samples.items()
    }
    overhead = statistics.median(overheads)
    print()
    print("medians of {0} round(s); load average now {1:.1f}".format(args.repeat, os.getloadavg()[0]))
    print("ansible-playbook alone (one debug task): {0:.2f} s".format(statistics.median(alone)))
    print("ansible-playbook + module start-up (s3_mirror on an empty prefix): {0:.2f} s".format(overhead))
    print("{0:<15} {1:>9} {2:>9} {3:>11}   correct after 1%-changed".format("tool", "cold s", "warm s", "1%-chg s"))
    for tool in tools_timed:
        verdict = correctness[tool]["1%-changed"]
        print(
            "{0:<15} {1:9.2f} {2:9.2f} {3:11.2f}   {4}".format(
                tool,
                times[tool]["cold"],
                times[tool]["warm"],
                times[tool]["1%-changed"],
                "yes" if verdict == (0, 0, 0) else "NO (missing {0}, stale {1}, extra {2})".format(*verdict),
            )
        )
    print("{0:<15} {1:9.2f}".format(FLOOR, times[FLOOR]["cold"]))
    mirror = times.get("s3_mirror")
    peers = [tool for tool in tools_timed if tool != "s3_mirror"]
    if mirror:
        net = {phase: max(0.0, value - overhead) for phase, value in mirror.items()}
        print()
        print("ratios (s3_mirror time / other time; below 1 means s3_mirror is faster):")
        for heading, ours in ((None, mirror), ("the same without ansible-playbook + module start-up:", net)):
            if heading:
                print(heading)
            print(
                "  cold vs list+GET floor: {0:.2f}{1}".format(
                    ours["cold"] / times[FLOOR]["cold"], "  (target <= 1.1)" if heading is None else ""
                )
            )
            for phase in ("cold", "warm", "1%-changed") if peers else ():
                print(
                    "  {0:<10} {1}".format(
                        phase,
                        "   ".join("vs {0}: {1:.2f}".format(peer, ours[phase] / times[peer][phase]) for peer in peers),
                    )
                )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "args": vars(args),
                "ansible_overhead": overheads,
                "ansible_alone": alone,
                "samples": samples,
                "medians": times,
                "killed_and_rerun": killed,
                "correctness": {
                    tool: {phase: dict(zip(("missing", "stale", "extra"), value)) for phase, value in phases.items()}
                    for tool, phases in correctness.items()
                },
            },
            indent=2,
        )
    )
    print("\nresults in {0}".format(RESULTS))


if __name__ == "__main__":
    main()
