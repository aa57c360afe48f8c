"""The purges and the locks of vault_guard: a locked snapshot or a protected AMI is left alone, with why.

moto 5.2.5 has no snapshot lock and no deregistration protection; the harness adds both as AWS documents
them (tests/harness/moto_snapshot_lock.py, tests/harness/moto_image_protection.py): DeleteSnapshot of a
locked snapshot and DeregisterImage of a protected AMI fail there as on AWS.
"""

import datetime

from tests.harness import ansible_run
from tests.harness import fleet
from tests.harness import moto_image_protection
from tests.harness import moto_snapshot_lock

REGION = "us-east-1"
MANAGED = {"CreatedBy": "opsvault.aws_backup"}
MONTH_AGO = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=30)


def date_in(days):
    return (datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=days)).isoformat()


def purge(module, name, **params):
    return ansible_run.task(module, name, **params)


def snapshot_ids(ec2):
    return {item["SnapshotId"] for item in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}


def skipped_by_resource(result):
    return {entry["resource"]: entry for entry in result["skipped_resources"]}


def lock_until(ec2, snapshot_id, days, mode="governance"):
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days)
    return ec2.lock_snapshot(SnapshotId=snapshot_id, LockMode=mode, ExpirationDate=moment)["LockExpiresOn"]


def expired_volume_snapshots(ec2):
    """Two managed snapshots of one volume: an old expired one (the purge's to take) and the newest."""
    [instance_id] = fleet.launch(ec2)
    volume_id = fleet.add_volume(ec2, instance_id, "/dev/sdf")
    old = fleet.add_snapshot(ec2, volume_id, dict(MANAGED, DeleteOn=date_in(-3), VolumeId=volume_id))
    fleet.set_snapshot(REGION, old, started=MONTH_AGO)
    newest = fleet.add_snapshot(ec2, volume_id, dict(MANAGED, DeleteOn=date_in(7), VolumeId=volume_id))
    return old, newest


def test_snapshot_purge_leaves_a_locked_snapshot_until_its_lock_ends_and_says_why(aws, play):
    ec2 = aws.ec2(REGION)
    old, newest = expired_volume_snapshots(ec2)
    expires = lock_until(ec2, old, 2)

    run = play([purge("snapshot_purge", "preview", check_mode=True), purge("snapshot_purge", "purge")])

    assert run.rc == 0, run.stdout
    for name in ("preview", "purge"):
        result = run.result(name)
        assert result["deleted_snapshots"] == []
        entry = skipped_by_resource(result)[old]
        assert entry["locked_until"] == expires.astimezone(datetime.timezone.utc).isoformat()
        assert entry["reason"].startswith("expired on {0}; locked (governance) until".format(date_in(-3)))
    assert run.result("purge")["errors"] == []
    assert {old, newest} <= snapshot_ids(ec2)

    moto_snapshot_lock.backdate(fleet.ec2_backend(REGION), old, datetime.timedelta(days=3))
    after_expiry = play([purge("snapshot_purge", "purge")])

    assert after_expiry.rc == 0, after_expiry.stdout
    assert [item["snapshot_id"] for item in after_expiry.result("purge")["deleted_snapshots"]] == [old]
    assert old not in snapshot_ids(ec2) and newest in snapshot_ids(ec2)


def test_a_governance_lock_removed_by_a_user_lets_the_next_purge_delete(aws, play):
    ec2 = aws.ec2(REGION)
    old, newest = expired_volume_snapshots(ec2)
    lock_until(ec2, old, 30)
    first = play([purge("snapshot_purge", "purge")])
    assert first.rc == 0, first.stdout
    assert old in snapshot_ids(ec2)

    ec2.unlock_snapshot(SnapshotId=old)
    second = play([purge("snapshot_purge", "purge")])

    assert second.rc == 0, second.stdout
    assert [item["snapshot_id"] for item in second.result("purge")["deleted_snapshots"]] == [old]
    assert snapshot_ids(ec2) == {newest}


def test_a_compliance_lock_after_its_cool_off_holds_and_cannot_be_unlocked(aws, play):
    ec2 = aws.ec2(REGION)
    old, newest = expired_volume_snapshots(ec2)
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=2)
    ec2.lock_snapshot(SnapshotId=old, LockMode="compliance", ExpirationDate=moment, CoolOffPeriod=1)
    moto_snapshot_lock.backdate(fleet.ec2_backend(REGION), old, datetime.timedelta(hours=2))
    refusals = []
    for call in (
        lambda: ec2.unlock_snapshot(SnapshotId=old),
        lambda: ec2.lock_snapshot(SnapshotId=old, LockMode="governance", LockDuration=5),
        lambda: ec2.lock_snapshot(SnapshotId=old, LockMode="compliance", LockDuration=1),
    ):
        try:
            call()
        except ec2.exceptions.ClientError as exc:
            refusals.append(exc.response["Error"]["Code"])
    assert len(refusals) == 3

    run = play([purge("snapshot_purge", "purge")])

    assert run.rc == 0, run.stdout
    result = run.result("purge")
    assert "locked (compliance) until" in skipped_by_resource(result)[old]["reason"]
    assert old in snapshot_ids(ec2)


def expired_ami(ec2, instance_id, name, snapshot_tags=True):
    tags = dict(MANAGED, DeleteOn=date_in(-3), SourceInstanceId=instance_id, BackupPolicy="default")
    specs = [{"ResourceType": "image", "Tags": fleet.tag_list(tags)}]
    if snapshot_tags:
        specs.append({"ResourceType": "snapshot", "Tags": fleet.tag_list(dict(MANAGED, DeleteOn=date_in(-3)))})
    image_id = ec2.create_image(InstanceId=instance_id, Name=name, TagSpecifications=specs)["ImageId"]
    fleet.set_image(REGION, image_id, created=MONTH_AGO)
    return image_id


def current_ami(ec2, instance_id):
    tags = dict(MANAGED, DeleteOn=date_in(7), SourceInstanceId=instance_id, BackupPolicy="default")
    specs = [{"ResourceType": "image", "Tags": fleet.tag_list(tags)}]
    return ec2.create_image(InstanceId=instance_id, Name="current", TagSpecifications=specs)["ImageId"]


def root_snapshot(ec2, image_id):
    [mapping] = ec2.describe_images(ImageIds=[image_id])["Images"][0]["BlockDeviceMappings"]
    return mapping["Ebs"]["SnapshotId"]


def test_ami_purge_leaves_a_protected_ami_alone_unless_allowed(aws, play):
    ec2 = aws.ec2(REGION)
    [instance_id] = fleet.launch(ec2)
    protected = expired_ami(ec2, instance_id, "protected-old")
    protected_snapshot = root_snapshot(ec2, protected)
    current_ami(ec2, instance_id)
    ec2.enable_image_deregistration_protection(ImageId=protected)

    run = play(
        [
            purge("ami_purge", "refused"),
            purge("ami_purge", "preview", check_mode=True, remove_deregistration_protection=True),
        ]
    )

    assert run.rc == 0, run.stdout
    refused, preview = run.result("refused"), run.result("preview")
    assert refused["deregistered"] == [] and refused["errors"] == [] and refused["changed"] is False
    entry = skipped_by_resource(refused)[protected]
    assert entry["locked_until"] == "protected"
    assert "remove_deregistration_protection is false" in entry["reason"]
    assert "deregistration protection" in skipped_by_resource(refused)[protected_snapshot]["reason"]
    assert [item["image_id"] for item in preview["deregistered"]] == [protected]
    assert preview["deregistration_protection_removed"][0]["state"] == "planned"
    assert protected in fleet.images(ec2)
    assert ec2.describe_images(ImageIds=[protected])["Images"][0]["DeregistrationProtection"] == "enabled"

    allowed = play([purge("ami_purge", "allowed", remove_deregistration_protection=True)])

    assert allowed.rc == 0, allowed.stdout
    result = allowed.result("allowed")
    assert [item["image_id"] for item in result["deregistered"]] == [protected]
    assert [item["image_id"] for item in result["deregistration_protection_removed"]] == [protected]
    assert [item["snapshot_id"] for item in result["deleted_snapshots"]] == [protected_snapshot]
    assert protected not in fleet.images(ec2)


def test_ami_purge_unprotects_an_ami_with_the_cooldown_and_deregisters_it_after_the_cooldown(aws, play):
    ec2 = aws.ec2(REGION)
    [instance_id] = fleet.launch(ec2)
    protected = expired_ami(ec2, instance_id, "cooldown-old")
    current_ami(ec2, instance_id)
    ec2.enable_image_deregistration_protection(ImageId=protected, WithCooldown=True)

    run = play([purge("ami_purge", "first", remove_deregistration_protection=True), purge("ami_purge", "second")])

    assert run.rc == 0, run.stdout
    first, second = run.result("first"), run.result("second")
    assert first["deregistered"] == [] and first["changed"] is True
    [removed] = first["deregistration_protection_removed"]
    assert removed["image_id"] == protected and removed["deregistrable_after"]
    assert skipped_by_resource(first)[protected]["locked_until"] == removed["deregistrable_after"]
    state = ec2.describe_images(ImageIds=[protected])["Images"][0]["DeregistrationProtection"]
    assert state.startswith("disabled-until ")
    assert skipped_by_resource(second)[protected]["locked_until"].startswith(date_in(1))

    moto_image_protection.end_cooldown(fleet.ec2_backend(REGION).amis[protected])
    after = play([purge("ami_purge", "after")])

    assert after.rc == 0, after.stdout
    assert [item["image_id"] for item in after.result("after")["deregistered"]] == [protected]


def test_ami_purge_deregisters_the_ami_and_leaves_its_locked_snapshot_with_locked_until(aws, play):
    ec2 = aws.ec2(REGION)
    [instance_id] = fleet.launch(ec2)
    expired = expired_ami(ec2, instance_id, "locked-snapshot")
    snapshot_id = root_snapshot(ec2, expired)
    current_ami(ec2, instance_id)
    expires = lock_until(ec2, snapshot_id, 3)

    run = play([purge("ami_purge", "purge")])

    assert run.rc == 0, run.stdout
    result = run.result("purge")
    assert [item["image_id"] for item in result["deregistered"]] == [expired]
    assert result["deleted_snapshots"] == [] and result["errors"] == []
    entry = skipped_by_resource(result)[snapshot_id]
    assert entry["locked_until"] == expires.astimezone(datetime.timezone.utc).isoformat()
    assert snapshot_id in snapshot_ids(ec2)


def test_vault_guard_locks_then_snapshot_purge_keeps_the_lock_until_delete_on(aws, play):
    ec2 = aws.ec2(REGION)
    [instance_id] = fleet.launch(ec2)
    volume_id = fleet.add_volume(ec2, instance_id, "/dev/sdf")
    soon = fleet.add_snapshot(ec2, volume_id, dict(MANAGED, DeleteOn=date_in(2), VolumeId=volume_id))
    fleet.set_snapshot(REGION, soon, started=MONTH_AGO)
    fleet.add_snapshot(ec2, volume_id, dict(MANAGED, DeleteOn=date_in(9), VolumeId=volume_id))

    run = play(
        [
            ansible_run.task("vault_guard", "guard", protect_images=False),
            purge("snapshot_purge", "early", as_of=date_in(2), allow_future_as_of=True),
        ]
    )

    assert run.rc == 0, run.stdout
    early = run.result("early")
    assert early["deleted_snapshots"] == []
    assert skipped_by_resource(early)[soon]["locked_until"] == "{0}T00:00:00+00:00".format(date_in(2))
    assert soon in snapshot_ids(ec2)
