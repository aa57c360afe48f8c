"""docs/awx.md's AWX schedules match the backup_host role's cron defaults."""

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


WEEKDAYS = {"SU": 0, "MO": 1, "TU": 2, "WE": 3, "TH": 4, "FR": 5, "SA": 6}


def cron_from_rrule(rrule):
    start = re.match(r"DTSTART:\d{8}T(\d\d)(\d\d)00Z RRULE:FREQ=(DAILY;INTERVAL=1|WEEKLY;BYDAY=(\w\w))$", rrule)
    assert start, rrule
    weekday = "*" if start.group(4) is None else WEEKDAYS[start.group(4)]
    return "{0} {1} * * {2}".format(int(start.group(2)), int(start.group(1)), weekday)


def test_awx_schedules_match_the_cron_defaults():
    defaults = yaml.safe_load((REPO / "roles/backup_host/defaults/main.yml").read_text())
    cron = {job["playbook"].rsplit(".", 1)[1]: job["schedule"] for job in defaults["backup_host_jobs"]}
    cron["s3_mirror"] = defaults["backup_host_s3_mirror_schedule"]
    names = {
        "AMI backup": "ami_backup",
        "AMI purge": "ami_purge",
        "EBS snapshots": "ebs_snapshot",
        "Snapshot purge": "snapshot_purge",
        "Restore drill (weekly)": "restore_drill",
        "Coverage report": "coverage_report",
        "S3 mirror (on the backup host)": "s3_mirror",
    }
    rows = re.findall(r"^\| ([^|]+) \| `([^`]+)` \| `([^`]+)` \|$", (REPO / "docs/awx.md").read_text(), re.M)
    documented = {names[title.strip()]: (schedule, rrule) for title, schedule, rrule in rows if title.strip() in names}
    assert set(documented) == set(cron)
    for job, (schedule, rrule) in documented.items():
        assert schedule == cron[job], job
        assert cron_from_rrule(rrule) == cron[job], job
