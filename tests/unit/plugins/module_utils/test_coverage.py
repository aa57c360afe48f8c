"""The coverage classification (module_utils/coverage.py) and its report (coverage_report.py), from plain data."""

import datetime

import pytest

from ansible_collections.opsvault.aws_backup.plugins.module_utils import coverage
from ansible_collections.opsvault.aws_backup.plugins.module_utils import coverage_report
from ansible_collections.opsvault.aws_backup.plugins.module_utils import s3_index
from ansible_collections.opsvault.aws_backup.plugins.modules import backup_coverage
from tests.harness.module_options import options_of

NOW = datetime.datetime(2026, 11, 23, 6, 0, tzinfo=datetime.timezone.utc)
ACCOUNT = "123456789012"
MANAGED = {"CreatedBy": "opsvault.aws_backup"}


def tags(**values):
    return [{"Key": key, "Value": value} for key, value in values.items()]


def options(**params):
    return options_of(backup_coverage, **params)


def instance(instance_id, **tag_values):
    return {"InstanceId": instance_id, "Tags": tags(**tag_values)}


def volume(volume_id, **tag_values):
    return {"VolumeId": volume_id, "Tags": tags(**tag_values)}


def image(image_id, source, hours_ago, state="available", snapshot_id=None, owner=ACCOUNT, **tag_values):
    created = (NOW - datetime.timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    tag_values = dict(dict(MANAGED, SourceInstanceId=source, DeleteOn="2999-01-01"), **tag_values)
    return {
        "ImageId": image_id,
        "State": state,
        "CreationDate": created,
        "OwnerId": owner,
        "Tags": tags(**tag_values),
        "BlockDeviceMappings": [{"Ebs": {"SnapshotId": snapshot_id}}] if snapshot_id else [],
    }


def snapshot(snapshot_id, volume_id, hours_ago, state="completed", **tag_values):
    return {
        "SnapshotId": snapshot_id,
        "VolumeId": volume_id,
        "State": state,
        "StartTime": NOW - datetime.timedelta(hours=hours_ago),
        "OwnerId": ACCOUNT,
        "Tags": tags(**tag_values),
    }


def classify(instances=(), volumes=(), images=(), snapshots=(), public=(), **params):
    described = dict(
        instances=list(instances),
        volumes=list(volumes),
        images=list(images),
        snapshots=list(snapshots),
        public_snapshot_ids=list(public),
    )
    return coverage.classify_region("eu-west-1", described, options(**params), NOW, ACCOUNT)


def statuses(found):
    return {item["resource"]: item["status"] for item in found["sources"] + found["backups"]}


@pytest.mark.parametrize(
    "tag_values, maker",
    [
        (MANAGED, ("opsvault.aws_backup", None)),
        ({"aws:dlm:lifecycle-policy-id": "policy-1"}, ("dlm", "policy-1")),
        (
            {"aws:backup:source-resource": "arn:aws:ec2:eu-west-1:1:volume/vol-1"},
            ("aws_backup", "arn:aws:ec2:eu-west-1:1:volume/vol-1"),
        ),
        ({"Name": "by hand"}, ("other", None)),
    ],
)
def test_the_maker_of_a_backup_is_read_from_its_tags(tag_values, maker):
    assert coverage.maker_of(tag_values) == maker


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2026-11-20T03:00:00Z:passed", datetime.datetime(2026, 11, 20, 3, 0, tzinfo=datetime.timezone.utc)),
        ("2026-11-20:passed", datetime.datetime(2026, 11, 20, tzinfo=datetime.timezone.utc)),
        ("2026-11-20T03:00:00Z:failed", None),
        ("yesterday:passed", None),
        ("", None),
    ],
)
def test_a_restore_test_counts_only_when_it_passed_at_a_readable_time(value, expected):
    assert coverage.restore_test_passed_at({"LastRestoreTest": value}) == expected


def test_each_source_status_and_its_precedence():
    found = classify(
        instances=[instance("i-%d" % n, Backup="") for n in range(1, 8)] + [instance("i-free")],
        images=[
            image("ami-ok", "i-1", 2),
            image("ami-old", "i-2", 30),
            image("ami-failed-new", "i-3", 1, state="failed"),
            image("ami-failed-old", "i-3", 2),  # a newer failure wins over a good older backup
            image("ami-pending", "i-4", 8, state="pending"),
            image("ami-pending-young", "i-5", 1, state="pending"),
            image("ami-before", "i-5", 3),  # pending within the limit, the last success within the RPO: ok
            image("ami-first", "i-6", 1, state="pending"),  # nothing successful yet: stale
        ],
    )
    assert {item["resource"]: item["status"] for item in found["sources"]} == {
        "i-1": "ok",
        "i-2": "stale",
        "i-3": "last_failed",
        "i-4": "pending_too_long",
        "i-5": "ok",
        "i-6": "stale",
        "i-7": "missing",
    }
    by_id = {item["resource"]: item for item in found["sources"]}
    assert by_id["i-6"]["reason"] == "no successful backup yet; ami-first is pending"
    assert by_id["i-2"]["reason"] == "the newest successful backup, ami-old, is 1 day old (RPO 1 day)"
    assert by_id["i-4"]["reason"].endswith("has been pending for 8 hours (pending_limit 6 hours)")


def test_the_backup_rpo_tag_overrides_the_rpo_and_a_bad_one_warns_naming_the_source():
    found = classify(
        instances=[
            instance("i-tight", Backup="", BackupRPO="1h"),
            instance("i-loose", Backup="", BackupRPO="3d"),
            instance("i-bad", Backup="", BackupRPO="soon"),
        ],
        images=[image("ami-1", "i-tight", 2), image("ami-2", "i-loose", 40), image("ami-3", "i-bad", 2)],
    )
    assert {item["resource"]: item["status"] for item in found["sources"]} == {
        "i-tight": "stale",
        "i-loose": "ok",
        "i-bad": "ok",
    }
    [warning] = found["warnings"]
    assert warning.startswith("instance i-bad in eu-west-1: BackupRPO tag ignored, BackupRPO 'soon' is not an age")


def test_restore_tests_are_required_only_when_asked_and_found_on_the_source_or_a_backup():
    instances = [instance("i-tagged", Backup="", LastRestoreTest="2026-11-22:passed"), instance("i-backup", Backup="")]
    instances.append(instance("i-old", Backup=""))
    images = [
        image("ami-1", "i-tagged", 1),
        image("ami-2", "i-backup", 1, LastRestoreTest="2026-11-21T00:00:00Z:passed"),
        image("ami-3", "i-old", 1, LastRestoreTest="2026-09-01:passed"),
    ]
    assert set(statuses(classify(instances=instances, images=images)).values()) == {"ok"}
    found = classify(instances=instances, images=images, require_restore_test=True)
    assert {item["resource"]: item["status"] for item in found["sources"]} == {
        "i-tagged": "ok",
        "i-backup": "ok",
        "i-old": "not_restore_tested",
    }


def test_each_backup_status_with_its_precedence():
    found = classify(
        instances=[instance("i-1", Backup="")],
        volumes=[volume("vol-1", Backup="")],
        images=[
            image("ami-new", "i-1", 1),
            image("ami-expired", "i-1", 100, DeleteOn="2026-11-01"),
            dict(image("ami-public-expired", "i-1", 120, DeleteOn="2026-11-01"), Public=True),
            image("ami-orphan", "i-gone", 5),
            image("ami-orphan-expired", "i-gone", 50, DeleteOn="2026-11-01"),
        ],
        snapshots=[
            snapshot("snap-ok", "vol-1", 1, **dict(MANAGED, VolumeId="vol-1", DeleteOn="2999-01-01")),
            snapshot("snap-dlm", "vol-1", 2, **{"aws:dlm:lifecycle-policy-id": "policy-1"}),
            snapshot("snap-other-gone", "vol-gone", 2),
            snapshot("snap-copy", "vol-ffffffff", 2),
            snapshot("snap-public", "vol-1", 3),
        ],
        public=["snap-public"],
    )
    assert {item["resource"]: item["status"] for item in found["backups"]} == {
        "ami-new": "ok",
        "ami-expired": "expired_not_purged",
        "ami-public-expired": "shared_public",
        "ami-orphan": "orphan",  # kept by keep_min
        "ami-orphan-expired": "expired_not_purged",  # expiry comes before the orphan
        "snap-ok": "ok",
        "snap-dlm": "unmanaged",
        "snap-other-gone": "orphan",
        "snap-copy": "unmanaged",  # a copy has no source to be gone
        "snap-public": "shared_public",
    }
    by_id = {item["resource"]: item for item in found["backups"]}
    assert by_id["ami-orphan"]["purge"] is False
    assert by_id["ami-orphan"]["reason"] == (
        "its source i-gone is gone; the purge keeps it: one of the newest 1 ready backup(s) of i-gone (keep_min)"
    )
    assert by_id["snap-other-gone"]["purge"] is None and by_id["snap-dlm"]["maker_detail"] == "policy-1"


def test_an_amis_snapshots_belong_to_it_but_cover_the_volume_they_were_taken_of():
    found = classify(
        instances=[instance("i-1", Backup="")],
        volumes=[volume("vol-root", Backup="")],
        images=[image("ami-1", "i-1", 1, snapshot_id="snap-root")],
        snapshots=[snapshot("snap-root", "vol-root", 1, **dict(MANAGED, SourceInstanceId="i-1"))],
    )
    assert statuses(found) == {"i-1": "ok", "vol-root": "ok", "ami-1": "ok"}


def test_other_accounts_backups_are_left_out_and_scope_all_reports_untagged_sources():
    images = [image("ami-theirs", "i-1", 1, owner="999999999999")]
    found = classify(instances=[instance("i-1")], images=images)
    assert statuses(found) == {}
    found = classify(instances=[instance("i-1")], volumes=[volume("vol-1")], images=images, scope="all")
    assert statuses(found) == {"i-1": "missing", "vol-1": "missing"}


def test_the_report_is_worst_first_with_coverage_per_region_and_policy():
    found = classify(
        instances=[instance("i-1", Backup="Daily"), instance("i-2", Backup="Daily"), instance("i-3", Backup="Weekly")],
        images=[image("ami-1", "i-1", 1), image("ami-3", "i-3", 50), image("ami-3b", "i-3", 30)],
    )
    report = coverage_report.build(found["sources"], found["backups"], ["eu-west-1"], ACCOUNT, NOW, {})
    assert [(item["resource"], item["status"]) for item in coverage_report.problems(report)] == [
        ("i-2", "missing"),
        ("i-3", "stale"),
    ]
    assert report["coverage"]["percent"] == 33.3
    assert report["coverage"]["policies"] == {
        "Weekly": {"ok": 0, "total": 1, "percent": 0.0},
        "Daily": {"ok": 1, "total": 2, "percent": 50.0},
    }
    lines = coverage_report.msg_lines(report)
    assert lines[0] == "coverage 33.3% (1 of 3 sources ok)"
    assert lines[1] == "1 missing source(s): i-2 (eu-west-1): no backup at all"
    markdown = coverage_report.to_markdown(report)
    assert "| missing | instance | i-2 | eu-west-1 |  | never | no backup at all |" in markdown
    page = coverage_report.to_html(report)
    assert page.index('data-resource="i-2"') < page.index('data-resource="i-3"')


def test_no_source_is_no_percentage_rather_than_full_coverage():
    report = coverage_report.build([], [], ["eu-west-1"], ACCOUNT, NOW, {})
    assert report["coverage"]["percent"] is None
    assert coverage_report.msg_lines(report) == ["no sources selected"]
    assert "n/a" in coverage_report.to_html(report)


def test_report_text_is_escaped_in_html_and_markdown():
    found = classify(instances=[instance("i-1", Backup="", Name="<b>web|db</b>")])
    report = coverage_report.build(found["sources"], found["backups"], ["eu-west-1"], ACCOUNT, NOW, {})
    assert "<b>web" not in coverage_report.to_html(report)
    assert "&lt;b&gt;web|db&lt;/b&gt;" in coverage_report.to_html(report)
    assert "<b>web\\|db</b>" in coverage_report.to_markdown(report)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"rpo": "soon"}, "rpo 'soon' is not an age"),
        ({"rpo": "0"}, "rpo must be more than zero, got '0'"),
        ({"restore_test_max_age": "-1"}, "restore_test_max_age must not be negative"),
        ({"fail_under": 120.0}, "fail_under must be a percentage between 0 and 100, got 120.0"),
        ({"fail_under": -1.0}, "fail_under must be a percentage between 0 and 100, got -1.0"),
        ({"report_limit": -1}, "report_limit must be at least 0, got -1"),
        ({"tag_key": " "}, "tag_key must not be empty"),
        ({"markdown_path": "/nonexistent-dir/c.md"}, "markdown_path '/nonexistent-dir/c.md' cannot be written"),
    ],
)
def test_bad_options_name_the_option_and_value(params, message):
    with pytest.raises(ValueError) as raised:
        options(**params)
    assert message in str(raised.value)


def test_a_region_that_could_not_be_described_is_named_at_the_top_of_the_page_and_the_markdown():
    error = {"resource": "eu-west-1", "region": "eu-west-1", "action": "describe", "code": "UnauthorizedOperation"}
    error["message"] = "not authorized to perform: ec2:DescribeVolumes"
    report = coverage_report.build([], [], ["eu-west-1"], ACCOUNT, NOW, {}, [error])
    assert report["errors"] == [error]
    expected = (
        "Not in this report: eu-west-1 (describe): UnauthorizedOperation not authorized to perform: ec2:DescribeVolumes"
    )
    page = coverage_report.to_html(report)
    assert expected in page and page.index(expected) < page.index("<h2>Coverage</h2>")
    assert "**" + expected + "**" in coverage_report.to_markdown(report)


def test_a_mirror_record_that_cannot_be_read_is_missing_with_the_reason(tmp_path):
    rpo = datetime.timedelta(days=1)
    (tmp_path / s3_index.LAST_RUN_NAME).write_text("not json")
    record, problem = s3_index.read_last_run(str(tmp_path))
    item = coverage.classify_mirror(str(tmp_path), record, problem, rpo, NOW)
    assert (item["status"], item["reason"]) == (
        "missing",
        "{0} is not an s3_mirror record".format(tmp_path / s3_index.LAST_RUN_NAME),
    )
    s3_index.record_complete_run(str(tmp_path), "b", "p/", NOW - datetime.timedelta(hours=3), 10)
    record, problem = s3_index.read_last_run(str(tmp_path))
    item = coverage.classify_mirror(str(tmp_path), record, problem, rpo, NOW)
    assert (item["status"], item["name"], item["newest_ok_age_seconds"]) == ("ok", "s3://b/p/", 3 * 3600)
    bad = dict(record, finished_at="yesterday")
    item = coverage.classify_mirror(str(tmp_path), bad, None, rpo, NOW)
    assert (item["status"], item["reason"]) == ("missing", "the last run's finish time 'yesterday' is not a timestamp")
