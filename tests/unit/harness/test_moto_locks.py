"""The lock patches of the moto harness behave as AWS documents (snapshot lock, AMI protection, Recycle Bin)."""

import datetime

import pytest
from botocore.exceptions import ClientError

from tests.harness import fleet
from tests.harness import moto_rbin
from tests.harness import moto_snapshot_lock

REGION = "us-east-1"
DAYS = {"RetentionPeriodValue": 7, "RetentionPeriodUnit": "DAYS"}
DELAY = {"UnlockDelay": {"UnlockDelayValue": 7, "UnlockDelayUnit": "DAYS"}}


def code_of(call):
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]["Code"]


def new_snapshot(ec2):
    volume_id = ec2.create_volume(AvailabilityZone=REGION + "a", Size=8)["VolumeId"]
    return ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]


def test_a_locked_snapshot_cannot_be_deleted_until_unlocked_and_bad_requests_are_refused(aws):
    ec2 = aws.ec2(REGION)
    snapshot_id = new_snapshot(ec2)
    ec2.lock_snapshot(SnapshotId=snapshot_id, LockMode="governance", LockDuration=3)

    assert code_of(lambda: ec2.delete_snapshot(SnapshotId=snapshot_id)) == "SnapshotLocked"
    assert code_of(lambda: ec2.lock_snapshot(SnapshotId=snapshot_id, LockMode="forever", LockDuration=1)) == (
        "InvalidParameterValue"
    )
    assert code_of(
        lambda: ec2.lock_snapshot(SnapshotId=snapshot_id, LockMode="governance", LockDuration=1, CoolOffPeriod=2)
    ) == ("InvalidParameterCombination")
    assert code_of(
        lambda: ec2.lock_snapshot(SnapshotId=snapshot_id, LockMode="compliance", LockDuration=1, CoolOffPeriod=73)
    ) == ("InvalidParameterValue")
    assert code_of(lambda: ec2.lock_snapshot(SnapshotId=snapshot_id, LockMode="governance")) == (
        "InvalidParameterCombination"
    )
    ec2.unlock_snapshot(SnapshotId=snapshot_id)
    ec2.delete_snapshot(SnapshotId=snapshot_id)
    assert ec2.describe_locked_snapshots()["Snapshots"] == []


def test_compliance_after_its_cooling_off_period_can_only_be_extended(aws):
    ec2 = aws.ec2(REGION)
    snapshot_id = new_snapshot(ec2)
    ec2.lock_snapshot(SnapshotId=snapshot_id, LockMode="compliance", LockDuration=3, CoolOffPeriod=1)
    [cooling] = ec2.describe_locked_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    assert cooling["LockState"] == "compliance-cooloff"

    moto_snapshot_lock.backdate(fleet.ec2_backend(REGION), snapshot_id, datetime.timedelta(hours=2))

    assert code_of(lambda: ec2.unlock_snapshot(SnapshotId=snapshot_id)) == "IncorrectState"
    assert code_of(lambda: ec2.lock_snapshot(SnapshotId=snapshot_id, LockMode="compliance", LockDuration=1)) == (
        "IncorrectState"
    )
    assert code_of(lambda: ec2.lock_snapshot(SnapshotId=snapshot_id, LockMode="governance", LockDuration=9)) == (
        "IncorrectState"
    )
    extended = ec2.lock_snapshot(SnapshotId=snapshot_id, LockMode="compliance", LockDuration=9)
    assert extended["LockState"] == "compliance"
    assert [
        lock["SnapshotId"]
        for lock in ec2.describe_locked_snapshots(Filters=[{"Name": "lock-state", "Values": ["compliance"]}])[
            "Snapshots"
        ]
    ] == [snapshot_id]

    moto_snapshot_lock.backdate(fleet.ec2_backend(REGION), snapshot_id, datetime.timedelta(days=10))
    [expired] = ec2.describe_locked_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    assert expired["LockState"] == "expired"
    ec2.delete_snapshot(SnapshotId=snapshot_id)


def test_a_protected_ami_cannot_be_deregistered_and_the_cooldown_holds_24_hours(aws):
    ec2 = aws.ec2(REGION)
    [instance_id] = fleet.launch(ec2)
    image_id = ec2.create_image(InstanceId=instance_id, Name="protected")["ImageId"]
    ec2.enable_image_deregistration_protection(ImageId=image_id, WithCooldown=True)

    assert code_of(lambda: ec2.deregister_image(ImageId=image_id)) == "OperationNotPermitted"
    ec2.disable_image_deregistration_protection(ImageId=image_id)
    state = ec2.describe_images(ImageIds=[image_id])["Images"][0]["DeregistrationProtection"]
    assert state.startswith("disabled-until ")
    assert code_of(lambda: ec2.deregister_image(ImageId=image_id)) == "OperationNotPermitted"


def test_a_locked_rule_cannot_be_changed_or_deleted_and_only_region_level_rules_lock(aws):
    rbin = aws.client("rbin", REGION)
    tagged = rbin.create_rule(
        ResourceType="EBS_SNAPSHOT",
        RetentionPeriod=DAYS,
        ResourceTags=[{"ResourceTagKey": "CreatedBy", "ResourceTagValue": "opsvault.aws_backup"}],
    )
    assert code_of(lambda: rbin.lock_rule(Identifier=tagged["Identifier"], LockConfiguration=DELAY)) == (
        "ValidationException"
    )
    rule = rbin.create_rule(ResourceType="EC2_IMAGE", RetentionPeriod=DAYS, LockConfiguration=DELAY)

    assert code_of(lambda: rbin.delete_rule(Identifier=rule["Identifier"])) == "ConflictException"
    assert code_of(
        lambda: rbin.update_rule(
            Identifier=rule["Identifier"], RetentionPeriod={"RetentionPeriodValue": 1, "RetentionPeriodUnit": "DAYS"}
        )
    ) == ("ConflictException")
    assert rbin.unlock_rule(Identifier=rule["Identifier"])["LockState"] == "pending_unlock"
    assert code_of(lambda: rbin.delete_rule(Identifier=rule["Identifier"])) == "ConflictException"
    moto_rbin.end_unlock_delay(rule["Identifier"])
    assert rbin.get_rule(Identifier=rule["Identifier"])["LockState"] == "unlocked"
    rbin.delete_rule(Identifier=rule["Identifier"])
    assert code_of(lambda: rbin.get_rule(Identifier=rule["Identifier"])) == "ResourceNotFoundException"
    assert code_of(
        lambda: rbin.create_rule(
            ResourceType="EBS_SNAPSHOT", RetentionPeriod={"RetentionPeriodValue": 366, "RetentionPeriodUnit": "DAYS"}
        )
    ) == ("ValidationException")
    assert [item["Identifier"] for item in rbin.list_rules(ResourceType="EBS_SNAPSHOT")["Rules"]] == [
        tagged["Identifier"]
    ]
