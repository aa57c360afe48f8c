"""volume_restore through real ansible-playbook runs against moto (and the counting, fault-injecting proxy)."""

import datetime

from tests.harness import ansible_run
from tests.harness import aws_proxy
from tests.harness import fleet

NOW = datetime.datetime.now(datetime.timezone.utc)
MARKER = {"CreatedBy": "opsvault.aws_backup", "BackupPolicy": "default", "DeleteOn": "2999-01-01"}


def restore_task(name="restore", check_mode=False, **options):
    entry = {"name": name, "opsvault.aws_backup.volume_restore": options, "ignore_errors": True}
    if check_mode:
        entry["check_mode"] = True
    return entry


def managed_snapshot(ec2, volume_id, days_ago, state=None, **tags):
    snapshot_id = fleet.add_snapshot(ec2, volume_id, dict(MARKER, VolumeId=volume_id, **tags))
    fleet.set_snapshot(ec2.meta.region_name, snapshot_id, state=state, started=NOW - datetime.timedelta(days=days_ago))
    return snapshot_id


def restored_volumes(ec2):
    volumes = ec2.describe_volumes(Filters=[{"Name": "tag:RestoredBy", "Values": ["opsvault.aws_backup"]}])["Volumes"]
    found = {}
    for volume in volumes:
        found.setdefault(fleet.tags_of(volume)["VolumeId"], []).append(volume)
    return found


def test_volume_from_the_newest_completed_snapshot_attached_check_mode_first_then_rerun_changes_nothing(
    aws, counting_proxy, tmp_path
):
    ec2 = aws.ec2()
    data = fleet.add_volume(ec2, tags={"Name": "db-data"})
    logs = fleet.add_volume(ec2)
    completed = managed_snapshot(ec2, data, 2, Device="/dev/sdf", Name="db-data")
    pending = managed_snapshot(ec2, data, 0, state="pending")
    logs_snapshot = managed_snapshot(ec2, logs, 1)
    [target] = fleet.launch(ec2, {"Name": "restored db"})
    zone = ec2.describe_instances(InstanceIds=[target])["Reservations"][0]["Instances"][0]["Placement"][
        "AvailabilityZone"
    ]

    def run(tasks):
        play = ansible_run.aws_play(counting_proxy.endpoint, tasks)
        return ansible_run.run_playbook(play, tmp_path, endpoint=counting_proxy.endpoint)

    options = dict(volume_ids=[data], instance_id=target, volume_type="gp3", iops=4000, throughput=250)
    checked = run([restore_task("plan", check_mode=True, **options)])
    plan = checked.result("plan")
    assert checked.rc == 0, plan
    assert counting_proxy.stats()["mutating"] == 0
    [item] = plan["volumes"]
    assert (item["snapshot_id"], item["state"], item["device"], item["availability_zone"]) == (
        completed,
        "planned",
        "/dev/sdf",
        zone,
    )
    assert pending in item["note"]
    assert restored_volumes(ec2) == {}

    counting_proxy.reset()
    first = run([restore_task(**options), restore_task("logs", volume_ids=[logs], availability_zone=zone)])
    result = first.result("restore")
    assert first.rc == 0, result
    assert counting_proxy.stats()["requests"].get("ec2:CreateVolume") == 2
    found = restored_volumes(ec2)
    assert {source: len(volumes) for source, volumes in found.items()} == {data: 1, logs: 1}
    [volume] = found[data]
    assert volume["SnapshotId"] == completed and volume["AvailabilityZone"] == zone
    assert (volume["VolumeType"], volume["Iops"], volume["Throughput"]) == ("gp3", 4000, 250)
    assert [(entry["InstanceId"], entry["Device"]) for entry in volume["Attachments"]] == [(target, "/dev/sdf")]
    assert fleet.tags_of(volume) == {
        "Name": "restore of db-data",
        "VolumeId": data,
        "SourceSnapshotId": completed,
        "RestoredBy": "opsvault.aws_backup",
        "RestoreId": result["volumes"][0]["restore_id"],
    }
    assert found[logs][0]["SnapshotId"] == logs_snapshot and found[logs][0]["Attachments"] == []
    assert result["volumes"][0]["attached"] is True and result["volumes"][0]["created"] is True

    counting_proxy.reset()
    again = run([restore_task("again", **options)])
    rerun = again.result("again")
    assert again.rc == 0 and rerun["changed"] is False, rerun
    assert counting_proxy.stats()["mutating"] == 0
    assert [item["volume_id"] for item in rerun["volumes"]] == [volume["VolumeId"]]
    assert {source: len(volumes) for source, volumes in restored_volumes(ec2).items()} == {data: 1, logs: 1}


def test_bad_input_names_the_value(aws, play):
    ec2 = aws.ec2()
    data = fleet.add_volume(ec2)
    managed_snapshot(ec2, data, 1)
    failing = fleet.add_volume(ec2)
    broken = managed_snapshot(ec2, failing, 1, state="error")

    run = play(
        [
            restore_task("unknown volume", volume_ids=["vol-0123456789abcdef0"], availability_zone="us-east-1a"),
            restore_task("zone of another region", volume_ids=[data], availability_zone="eu-west-1a"),
            restore_task("no completed snapshot", volume_ids=[failing], availability_zone="us-east-1a"),
        ]
    )

    unknown = run.result("unknown volume")
    assert unknown["failed"] is True
    assert [error["message"] for error in unknown["errors"]] == [
        "volume_ids: vol-0123456789abcdef0 has no managed snapshot in us-east-1"
    ]
    zone = run.result("zone of another region")
    assert [(error["resource"], error["message"]) for error in zone["errors"]] == [
        (data, "availability_zone eu-west-1a is not a zone of us-east-1")
    ]
    failed = run.result("no completed snapshot")
    assert [(error["code"], error["message"]) for error in failed["errors"]] == [
        ("NoAvailableBackup", "no completed snapshot of {0}: the newest, {1}, is error".format(failing, broken))
    ]
    assert restored_volumes(ec2) == {}


def test_a_500_after_create_volume_succeeded_still_gives_exactly_one_volume_per_source(aws, counting_proxy, tmp_path):
    ec2 = aws.ec2()
    sources = [fleet.add_volume(ec2) for _number in range(8)]
    for volume_id in sources:
        managed_snapshot(ec2, volume_id, 1)
    counting_proxy.configure(error_after_rate=0.5, fault_actions=["CreateVolume"], seed=11)

    play = ansible_run.aws_play(
        counting_proxy.endpoint, [restore_task(volume_ids=sources, availability_zone="us-east-1b")]
    )
    run = ansible_run.run_playbook(play, tmp_path, endpoint=counting_proxy.endpoint)
    result = run.result("restore")

    assert run.rc == 0, result
    assert aws_proxy.count(counting_proxy.stats(), action="CreateVolume", outcome="error_after") > 0
    assert {source: len(volumes) for source, volumes in restored_volumes(ec2).items()} == {s: 1 for s in sources}
