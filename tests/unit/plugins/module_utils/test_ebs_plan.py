import datetime

import pytest

from ansible_collections.opsvault.aws_backup.plugins.module_utils import ebs
from ansible_collections.opsvault.aws_backup.plugins.module_utils import values
from ansible_collections.opsvault.aws_backup.plugins.modules import ebs_snapshot
from ansible_collections.opsvault.aws_backup.plugins.modules import snapshot_purge
from tests.harness.module_options import options_of
from tests.harness.module_options import params_of

NOW = datetime.datetime(2026, 11, 23, 1, 0, 0, tzinfo=datetime.timezone.utc)
TODAY = NOW.date()
ACCOUNT = "123456789012"
MARKER = {"CreatedBy": "opsvault.aws_backup"}


def tags(**values):
    return [{"Key": key, "Value": value} for key, value in values.items()]


def volume(volume_id, instance_id=None, device="/dev/sdf", state=None, volume_type="gp3", **tag_values):
    attachments = [{"InstanceId": instance_id, "Device": device, "State": "attached"}] if instance_id else []
    return {
        "VolumeId": volume_id,
        "State": state or ("in-use" if instance_id else "available"),
        "VolumeType": volume_type,
        "Attachments": attachments,
        "Tags": tags(**tag_values),
    }


def instance(instance_id, mappings, **tag_values):
    return {
        "InstanceId": instance_id,
        "RootDeviceName": "/dev/sda1",
        "BlockDeviceMappings": [{"DeviceName": device, "Ebs": {"VolumeId": vid}} for device, vid in mappings],
        "Tags": tags(**tag_values),
    }


def snapshot(snapshot_id, volume_id, started, state="completed", owner=ACCOUNT, tier="standard", **tag_values):
    return {
        "SnapshotId": snapshot_id,
        "VolumeId": volume_id,
        "StartTime": started,
        "State": state,
        "OwnerId": owner,
        "StorageTier": tier,
        "Tags": tags(**tag_values),
    }


def backup_options(**overrides):
    return options_of(ebs_snapshot, **overrides)


def purge_options(check_mode=False, **overrides):
    return snapshot_purge.parse_options(params_of(snapshot_purge, **overrides), check_mode, today=TODAY)


def ago(**delta):
    return NOW - datetime.timedelta(**delta)


def reasons(entries):
    return {entry.get("resource") or entry.get("snapshot_id"): entry["reason"] for entry in entries}


# ---------------------------------------------------------------- ebs_snapshot plan


def test_volume_mode_tags_retention_precedence_and_skips():
    volumes = [
        volume("vol-data", "i-web", "/dev/sdf", Retention="30d", Name="data", Team="ops"),
        volume("vol-root", "i-web", "/dev/sda1"),
        volume("vol-bad", "i-web", "/dev/sdg", Retention="soon"),
        volume("vol-spare"),
    ]
    instances = [instance("i-web", [], Name="web", Retention="2w", Team="web")]
    plan = ebs.plan_snapshots("eu-west-1", volumes, instances, [], [], backup_options(copy_tags=["Team"]), NOW, ACCOUNT)

    by_volume = {item["volume_id"]: item for item in plan["todo"]}
    assert sorted(by_volume) == ["vol-bad", "vol-data", "vol-root"]
    data = by_volume["vol-data"]["tags"]
    assert data == {
        "Team": "ops",
        "Name": "data",
        "Region": "eu-west-1",
        "VolumeId": "vol-data",
        "InstanceId": "i-web",
        "Device": "/dev/sdf",
        "Description": "opsvault.aws_backup default backup of vol-data (/dev/sdf on i-web)",
        "CreatedBy": "opsvault.aws_backup",
        "DeleteOn": "2026-12-23",
        "BackupPolicy": "default",
    }
    assert by_volume["vol-data"]["description"] == data["Description"]
    assert by_volume["vol-root"]["tags"]["DeleteOn"] == "2026-12-07"
    assert by_volume["vol-root"]["tags"]["Name"] == "web"
    assert by_volume["vol-bad"]["delete_on"] == "2026-12-07"
    assert len(plan["warnings"]) == 1
    assert "vol-bad" in plan["warnings"][0] and "'soon'" in plan["warnings"][0]
    assert plan["skipped"] == [
        {"resource": "vol-spare", "region": "eu-west-1", "reason": "volume is available; volume_states is in-use"}
    ]


def test_bad_instance_retention_warns_naming_the_instance_and_uses_the_task_retention():
    plan = ebs.plan_snapshots(
        "eu-west-1",
        [volume("vol-a", "i-a")],
        [instance("i-a", [], Retention="forever")],
        [],
        [],
        backup_options(retention="3"),
        NOW,
    )
    assert plan["todo"][0]["delete_on"] == "2026-11-26"
    assert "instance i-a" in plan["warnings"][0] and "'forever'" in plan["warnings"][0]


def test_selection_by_volume_tag_instance_tag_and_ids():
    volumes = [
        volume("vol-a", "i-a", Backup="Daily"),
        volume("vol-b", "i-b", Backup="Weekly"),
        volume("vol-c", "i-b"),
        volume("vol-d"),
    ]
    instances = [instance("i-a", [], Backup="Db"), instance("i-b", [])]

    def chosen(**option):
        plan = ebs.plan_snapshots("r", volumes, instances, [], [], backup_options(**option), NOW)
        return [item["volume_id"] for item in plan["todo"]]

    assert chosen(tag_key="Backup") == ["vol-a", "vol-b"]
    assert chosen(tag_key="Backup", tag_value="Weekly") == ["vol-b"]
    assert chosen(instance_tag_key="Backup") == ["vol-a"]
    assert chosen(instance_tag_key="Backup", instance_tag_value="Other") == []
    assert chosen(volume_ids=["vol-c", "vol-a"]) == ["vol-a", "vol-c"]
    plan = ebs.plan_snapshots(
        "r", volumes, instances, [], [], backup_options(tag_key="Backup", tag_value="Weekly"), NOW
    )
    assert plan["todo"][0]["tags"]["BackupPolicy"] == "Weekly"


def test_min_interval_counts_only_live_ebs_backups_of_this_account():
    volumes = [volume(vid, "i-a") for vid in ("vol-recent", "vol-old", "vol-ami", "vol-failed", "vol-foreign")]
    managed = [
        snapshot("snap-1", "vol-recent", ago(minutes=30), VolumeId="vol-recent", **MARKER),
        snapshot("snap-2", "vol-old", ago(hours=2), VolumeId="vol-old", **MARKER),
        snapshot("snap-3", "vol-ami", ago(minutes=5), SourceInstanceId="i-a", **MARKER),
        snapshot("snap-4", "vol-failed", ago(minutes=5), state="error", VolumeId="vol-failed", **MARKER),
        snapshot("snap-5", "vol-foreign", ago(minutes=5), owner="999999999999", VolumeId="vol-foreign", **MARKER),
    ]
    plan = ebs.plan_snapshots("r", volumes, [instance("i-a", [])], managed, [], backup_options(), NOW, ACCOUNT)
    assert sorted(item["volume_id"] for item in plan["todo"]) == ["vol-ami", "vol-failed", "vol-foreign", "vol-old"]
    assert (
        "snap-1" in reasons(plan["skipped"])["vol-recent"] and "min_interval" in reasons(plan["skipped"])["vol-recent"]
    )

    plan = ebs.plan_snapshots("r", volumes, [], managed, [], backup_options(min_interval="0"), NOW)
    assert len(plan["todo"]) == 5


def test_pending_snapshot_limit_per_volume_type():
    volumes = [
        volume("vol-gp3-full", "i-a", volume_type="gp3"),
        volume("vol-gp3-room", "i-a", volume_type="gp3"),
        volume("vol-sc1", "i-a", volume_type="sc1"),
        volume("vol-io2", "i-a", volume_type="io2"),
    ]
    pending = (
        [snapshot("snap-f{0}".format(n), "vol-gp3-full", ago(minutes=n), state="pending") for n in range(5)]
        + [snapshot("snap-r{0}".format(n), "vol-gp3-room", ago(minutes=n), state="pending") for n in range(4)]
        + [snapshot("snap-s", "vol-sc1", ago(minutes=1), state="pending")]
        + [snapshot("snap-x", "vol-io2", ago(minutes=1), state="pending", owner="999999999999")] * 5
    )
    plan = ebs.plan_snapshots("r", volumes, [], [], pending, backup_options(), NOW, ACCOUNT)
    assert sorted(item["volume_id"] for item in plan["todo"]) == ["vol-gp3-room", "vol-io2"]
    skipped = reasons(plan["skipped"])
    assert (
        skipped["vol-gp3-full"]
        == "vol-gp3-full has 5 pending snapshot(s); AWS allows 5 concurrent snapshot(s) of a gp3 volume"
    )
    assert (
        skipped["vol-sc1"] == "vol-sc1 has 1 pending snapshot(s); AWS allows 1 concurrent snapshot(s) of a sc1 volume"
    )


def test_instance_mode_one_set_per_instance_with_longest_retention():
    volumes = [
        volume("vol-root", "i-db", "/dev/sda1"),
        volume("vol-data", "i-db", "/dev/sdf", Retention="6m"),
        volume("vol-logs", "i-db", "/dev/sdg", Retention="1w"),
        volume("vol-web", "i-web", "/dev/sda1"),
        volume("vol-loose"),
    ]
    instances = [
        instance(
            "i-db", [("/dev/sda1", "vol-root"), ("/dev/sdf", "vol-data"), ("/dev/sdg", "vol-logs")], Retention="30d"
        ),
        instance("i-web", [("/dev/sda1", "vol-web")], Name="web"),
    ]
    plan = ebs.plan_snapshots(
        "r", volumes, instances, [], [], backup_options(mode="instance", exclude_boot_volume=True), NOW
    )
    [item] = plan["todo"]
    assert item["instance_id"] == "i-db" and item["mode"] == "instance"
    assert item["volumes"] == [
        {"volume_id": "vol-data", "device": "/dev/sdf"},
        {"volume_id": "vol-logs", "device": "/dev/sdg"},
    ]
    assert item["delete_on"] == "2027-05-23"
    assert item["tags"]["InstanceId"] == "i-db" and "VolumeId" not in item["tags"] and "Device" not in item["tags"]
    assert item["description"] == "opsvault.aws_backup default backup of i-db (crash-consistent set of its volumes)"
    skipped = reasons(plan["skipped"])
    assert skipped["i-web"] == "no EBS volume to snapshot (exclude_boot_volume is true)"
    assert "attached to no instance" in skipped["vol-loose"]

    plan = ebs.plan_snapshots("r", volumes, instances, [], [], backup_options(mode="instance"), NOW)
    assert [len(item["volumes"]) for item in plan["todo"]] == [3, 1]


def test_instance_mode_skips_the_whole_instance_when_one_volume_is_busy_or_recent():
    volumes = [volume("vol-a", "i-a", "/dev/sda1"), volume("vol-b", "i-a", "/dev/sdf", volume_type="st1")]
    instances = [instance("i-a", [("/dev/sda1", "vol-a"), ("/dev/sdf", "vol-b")])]
    pending = [snapshot("snap-p", "vol-b", ago(minutes=1), state="pending")]
    plan = ebs.plan_snapshots("r", volumes, instances, [], pending, backup_options(mode="instance"), NOW)
    assert plan["todo"] == []
    assert "vol-b has 1 pending snapshot(s)" in reasons(plan["skipped"])["i-a"]

    managed = [snapshot("snap-m", "vol-a", ago(minutes=10), InstanceId="i-a", **MARKER)]
    plan = ebs.plan_snapshots("r", volumes, instances, managed, [], backup_options(mode="instance"), NOW)
    assert plan["todo"] == [] and "snap-m of vol-a" in reasons(plan["skipped"])["i-a"]


def test_parse_age():
    assert values.parse_age("30", "stale_min_age") == datetime.timedelta(days=30)
    assert values.parse_age(0, "stale_min_age") == datetime.timedelta(0)
    assert values.parse_age("12h", "stale_min_age") == datetime.timedelta(hours=12)
    with pytest.raises(ValueError, match="stale_min_age must not be negative, got '-5'"):
        values.parse_age("-5", "stale_min_age")
    with pytest.raises(ValueError, match="stale_min_age 'old' is not an age"):
        values.parse_age("old", "stale_min_age")


def test_bad_retention_warnings_name_the_region_and_results_echo_the_normalised_retention():
    plan = ebs.plan_snapshots(
        "eu-west-1",
        [volume("vol-x", "i-a", Retention="soon"), volume("vol-y", "i-a", Retention="3w")],
        [instance("i-a", [])],
        [],
        [],
        backup_options(retention="2w"),
        NOW,
    )
    assert plan["warnings"] == [
        "volume vol-x in eu-west-1: Retention tag ignored, retention 'soon' is not a period: use a number of days "
        "(7), or a count with a unit (30d, 2w, 6m, 1y, '+30 days', '+6 months')"
    ]
    by_volume = {item["volume_id"]: item for item in plan["todo"]}
    assert by_volume["vol-x"]["retention"] == "14 days"
    assert by_volume["vol-y"]["retention"] == "21 days" and by_volume["vol-y"]["delete_on"] == "2026-12-14"


def test_backup_policy_is_the_selector_tag_value_without_tag_value():
    volumes = [volume("vol-a", "i-a", Backup="Weekly"), volume("vol-b", "i-b", Backup=" ")]
    instances = [
        instance("i-a", [("/dev/sdf", "vol-a")], Team="db"),
        instance("i-b", [("/dev/sdf", "vol-b")], Team="web"),
    ]

    def policies(**option):
        plan = ebs.plan_snapshots("r", volumes, instances, [], [], backup_options(**option), NOW)
        return {item["volume_id"]: item["tags"]["BackupPolicy"] for item in plan["todo"]}

    assert policies(tag_key="Backup") == {"vol-a": "Weekly", "vol-b": "default"}
    assert policies(tag_key="Backup", tag_value="Weekly") == {"vol-a": "Weekly"}
    assert policies(instance_tag_key="Team") == {"vol-a": "db", "vol-b": "web"}
    assert policies(instance_tag_key="Team", instance_tag_value="db") == {"vol-a": "db"}
    assert policies(tag_key="Backup", instance_tag_key="Team") == {"vol-a": "Weekly", "vol-b": "web"}
    assert policies() == {"vol-a": "default", "vol-b": "default"}
    plan = ebs.plan_snapshots("r", volumes, instances, [], [], backup_options(tag_key="Backup"), NOW)
    assert plan["todo"][0]["description"].startswith("opsvault.aws_backup Weekly backup of vol-a")
    sets = ebs.plan_snapshots("r", volumes, instances, [], [], backup_options(mode="instance", tag_key="Backup"), NOW)
    assert {item["instance_id"]: item["tags"]["BackupPolicy"] for item in sets["todo"]} == {
        "i-a": "Weekly",
        "i-b": "default",
    }


def test_a_bad_min_interval_names_the_option():
    with pytest.raises(ValueError, match="^min_interval 'soon' is not a duration"):
        backup_options(min_interval="soon")
    with pytest.raises(ValueError, match="tag_value needs tag_key"):
        backup_options(tag_value="Daily")


# ---------------------------------------------------------------- snapshot_purge plan


def expired(**extra):
    return dict(MARKER, DeleteOn="2026-11-01", **extra)


def purge_plan(snapshots, images=(), volumes=(), running=(), account_id=None, **options):
    return ebs.plan_snapshot_purge(
        "r", snapshots, list(images), list(volumes), set(running), purge_options(**options), NOW, account_id
    )


def purged(plan):
    return [item["snapshot_id"] for item in plan["todo"]]


def test_expired_managed_snapshots_go_and_the_newest_completed_per_volume_stays():
    snapshots = [
        snapshot("snap-a1", "vol-a", ago(days=30), **expired()),
        snapshot("snap-a2", "vol-a", ago(days=20), **expired()),
        snapshot("snap-a3", "vol-a", ago(days=10), **expired()),
        snapshot("snap-b1", "vol-b", ago(days=10), **dict(MARKER, DeleteOn="2026-12-01")),
        snapshot("snap-b2", "vol-b", ago(days=5), **dict(MARKER, DeleteOn="2026-12-05")),
        snapshot("snap-c1", "vol-c", ago(days=40), DeleteOn="2026-11-01"),
        snapshot("snap-c2", "vol-c", ago(days=30), DeleteOn="2026-11-01"),
        snapshot("snap-d1", "vol-d", ago(days=40)),
    ]
    plan = purge_plan(snapshots, account_id=ACCOUNT)
    assert purged(plan) == ["snap-a2", "snap-a1"]
    assert plan["todo"][0]["reason"] == "expired on 2026-11-01" and plan["todo"][0]["legacy"] is False
    assert plan["todo"][0]["managed"] is True
    assert reasons(plan["skipped"]) == {
        "snap-a3": "one of the newest 1 completed snapshot(s) of vol-a (keep_min)",
        "snap-b1": "expires on 2026-12-01",
        "snap-b2": "one of the newest 1 completed snapshot(s) of vol-b (keep_min)",
    }
    assert plan["skipped"][0] == {
        "resource": "snap-a3",
        "snapshot_id": "snap-a3",
        "volume_id": "vol-a",
        "region": "r",
        "state": "completed",
        "reason": "one of the newest 1 completed snapshot(s) of vol-a (keep_min)",
    }

    plan = purge_plan(snapshots, adopt_legacy=True)
    assert sorted(purged(plan)) == ["snap-a1", "snap-a2", "snap-c1"]
    [legacy] = [item for item in plan["todo"] if item["snapshot_id"] == "snap-c1"]
    assert legacy["legacy"] is True and legacy["managed"] is False
    assert legacy["reason"] == "expired on 2026-11-01; not made by this collection (adopt_legacy)"


def test_keep_min_below_one_is_refused_so_the_newest_completed_snapshot_always_stays():
    with pytest.raises(
        ValueError, match="keep_min must be at least 1 .the newest available backup is never purged., got 0"
    ):
        purge_options(keep_min=0)
    with pytest.raises(ValueError, match="keep_last must be at least 1, got 0"):
        purge_options(keep_last=0)
    snapshots = [snapshot("snap-only", "vol-a", ago(days=30), **expired())]
    assert purged(purge_plan(snapshots)) == []


def test_keep_last_purges_completed_snapshots_beyond_the_newest_n_before_they_expire():
    snapshots = [
        snapshot("snap-{0}".format(age), "vol-a", ago(days=age), **dict(MARKER, DeleteOn="2027-01-01"))
        for age in (1, 2, 3, 4)
    ]
    plan = purge_plan(snapshots, keep_last=2)
    assert purged(plan) == ["snap-3", "snap-4"]
    assert plan["todo"][0]["reason"] == "beyond keep_last 2: completed snapshot number 3 of vol-a"
    assert purged(purge_plan(snapshots, keep_last=2, keep_min=3)) == ["snap-4"]


def test_as_of_previews_a_future_date_and_a_future_as_of_is_refused_outside_check_mode():
    snapshots = [
        snapshot("snap-1", "vol-a", ago(days=3), **dict(MARKER, DeleteOn="2026-12-01")),
        snapshot("snap-2", "vol-a", ago(days=1), **dict(MARKER, DeleteOn="2026-12-03")),
    ]
    assert purged(purge_plan(snapshots)) == []
    assert purged(purge_plan(snapshots, check_mode=True, as_of="2026-12-01")) == ["snap-1"]
    with pytest.raises(ValueError, match="^as_of 2026-12-01 is in the future.*allow_future_as_of: true"):
        purge_options(as_of="2026-12-01")
    assert purge_options(as_of="2026-12-01", allow_future_as_of=True)["as_of"] == datetime.date(2026, 12, 1)
    assert purge_options(as_of="2026-12-01", action="report")["as_of"] == datetime.date(2026, 12, 1)
    assert purge_options(as_of="2026-11-01")["as_of"] == datetime.date(2026, 11, 1)
    with pytest.raises(ValueError, match="^as_of 'next tuesday' is not a date: use YYYY-MM-DD"):
        purge_options(as_of="next tuesday")


def test_never_ami_snapshots_foreign_keep_tagged_or_pending():
    snapshots = [
        snapshot("snap-ami", "vol-a", ago(days=9), **expired()),
        snapshot("snap-foreign", "vol-a", ago(days=9), owner="999999999999", **expired()),
        snapshot("snap-keep", "vol-a", ago(days=9), **expired(Keep="forever")),
        snapshot("snap-keep-no", "vol-a", ago(days=8), **expired(Keep="no")),
        snapshot("snap-new", "vol-a", ago(days=1), **expired()),
        snapshot("snap-pending", "vol-b", ago(days=2), state="pending", **expired()),
        snapshot("snap-b-old", "vol-b", ago(days=9), **expired()),
        snapshot("snap-b-older", "vol-b", ago(days=19), **expired()),
        snapshot("snap-c-pending", "vol-c", ago(days=5), state="pending", **expired()),
        snapshot("snap-c-new", "vol-c", ago(days=1), **expired()),
    ]
    images = [
        {"ImageId": "ami-1", "BlockDeviceMappings": [{"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": "snap-ami"}}]}
    ]
    plan = purge_plan(snapshots, images, account_id=ACCOUNT)
    assert purged(plan) == ["snap-keep-no"]
    kept = reasons(plan["skipped"])
    assert kept["snap-ami"] == "used by registered AMI ami-1"
    assert kept["snap-foreign"] == "owned by 999999999999, not this account"
    assert kept["snap-keep"] == "tagged Keep=forever"
    assert kept["snap-c-pending"] == "snapshot is pending"
    assert kept["snap-pending"].startswith("the newest snapshot of vol-b, snap-pending, is pending")
    assert kept["snap-b-old"].startswith("the newest snapshot of vol-b, snap-pending, is pending")
    assert kept["snap-b-older"] == kept["snap-b-old"]
    assert kept["snap-new"].endswith("(keep_min)")


def test_newest_failed_snapshot_stops_expiry_of_its_volume():
    snapshots = [
        snapshot("snap-ok", "vol-a", ago(days=9), **expired()),
        snapshot("snap-ok2", "vol-a", ago(days=8), **expired()),
        snapshot("snap-err", "vol-a", ago(days=1), state="error", **expired()),
    ]
    plan = purge_plan(snapshots)
    assert plan["todo"] == []
    assert all("is error" in entry["reason"] for entry in plan["skipped"])


def test_bad_delete_on_is_kept_with_a_warning():
    plan = purge_plan(
        [
            snapshot("snap-x", "vol-a", ago(days=9), **dict(MARKER, DeleteOn="someday")),
            snapshot("snap-new", "vol-a", ago(days=1), **dict(MARKER, DeleteOn="2027-01-01")),
        ]
    )
    assert plan["todo"] == [] and reasons(plan["skipped"])["snap-x"] == "DeleteOn tag 'someday' is not a date"
    assert "snap-x in r" in plan["warnings"][0]


def stale_fleet():
    volumes = [
        volume("vol-attached", "i-running"),
        volume("vol-stopped", "i-stopped"),
        volume("vol-loose"),
    ]
    snapshots = [
        snapshot("snap-gone-old", "vol-gone", ago(days=40)),
        snapshot("snap-gone-young", "vol-gone", ago(days=10)),
        snapshot("snap-gone-managed", "vol-gone", ago(days=31), **dict(MARKER, DeleteOn="2027-01-01")),
        snapshot("snap-gone-lambda", "vol-gone", ago(days=50), DeleteOn="2026-12-31"),
        snapshot("snap-copy", ebs.COPIED_SNAPSHOT_VOLUME_ID, ago(days=90)),
        snapshot("snap-attached", "vol-attached", ago(days=90)),
        snapshot("snap-stopped", "vol-stopped", ago(days=90)),
        snapshot("snap-loose-old", "vol-loose", ago(days=60)),
        snapshot("snap-loose-young", "vol-loose", ago(days=5)),
        snapshot("snap-gone-kept", "vol-gone", ago(days=90), Keep="yes"),
    ]
    return volumes, snapshots


def test_stale_volume_gone_purges_only_managed_snapshots_by_default():
    volumes, snapshots = stale_fleet()
    plan = purge_plan(snapshots, volumes=volumes, running={"i-running"}, account_id=ACCOUNT, stale="volume_gone")
    assert purged(plan) == ["snap-gone-managed"]
    assert plan["todo"][0]["reason"] == "stale: volume vol-gone no longer exists (31 days old)"
    assert plan["todo"][0]["managed"] is True
    assert plan["skipped"] == []
    assert snapshot_purge.snapshot_filters(purge_options(stale="volume_gone")) == [
        {"Name": "tag:CreatedBy", "Values": ["opsvault.aws_backup"]}
    ]


def test_stale_include_unmanaged_is_the_old_scripts_clean_up_and_says_so():
    volumes, snapshots = stale_fleet()
    options = dict(stale="volume_gone", stale_include_unmanaged=True)
    plan = purge_plan(snapshots, volumes=volumes, running={"i-running"}, account_id=ACCOUNT, **options)
    assert sorted(purged(plan)) == ["snap-gone-lambda", "snap-gone-managed", "snap-gone-old"]
    by_id = {item["snapshot_id"]: item for item in plan["todo"]}
    assert by_id["snap-gone-old"]["reason"] == (
        "stale: volume vol-gone no longer exists (40 days old); not made by this collection (stale_include_unmanaged)"
    )
    assert by_id["snap-gone-old"]["managed"] is False and by_id["snap-gone-old"]["legacy"] is True
    assert by_id["snap-gone-lambda"]["managed"] is False
    assert by_id["snap-gone-managed"]["managed"] is True
    assert reasons(plan["skipped"]) == {
        "snap-gone-kept": "tagged Keep=yes",
        "snap-gone-young": "volume vol-gone no longer exists, but the snapshot is 10 days old; stale_min_age is 30 days",
    }
    assert snapshot_purge.snapshot_filters(purge_options(**options)) == []


def test_stale_snapshots_younger_than_stale_min_age_are_reported_with_their_age():
    snapshots = [
        snapshot("snap-young", "vol-gone", ago(days=3), **dict(MARKER, DeleteOn="2027-01-01")),
        snapshot("snap-older", "vol-gone", ago(days=4), **dict(MARKER, DeleteOn="2027-01-01")),
    ]
    plan = purge_plan(snapshots, stale="volume_gone")
    assert plan["todo"] == []
    assert reasons(plan["skipped"]) == {
        "snap-young": "one of the newest 1 completed snapshot(s) of vol-gone (keep_min); volume vol-gone no longer "
        "exists, but the snapshot is 3 days old; stale_min_age is 30 days",
        "snap-older": "expires on 2027-01-01; volume vol-gone no longer exists, but the snapshot is 4 days old; "
        "stale_min_age is 30 days",
    }
    plan = purge_plan(
        [snapshot("snap-x", "vol-gone", ago(hours=5))],
        stale="volume_gone",
        stale_include_unmanaged=True,
        stale_min_age="12h",
    )
    assert reasons(plan["skipped"]) == {
        "snap-x": "volume vol-gone no longer exists, but the snapshot is 5 hours old; stale_min_age is 12 hours"
    }


def test_stale_unattached_finds_snapshots_of_volumes_without_a_running_instance():
    volumes, snapshots = stale_fleet()
    plan = purge_plan(
        snapshots,
        volumes=volumes,
        running={"i-running"},
        stale="unattached",
        stale_min_age="30d",
        stale_include_unmanaged=True,
    )
    assert sorted(purged(plan)) == ["snap-loose-old", "snap-stopped"]
    assert "attached to no running instance" in plan["todo"][0]["reason"]
    assert reasons(plan["skipped"])["snap-loose-young"] == (
        "volume vol-loose is attached to no running instance, but the snapshot is 5 days old; stale_min_age is 30 days"
    )
    assert purged(purge_plan(snapshots, volumes=volumes, running={"i-running"}, stale="unattached")) == []


def test_archive_keeps_what_aws_cannot_archive():
    snapshots = [
        snapshot("snap-1", "vol-a", ago(days=30), **expired()),
        snapshot("snap-2", "vol-a", ago(days=29), tier="archive", **expired()),
        snapshot("snap-3", "vol-a", ago(days=28), state="error", **expired()),
        snapshot("snap-4", "vol-a", ago(days=1), **expired()),
    ]
    plan = purge_plan(snapshots, action="archive")
    assert purged(plan) == ["snap-1"]
    kept = reasons(plan["skipped"])
    assert kept["snap-2"] == "expired on 2026-11-01; already in the archive tier"
    assert kept["snap-3"] == "expired on 2026-11-01; AWS archives only completed snapshots"
    assert sorted(purged(purge_plan(snapshots))) == ["snap-1", "snap-2", "snap-3"]


def test_instance_mode_bad_retention_on_a_volume_warns_naming_it_and_the_instance_tag_decides():
    volumes = [volume("vol-a", "i-a", "/dev/sda1", Retention="eventually")]
    instances = [instance("i-a", [("/dev/sda1", "vol-a")], Retention="2w")]
    plan = ebs.plan_snapshots("r", volumes, instances, [], [], backup_options(mode="instance"), NOW)
    assert plan["todo"][0]["delete_on"] == "2026-12-07"
    assert len(plan["warnings"]) == 1
    assert (
        plan["warnings"][0].startswith("volume vol-a in r: Retention tag ignored")
        and "'eventually'" in plan["warnings"][0]
    )


def copy_tags(source_region, source_account=ACCOUNT, **extra):
    """The tags backup_copy writes on a copy of a snapshot of vol-a."""
    return dict(MARKER, VolumeId="vol-a", SourceRegion=source_region, SourceAccount=source_account, **extra)


def test_copies_keep_min_per_source_volume_and_origin_expire_by_their_own_delete_on_and_are_never_stale():
    copied = ebs.COPIED_SNAPSHOT_VOLUME_ID
    snapshots = [
        # vol-a is gone from this region: its own snapshot is stale, copies of its snapshots are not
        snapshot("snap-own", "vol-a", ago(days=31), **dict(MARKER, DeleteOn="2027-01-01")),
        snapshot("snap-east-old", copied, ago(days=20), **copy_tags("us-east-1", DeleteOn="2026-11-01")),
        snapshot("snap-east-new", copied, ago(days=10), **copy_tags("us-east-1", DeleteOn="2026-11-02")),
        snapshot("snap-vault", copied, ago(days=40), **copy_tags("us-east-1", "999999999999", DeleteOn="2026-11-01")),
        snapshot("snap-west-live", copied, ago(days=50), **copy_tags("us-west-2", DeleteOn="2027-01-01")),
    ]

    plan = purge_plan(snapshots, account_id=ACCOUNT, stale="volume_gone")

    assert purged(plan) == ["snap-own", "snap-east-old"]
    assert plan["todo"][0]["reason"] == "stale: volume vol-a no longer exists (31 days old)"
    assert plan["todo"][1]["reason"] == "expired on 2026-11-01"
    kept = reasons(plan["skipped"])
    assert kept["snap-east-new"] == (
        "one of the newest 1 completed snapshot(s) of vol-a (copies from us-east-1, 123456789012) (keep_min)"
    )
    assert "(copies from us-east-1, 999999999999) (keep_min)" in kept["snap-vault"]
    assert "stale" not in kept["snap-west-live"] and "keep_min" in kept["snap-west-live"]
