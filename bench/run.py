"""make bench: our modules side by side with the tools people use instead, on moto behind an AWS-like proxy.

One moto server and one proxy (50 ms per call, EC2 throttling with the published token buckets) serve
every contender in turn; moto is emptied and the proxy's counts and buckets are reset before each run.
Prints one table and writes bench/results.json.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for path in (REPO / "build" / "collections", REPO):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench import ami_backup  # noqa: E402
from bench import backup_copy  # noqa: E402
from bench import purge  # noqa: E402
from bench import restore  # noqa: E402
from bench.servers import Servers  # noqa: E402
from bench.servers import python_env  # noqa: E402
from bench.timeline import per_second_lines  # noqa: E402
from tests.harness import ansible_run  # noqa: E402

MODULES = REPO / "plugins" / "modules"
S3_BENCH = REPO / "bench" / "s3_mirror" / "run.py"
S3_RESULTS = REPO / "build" / "bench" / "s3_mirror.json"


def progress(row):
    print(
        "  {job:<15} {tool:<16} {instances:>5}  {wall_seconds:>8.1f} s  ok={succeeded}".format(**row),
        flush=True,
    )


def plan_runs(args):
    """Every measurement as ``(job, tool, size)``: the quick ones first, the slow amazon.aws loop last."""
    runs = []
    if "ami_backup" not in args.skip:
        for size in sorted(set(args.sizes) | set(args.loop_sizes)):
            runs += [("ami_backup", tool, size) for tool in ("ami_backup", "seed_style", "boto3_threads")]
    if "purge" not in args.skip:
        for job in purge.JOBS:
            if (MODULES / (job + ".py")).exists():
                runs += [(job, tool, count) for count in sorted(set(args.purge_count)) for tool in purge.TOOLS]
            else:
                print("  {0}: module not in plugins/modules yet, skipped".format(job), flush=True)
    if "ami_backup" not in args.skip:
        runs += [("ami_backup", "amazon_aws_loop", size) for size in sorted(args.loop_sizes)]
    if "backup_copy" not in args.skip:
        for size in sorted(set(args.copy_sizes)):
            runs += [("backup_copy", tool, size) for tool in ("backup_copy", "boto3_threads")]
        runs += [("backup_copy", "ec2_ami_copy_loop", size) for size in sorted(args.copy_loop_sizes)]
    if "restore" not in args.skip:
        runs += [("instance_restore", tool, size) for size in sorted(args.restore_sizes) for tool in restore.TOOLS]
    if args.only:
        runs = [run for run in runs if any(run_name(*run).startswith(pattern) for pattern in args.only)]
    return runs


def run_name(job, tool, size):
    return "{0}:{1}:{2}".format(job, job if tool == "own_module" else tool, size)


def measure(servers, workdir, job, tool, size):
    if job == "ami_backup":
        return ami_backup.measure(servers, tool, size, workdir)
    if job == "backup_copy":
        return backup_copy.measure(servers, tool, size, workdir)
    if job == "instance_restore":
        return restore.measure(servers, tool, size, workdir)
    return purge.measure(servers, job, tool, size, workdir)


def run_s3_bench():
    """bench/s3_mirror/run.py (s3_mirror vs aws s3 sync and s5cmd on its own moto server), when present.

    Returns its results (build/bench/s3_mirror.json) with s3_mirror's time over each peer's per phase.
    """
    if not S3_BENCH.exists():
        return {"skipped": "bench/s3_mirror/run.py does not exist"}
    S3_RESULTS.unlink(missing_ok=True)
    process = subprocess.run(
        [sys.executable, str(S3_BENCH), "--repeat", "3"], cwd=str(REPO), env=python_env(), text=True, check=False
    )
    if process.returncode != 0 or not S3_RESULTS.exists():
        return {"error": "bench/s3_mirror/run.py exited with {0}".format(process.returncode)}
    return with_s3_ratios(json.loads(S3_RESULTS.read_text()))


def s3_times(s3):
    """Seconds per tool and phase: the medians of repeated runs, or the single run's times."""
    return (s3 or {}).get("medians") or (s3 or {}).get("times") or {}


def with_s3_ratios(s3):
    """Add s3_mirror's time over each peer's, per phase (below 1: s3_mirror is faster)."""
    times = s3_times(s3)
    mirror = times.get("s3_mirror", {})
    s3["ratios"] = {
        "s3_mirror / {0}".format(peer): {
            phase: round(mirror[phase] / seconds, 2)
            for phase, seconds in peer_times.items()
            if mirror.get(phase) and seconds
        }
        for peer, peer_times in times.items()
        if peer != "s3_mirror"
    }
    return s3


def lower_median(values, key=None):
    """The middle one of ``values`` (sorted by ``key``); of an even number, the lower of the two."""
    return sorted(values, key=key)[(len(values) - 1) // 2]


def by_key(rows):
    """``{(job, tool, size): row}``; a run measured in several rounds is represented by its median round
    (the lower median by wall time)."""
    rounds = {}
    for row in rows:
        rounds.setdefault((row["job"], row["tool"], row["instances"]), []).append(row)
    return {key: lower_median(same, key=lambda row: row["wall_seconds"]) for key, same in rounds.items()}


def paired_ratios(rows, job, tool, reference, size):
    """``tool``'s wall time over ``reference``'s, round by round (each pair measured one after the other)."""
    walls = {}
    for row in rows:
        if row["job"] == job and row["instances"] == size and row["tool"] in (tool, reference):
            walls.setdefault(row.get("round", 1), {})[row["tool"]] = row["wall_seconds"]
    return [
        round(pair[tool] / pair[reference], 2)
        for _round, pair in sorted(walls.items())
        if tool in pair and reference in pair
    ]


def targets(rows):
    """The issue's targets, each with the measured value and whether it is met."""
    found = by_key(rows)
    checks = []
    for (job, tool, size), loop in sorted(found.items()):
        ours = found.get((job, "ami_backup", size))
        if tool == "amazon_aws_loop" and ours:
            speedup = loop["wall_seconds"] / ours["wall_seconds"]
            checks.append(
                dict(
                    target="ami_backup >= 30x faster than the amazon.aws loop",
                    instances=size,
                    measured=round(speedup, 1),
                    met=speedup >= 30,
                )
            )
    for (job, tool, size), row in sorted(found.items()):
        if tool != job:
            continue
        if row["ratio_to_floor"] is not None and (job != "ami_backup" or size >= 1000):
            limit = 1.3 if job == "backup_copy" else 1.1
            checks.append(
                dict(
                    target="{0} within {1}x of the throttle floor".format(job, limit),
                    instances=size,
                    measured=row["ratio_to_floor"],
                    met=row["ratio_to_floor"] <= limit,
                )
            )
        reference = found.get((job, "boto3_threads", size))
        if job == "ami_backup" and reference and size >= 1000:
            ratios = paired_ratios(rows, job, job, "boto3_threads", size)
            ratio = lower_median(ratios) if ratios else row["wall_seconds"] / reference["wall_seconds"]
            checks.append(
                dict(
                    target="ami_backup no slower than the 16-thread boto3 reference",
                    instances=size,
                    measured=round(ratio, 2),
                    met=ratio <= 1.0,
                    rounds=ratios,
                )
            )
        if job == "ami_backup":
            checks.append(
                dict(
                    target="ami_backup: at most 1 successful mutating call per instance",
                    instances=size,
                    measured=row["mutating_ok_per_instance"],
                    met=row["mutating_ok_per_instance"] <= 1.0,
                )
            )
    return checks


def s3_targets(s3):
    """Issue targets for s3_mirror: cold within 1.1x of the list + GET floor and faster than both peers;
    warm and 1%-changed no slower than s5cmd; correct after the 1%-changed run."""
    ratios = (s3 or {}).get("ratios", {})
    checks = []
    floor = ratios.get("s3_mirror / list+GET floor", {}).get("cold")
    if floor is not None:
        checks.append(dict(target="s3_mirror cold within 1.1x of list + GET floor", measured=floor, met=floor <= 1.1))
    for peer in ("aws s3 sync", "s5cmd"):
        for phase, ratio in ratios.get("s3_mirror / " + peer, {}).items():
            if phase == "cold" or peer == "s5cmd":
                checks.append(
                    dict(
                        target="s3_mirror at least as fast as {0} ({1})".format(peer, phase),
                        measured=ratio,
                        met=ratio <= 1.0,
                    )
                )
    verdict = (s3 or {}).get("correctness", {}).get("s3_mirror", {}).get("1%-changed")
    if verdict is not None:
        stale = verdict.get("missing", 0) + verdict.get("stale", 0) + verdict.get("extra", 0)
        checks.append(
            dict(target="s3_mirror correct after the 1%-changed run (files off)", measured=stale, met=stale == 0)
        )
    return [dict(check, instances="-") for check in checks]


def table(rows, checks, s3):
    lines = [
        "{0:<15} {1:<16} {2:>6} {3:>9} {4:>5} {5:>8} {6:>9} {7:>9} {8:>8} {9:>9} {10:>6}".format(
            "job", "tool", "items", "wall s", "ok", "req/item", "mut/item", "throttled", "floor s", "x floor", "round"
        )
    ]
    for row in rows:
        lines.append(
            "{job:<15} {tool:<16} {instances:>6} {wall_seconds:>9.1f} {ok:>5} {requests_per_instance:>8.2f} "
            "{mutating_requests_per_instance:>9.2f} {throttled:>9} {floor_seconds:>8.1f} {ratio:>9} {round:>6}".format(
                ok="yes" if row["succeeded"] and not row.get("doubled") else "NO",
                ratio="-" if row["ratio_to_floor"] is None else "{0:.2f}".format(row["ratio_to_floor"]),
                round=row.get("round", 1),
                **{key: value for key, value in row.items() if key not in ("ok", "round")},
            )
        )
    lines.append("")
    for check in checks:
        lines.append(
            "{0:<60} {1:>6}: {2:>7}  {3}{4}".format(
                check["target"],
                check["instances"],
                check["measured"],
                "met" if check["met"] else "NOT MET",
                (
                    "  (median; by round: {0})".format(" ".join(map(str, check["rounds"])))
                    if len(check.get("rounds") or []) > 1
                    else ""
                ),
            )
        )
    if s3_times(s3):
        lines.append("")
        lines.append(
            "{0:<15} {1:>9} {2:>9} {3:>11}   (seconds; bench/s3_mirror/run.py)".format(
                "s3 tool", "cold", "warm", "1%-changed"
            )
        )
        for tool, phases in s3_times(s3).items():
            lines.append(
                "{0:<15} {1:>9} {2:>9} {3:>11}".format(
                    tool, *("{0:.2f}".format(phases[p]) if p in phases else "-" for p in ("cold", "warm", "1%-changed"))
                )
            )
        for peer, phases in s3["ratios"].items():
            lines.append("{0:<28} {1}".format(peer, "  ".join("{0} {1}".format(p, r) for p, r in phases.items())))
    elif s3:
        lines.append("")
        lines.append("s3_mirror: " + json.dumps(s3))
    return "\n".join(lines)


def phase_table(rows):
    """Where each run's time went (bench/timeline.py), with the module's peak memory."""
    lines = [
        "{0:<15} {1:<16} {2:>6} {3:>8} {4:>8} {5:>9} {6:>9} {7:>9} {8:>6} {9:>8} {10:>10} {11:>6}".format(
            "job",
            "tool",
            "items",
            "wall s",
            "startup",
            "describe",
            "1st mut@",
            "mutating",
            "tail",
            "floor s",
            "module MiB",
            "round",
        )
    ]
    for row in rows:
        phases = row.get("phases")
        if not phases:
            continue
        memory = row.get("peak_memory_mib") or {}
        module = max((mib for kind, mib in memory.items() if kind.startswith("module:")), default=None)
        lines.append(
            "{job:<15} {tool:<16} {instances:>6} {wall_seconds:>8.1f} {startup:>8.1f} {describe:>9.1f} {first:>9} "
            "{mutating:>9.1f} {tail:>6.1f} {floor_seconds:>8.1f} {module:>10} {round:>6}".format(
                first="-" if phases["first_mutating_at"] is None else "{0:.1f}".format(phases["first_mutating_at"]),
                module="-" if module is None else "{0:.0f}".format(module),
                **dict(row, round=row.get("round", 1), **{k: v for k, v in phases.items() if k != "first_mutating_at"}),
            )
        )
    lines.append(
        "(startup: to the first request; describe: to the first mutating call; mutating: first to last mutating "
        "call; tail: last request to exit; module MiB: peak RSS of the module's process)"
    )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[100, 500, 1000], help="fleet sizes (instances over 4 regions)"
    )
    parser.add_argument(
        "--loop-sizes", type=int, nargs="*", default=[100, 200], help="sizes for the slow amazon.aws loop"
    )
    parser.add_argument(
        "--purge-count", type=int, nargs="+", default=[2000], help="expired images/snapshots for the purges"
    )
    parser.add_argument(
        "--copy-sizes", type=int, nargs="*", default=[300], help="AMIs copied to another region (CopyImage 100/1 per s)"
    )
    parser.add_argument(
        "--restore-sizes", type=int, nargs="*", default=[200], help="sources for instance_restore and its peer"
    )
    parser.add_argument(
        "--copy-loop-sizes", type=int, nargs="*", default=[], help="sizes for the community.aws.ec2_ami_copy loop"
    )
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["ami_backup", "purge", "s3_mirror", "backup_copy", "restore"]
    )
    parser.add_argument("--out", default=str(REPO / "bench" / "results.json"))
    parser.add_argument(
        "--timeline", action="store_true", help="also print our modules' requests per second (from the proxy)"
    )
    parser.add_argument(
        "--only",
        nargs="*",
        help="measure only these runs, JOB:TOOL:SIZE prefixes, e.g. ami_purge ami_backup:seed_style:1000",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every run this many times, round by round; the targets take each run's median round",
    )
    parser.add_argument(
        "--merge",
        help="a results.json of an earlier run with the same settings: its rows that this run does not measure are kept",
    )
    args = parser.parse_args()

    ansible_run.ensure_collection_link()
    proxy_config = {"latency_ms": args.latency_ms, "throttle": True, "bucket_overrides": restore.RESOURCE_BUCKETS}
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "settings": dict(proxy_config, regions=ami_backup.REGIONS, cpu_count=os.cpu_count()),
        "runs": [],
        "targets": [],
        "s3_mirror": None,
    }

    measured_now = {run_name(*run) for run in plan_runs(args)}
    if args.merge:
        earlier = json.loads(Path(args.merge).read_text())
        for row in earlier["runs"]:
            if run_name(row["job"], row["tool"], row["instances"]) not in measured_now:
                results["runs"].append(dict(row, measured=row.get("measured", earlier["date"])))
        if "s3_mirror" in args.skip and earlier.get("s3_mirror"):
            results["s3_mirror"] = (
                with_s3_ratios(earlier["s3_mirror"]) if s3_times(earlier["s3_mirror"]) else earlier["s3_mirror"]
            )

    def save():
        medians = list(by_key(results["runs"]).values())
        results["targets"] = targets(results["runs"]) + restore.targets(medians) + s3_targets(results["s3_mirror"])
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")

    save()
    runs = plan_runs(args)
    with tempfile.TemporaryDirectory(prefix="opsvault-bench-") as workdir:
        with Servers(workdir, proxy_config) as servers:
            print("moto {0}, proxy {1} ({2})".format(servers.moto, servers.proxy, json.dumps(proxy_config)), flush=True)
            for round_number, (job, tool, size) in [
                (number, run) for number in range(1, max(1, args.rounds) + 1) for run in runs
            ]:
                if job == "ami_backup" and tool == "amazon_aws_loop" and "s3_mirror" not in args.skip:
                    results["s3_mirror"] = run_s3_bench()
                    save()
                    args.skip.append("s3_mirror")
                row = dict(measure(servers, workdir, job, tool, size), measured=results["date"], round=round_number)
                results["runs"].append(row)
                progress(row)
                save()
        if "s3_mirror" not in args.skip:
            results["s3_mirror"] = run_s3_bench()
            save()

    print()
    print(table(results["runs"], results["targets"], results["s3_mirror"]))
    print()
    print(phase_table(results["runs"]))
    if args.timeline:
        for row in by_key(results["runs"]).values():
            if row["tool"] == row["job"] and row.get("timeline"):
                print(
                    "\n{job} {instances}: requests per second at the proxy (seconds from the first request)".format(
                        **row
                    )
                )
                print("\n".join(per_second_lines(row["timeline"], every=max(1, int(row["wall_seconds"] // 60)))))
    print("\nwrote " + args.out)


if __name__ == "__main__":
    main()
