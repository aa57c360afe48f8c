"""opsvault.aws_backup.ebs_snapshot through real ansible-playbook runs against moto."""

import datetime

from tests.harness import ansible_run
from tests.harness import aws_proxy
from tests.harness import fleet


def task(name, ignore_errors=None, **params):
    return ansible_run.task("ebs_snapshot", name, ignore_errors=ignore_errors, **params)


def today_plus(days):
    return (datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=days)).isoformat()


def seed_web(ec2):
    """An instance (Retention 2w) with its root volume, a data volume (Retention 30d) and a bad Retention volume."""
    [instance_id] = fleet.launch(ec2, {"Name": "web", "Retention": "2w"})
    data = fleet.add_volume(ec2, instance_id, "/dev/sdf", {"Name": "data", "Retention": "30d"})
    bad = fleet.add_volume(ec2, instance_id, "/dev/sdg", {"Retention": "soon"})
    spare = fleet.add_volume(ec2, tags={"Name": "spare"})
    return instance_id, fleet.root_volume(ec2, instance_id), data, bad, spare


def test_all_regions_snapshot_in_use_volumes_with_the_tag_contract_and_rerun_creates_nothing(aws, play):
    fleets = {region: seed_web(aws.ec2(region)) for region in ("us-east-1", "eu-west-1")}

    run = play(
        [
            task("backup", regions="all", retention="7"),
            task("rerun", regions=["us-east-1", "eu-west-1"], retention="7"),
        ]
    )

    assert run.rc == 0, run.stdout
    first, rerun = run.result("backup"), run.result("rerun")
    assert first["changed"] is True and first["errors"] == []
    assert "us-east-1" in first["regions"] and "eu-west-1" in first["regions"] and len(first["regions"]) > 2
    for region, (instance_id, root, data, bad, spare) in fleets.items():
        ec2 = aws.ec2(region)
        snapshots = fleet.snapshots(ec2)
        by_volume = {snapshot["VolumeId"]: snapshot for snapshot in snapshots.values()}
        assert sorted(by_volume) == sorted([root, data, bad])
        assert len(snapshots) == 3
        data_tags = fleet.tags_of(by_volume[data])
        assert data_tags == {
            "Region": region,
            "VolumeId": data,
            "InstanceId": instance_id,
            "Device": "/dev/sdf",
            "Description": "opsvault.aws_backup default backup of {0} (/dev/sdf on {1})".format(data, instance_id),
            "CreatedBy": "opsvault.aws_backup",
            "DeleteOn": today_plus(30),
            "BackupPolicy": "default",
            "Name": "data",
        }
        assert by_volume[data]["Description"] == data_tags["Description"]
        assert fleet.tags_of(by_volume[root])["DeleteOn"] == today_plus(14)
        assert fleet.tags_of(by_volume[root])["Name"] == "web"
        assert fleet.tags_of(by_volume[bad])["DeleteOn"] == today_plus(14)
        assert {"resource": spare, "region": region, "reason": "volume is available; volume_states is in-use"} in first[
            "skipped_resources"
        ]
        returned = {item["snapshot_id"]: item for item in first["snapshots"] if item["region"] == region}
        assert sorted(returned) == sorted(snapshots)
        for item in returned.values():
            assert item["tags"] == fleet.tags_of(snapshots[item["snapshot_id"]])
            assert item["instance_id"] == instance_id and item["mode"] == "volume"
        assert any(
            warning.startswith("volume {0} in {1}: Retention tag ignored".format(bad, region)) and "'soon'" in warning
            for warning in first["warnings"]
        )
        assert {item["volume_id"]: item["retention"] for item in returned.values()}[data] == "30 days"
    assert first["msg"].startswith("{0}: Created 6 snapshot(s): ".format(", ".join(first["regions"])))

    assert rerun["changed"] is False and rerun["snapshots"] == []
    assert "Left alone 8 resource(s)" in rerun["msg"]
    recent = [item for item in rerun["skipped_resources"] if "within min_interval" in item["reason"]]
    assert len(recent) == 6
    assert sum(len(fleet.snapshots(aws.ec2(region))) for region in fleets) == 6


def test_instance_mode_makes_one_crash_consistent_set_per_selected_instance(aws, play):
    ec2 = aws.ec2("us-east-1")
    [database] = fleet.launch(ec2, {"Name": "db", "Backup": "Database", "Retention": "30d"})
    data = fleet.add_volume(ec2, database, "/dev/sdf", {"Retention": "6m"})
    logs = fleet.add_volume(ec2, database, "/dev/sdg")
    [other] = fleet.launch(ec2, {"Name": "web"})

    run = play(
        [
            task(
                "sets",
                mode="instance",
                exclude_boot_volume=True,
                instance_tag_key="Backup",
                instance_tag_value="Database",
            )
        ]
    )

    assert run.rc == 0, run.stdout
    result = run.result("sets")
    snapshots = fleet.snapshots(ec2)
    assert sorted(snapshot["VolumeId"] for snapshot in snapshots.values()) == sorted([data, logs])
    assert fleet.root_volume(ec2, database) not in [snapshot["VolumeId"] for snapshot in snapshots.values()]
    assert fleet.root_volume(ec2, other) not in [snapshot["VolumeId"] for snapshot in snapshots.values()]
    six_months = fleet.tags_of(next(iter(snapshots.values())))["DeleteOn"]
    for snapshot in snapshots.values():
        tags = fleet.tags_of(snapshot)
        assert tags["InstanceId"] == database and tags["BackupPolicy"] == "Database" and tags["Name"] == "db"
        assert tags["DeleteOn"] == six_months and six_months > today_plus(180 - 5)
        assert snapshot["Description"] == tags["Description"]
        assert "crash-consistent" in tags["Description"]
    assert {(item["volume_id"], item["device"]) for item in result["snapshots"]} == {
        (data, "/dev/sdf"),
        (logs, "/dev/sdg"),
    }
    assert {item["instance_id"] for item in result["snapshots"]} == {database}


def test_volumes_at_the_pending_snapshot_limit_are_skipped(aws, play):
    ec2 = aws.ec2("us-east-1")
    [instance_id] = fleet.launch(ec2)
    full = fleet.add_volume(ec2, instance_id, "/dev/sdf", volume_type="gp3")
    room = fleet.add_volume(ec2, instance_id, "/dev/sdg", volume_type="gp3")
    cold = fleet.add_volume(ec2, instance_id, "/dev/sdh", volume_type="sc1", size=125)
    for volume_id, count in ((full, 5), (room, 4), (cold, 1)):
        for _pending in range(count):
            fleet.set_snapshot("us-east-1", fleet.add_snapshot(ec2, volume_id), state="pending")
    before = set(fleet.snapshots(ec2))

    run = play(
        [
            task("backup", volume_ids=[full, room, cold, "vol-0000000000000dead"]),
            task("bad retention", ignore_errors=True, retention="soon"),
            task("bad contract tag", ignore_errors=True, extra_tags={"DeleteOn": "never"}),
            task("bad min_interval", ignore_errors=True, min_interval="soon"),
        ]
    )

    result = run.result("backup")
    assert not result.get("failed") and result["errors"] == [] and result["changed"] is True
    created = {sid: snapshot for sid, snapshot in fleet.snapshots(ec2).items() if sid not in before}
    assert [snapshot["VolumeId"] for snapshot in created.values()] == [room]
    skipped = {item["resource"]: item["reason"] for item in result["skipped_resources"]}
    assert skipped[full] == "{0} has 5 pending snapshot(s); AWS allows 5 concurrent snapshot(s) of a gp3 volume".format(
        full
    )
    assert skipped[cold] == "{0} has 1 pending snapshot(s); AWS allows 1 concurrent snapshot(s) of a sc1 volume".format(
        cold
    )
    assert skipped["vol-0000000000000dead"] == "volume not found in us-east-1"

    bad_retention = run.result("bad retention")
    assert bad_retention["failed"] is True and "retention 'soon' is not a period" in bad_retention["msg"]
    bad_tag = run.result("bad contract tag")
    assert bad_tag["failed"] is True and "extra_tags may not set DeleteOn" in bad_tag["msg"]
    bad_interval = run.result("bad min_interval")
    assert bad_interval["failed"] is True and bad_interval["msg"].startswith("min_interval 'soon' is not a duration")
    assert len(fleet.snapshots(ec2)) == len(before) + 1


def test_the_selector_tag_value_is_the_backup_policy_and_the_retention_is_echoed_normalised(aws, play):
    ec2 = aws.ec2("us-east-1")
    [instance_id] = fleet.launch(ec2)
    weekly = fleet.add_volume(ec2, instance_id, "/dev/sdf", {"Backup": "Weekly", "Retention": "3w"})
    plain = fleet.add_volume(ec2, instance_id, "/dev/sdg", {"Backup": ""})
    fleet.add_volume(ec2, instance_id, "/dev/sdh")

    run = play([task("backup", tag_key="Backup", retention="1m")])

    assert run.rc == 0, run.stdout
    result = run.result("backup")
    by_volume = {item["volume_id"]: item for item in result["snapshots"]}
    assert sorted(by_volume) == sorted([weekly, plain])
    assert by_volume[weekly]["tags"]["BackupPolicy"] == "Weekly" and by_volume[weekly]["retention"] == "21 days"
    assert by_volume[weekly]["delete_on"] == today_plus(21)
    assert by_volume[plain]["tags"]["BackupPolicy"] == "default" and by_volume[plain]["retention"] == "1 month"
    taken = {snapshot["VolumeId"]: fleet.tags_of(snapshot) for snapshot in fleet.snapshots(ec2).values()}
    assert taken[weekly]["BackupPolicy"] == "Weekly"
    assert taken[weekly]["Description"].startswith("opsvault.aws_backup Weekly backup of " + weekly)


def test_shipped_playbook_previews_then_makes_one_create_snapshots_call_per_instance(aws, shipped_playbook):
    regions = ["us-east-1", "eu-west-1"]
    volumes = {}
    for region in regions:
        ec2 = aws.ec2(region)
        for instance_id in fleet.launch(ec2, {"Backup": "Database"}, count=2):
            data = fleet.add_volume(ec2, instance_id, "/dev/sdf")
            volumes[instance_id] = (region, sorted([fleet.root_volume(ec2, instance_id), data]))
        fleet.launch(ec2)
    # Empty values are what an AWX survey sends for unanswered questions: they mean "unset".
    extra_vars = {
        "ebs_snapshot_regions": regions,
        "ebs_snapshot_mode": "instance",
        "ebs_snapshot_instance_tag_key": "Backup",
        "ebs_snapshot_volume_ids": "",
        "ebs_snapshot_min_interval": "",
    }

    def run(check):
        playbook, stats = shipped_playbook("ebs_snapshot", extra_vars, check)
        return playbook.result("Create EBS snapshots"), stats

    preview, preview_stats = run(check=True)
    assert preview_stats["mutating"] == 0
    assert preview["changed"] is True and len(preview["snapshots"]) == 8
    assert {item["state"] for item in preview["snapshots"]} == {"planned"}
    assert {item["snapshot_id"] for item in preview["snapshots"]} == {None}
    assert sum(len(fleet.snapshots(aws.ec2(region))) for region in regions) == 0

    result, stats = run(check=False)
    for instance_id, (region, instance_volumes) in volumes.items():
        taken = [s for s in fleet.snapshots(aws.ec2(region)).values() if fleet.tags_of(s)["InstanceId"] == instance_id]
        assert sorted(snapshot["VolumeId"] for snapshot in taken) == instance_volumes
        assert sorted(item["volume_id"] for item in result["snapshots"] if item["instance_id"] == instance_id) == (
            instance_volumes
        )
    for region in regions:
        assert aws_proxy.count(stats, action="CreateSnapshots", region=region) == 2
        assert aws_proxy.count(stats, action="CreateSnapshot", region=region) == 0
        assert aws_proxy.count(stats, action="CreateTags", region=region) == 0
        assert aws_proxy.count(stats, action="DescribeVolumes", region=region) == 1
        assert aws_proxy.count(stats, action="DescribeInstances", region=region) == 1
        assert aws_proxy.count(stats, action="DescribeSnapshots", region=region) == 2
    assert stats["mutating"] == 4
