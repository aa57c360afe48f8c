"""The per-host result files (folder, S3 location) and their merge into one organisation-wide report."""

import datetime
import json

import pytest

from ansible_collections.opsvault.aws_backup.plugins.module_utils import coverage_report
from ansible_collections.opsvault.aws_backup.plugins.module_utils import host_results

NOW = datetime.datetime(2026, 11, 23, 6, tzinfo=datetime.timezone.utc)


def coverage_task(ok, total, problems=()):
    return {
        "task": "report",
        "action": coverage_report.COVERAGE_ACTION,
        "failed": False,
        "result": {
            "coverage": {"percent": round(100.0 * ok / total, 1), "ok": ok, "total": total, "regions": {}},
            "counts": {"sources": {"missing": total - ok, "ok": ok}, "backups": {"ok": 2}},
            "problems": list(problems),
            "problems_total": len(problems),
            "msg": "...",
        },
    }


def entry(host, tasks, failed=False):
    account, region = host.split("-", 1)
    return {"host": host, "account_id": account, "region": region, "failed": failed, "tasks": tasks}


def problem(resource, status, kind="instance"):
    return {
        "kind": kind,
        "resource": resource,
        "region": "eu-west-1",
        "status": status,
        "reason": "r",
        "age_seconds": 1,
    }


def test_merge_lists_every_host_failed_first_and_sums_the_coverage():
    denied = {"task": "report", "action": coverage_report.COVERAGE_ACTION, "failed": True, "result": {"msg": "denied"}}
    report = coverage_report.merge(
        [
            entry("111111111111-eu-west-1", [coverage_task(3, 4, [problem("i-1", "missing")])]),
            entry("111111111111-us-east-1", [coverage_task(1, 1)]),
            entry("222222222222-eu-west-1", [denied], failed=True),
        ],
        NOW,
    )
    assert [row["host"] for row in report["hosts"]][0] == "222222222222-eu-west-1"
    assert report["failed_hosts"] == ["222222222222-eu-west-1"]
    assert report["hosts"][0]["message"] == "denied" and report["hosts"][0]["coverage"] is None
    assert (report["coverage"]["ok"], report["coverage"]["total"], report["coverage"]["percent"]) == (4, 5, 80.0)
    assert report["coverage"]["accounts"]["222222222222"] == {
        "ok": 0,
        "total": 0,
        "hosts": 1,
        "failed_hosts": 1,
        "percent": None,
    }
    assert report["counts"]["sources"]["missing"] == 1 and report["counts"]["backups"]["ok"] == 4
    assert [(p["resource"], p["account_id"]) for p in report["problems"]] == [("i-1", "111111111111")]
    markdown = coverage_report.merged_markdown(report)
    assert "| 222222222222-eu-west-1 | 222222222222 | eu-west-1 | denied |" in markdown
    assert 'data-failed-host="222222222222-eu-west-1"' in coverage_report.merged_html(report)


def test_problems_are_sources_first_then_backups_each_worst_first():
    tasks = [
        coverage_task(
            0, 2, [problem("snap-1", "orphan", "snapshot"), problem("i-2", "stale"), problem("i-1", "missing")]
        )
    ]
    report = coverage_report.merge([entry("111111111111-eu-west-1", tasks)], NOW)
    assert [p["resource"] for p in report["problems"]] == ["i-1", "i-2", "snap-1"]


def test_a_folder_is_read_whole_files_only(tmp_path):
    host_results.write_folder(str(tmp_path), [entry("111111111111-eu-west-1", [])])
    (tmp_path / ".111111111111-us-east-1.abc").write_text("{half")  # a file still being written
    [read] = host_results.read_folder(str(tmp_path))
    assert read["host"] == "111111111111-eu-west-1"
    (tmp_path / "other.json").write_text(json.dumps({"not": "ours"}))
    with pytest.raises(ValueError, match="other.json"):
        host_results.read_folder(str(tmp_path))


@pytest.mark.parametrize(
    "url, expected",
    [("s3://b/p", ("b", "p/")), ("s3://b/p/q/", ("b", "p/q/")), ("s3://b", ("b", "")), ("s3://b/", ("b", ""))],
)
def test_s3_locations(url, expected):
    assert host_results.parse_s3_url(url) == expected


def test_an_s3_location_without_a_bucket_is_refused_naming_it():
    with pytest.raises(ValueError, match="'s3:///p/'"):
        host_results.parse_s3_url("s3:///p/")
