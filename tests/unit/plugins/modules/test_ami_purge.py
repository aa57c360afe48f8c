"""ami_purge's AWS steps with botocore's Stubber: pagination (moto never pages), ordering and partial failure."""

import datetime

import boto3
import pytest
from botocore.stub import Stubber

from ansible_collections.opsvault.aws_backup.plugins.modules import ami_purge

TODAY = datetime.date(2026, 11, 23)


def stubbed_client():
    client = boto3.client("ec2", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    return client, Stubber(client)


def test_describe_region_follows_next_token():
    client, stubber = stubbed_client()
    stubber.add_response(
        "describe_images",
        {"Images": [{"ImageId": "ami-1"}], "NextToken": "page-2"},
        {"Owners": ["self"], "IncludeDisabled": True},
    )
    stubber.add_response(
        "describe_images",
        {"Images": [{"ImageId": "ami-2"}]},
        {"Owners": ["self"], "IncludeDisabled": True, "NextToken": "page-2"},
    )
    with stubber:
        images = ami_purge.describe_region(client)
    stubber.assert_no_pending_responses()
    assert [image["ImageId"] for image in images] == ["ami-1", "ami-2"]


def owners_filter(snapshot_ids, **extra):
    return dict({"OwnerIds": ["self"], "Filters": [{"Name": "snapshot-id", "Values": snapshot_ids}]}, **extra)


def test_batches_double_from_one_up_to_the_largest():
    sizes = [len(batch) for batch in ami_purge.batches_doubling(list(range(300)), 100)]
    assert sizes == [1, 2, 4, 8, 16, 32, 64, 100, 73]
    assert sum(ami_purge.batches_doubling(list(range(300)), 100), []) == list(range(300))
    assert ami_purge.batches_doubling([], 100) == []


def test_snapshot_owners_describes_only_planned_snapshots_a_batch_at_a_time_when_first_needed():
    client, stubber = stubbed_client()
    planned = ["snap-{0:03d}".format(number) for number in range(10)]
    owners = ami_purge.SnapshotOwners(client, planned, "111122223333")
    assert owners.batches == [planned[:1], planned[1:3], planned[3:7], planned[7:]]
    stubber.add_response(
        "describe_snapshots",
        {"Snapshots": [{"SnapshotId": "snap-000", "OwnerId": "111122223333"}]},
        owners_filter(["snap-000"]),
    )
    stubber.add_response(
        "describe_snapshots",
        {"Snapshots": [{"SnapshotId": "snap-001", "OwnerId": "111122223333"}], "NextToken": "p2"},
        owners_filter(planned[1:3]),
    )
    stubber.add_response(
        "describe_snapshots",
        {"Snapshots": [{"SnapshotId": "snap-002", "OwnerId": "111122223333"}]},
        owners_filter(planned[1:3], NextToken="p2"),
    )
    with stubber:
        assert owners.owners_for("snap-000") == {"snap-000": "111122223333"}
        assert owners.owners_for("snap-002")["snap-001"] == "111122223333"
        assert owners.owners_for("snap-001")["snap-002"] == "111122223333"
        stubber.assert_no_pending_responses()
        stubber.add_response(
            "describe_snapshots",
            {"Snapshots": [{"SnapshotId": "snap-008", "OwnerId": "444455556666"}]},
            owners_filter(planned[7:]),
        )
        assert owners.owners_for("snap-009").get("snap-008") == "444455556666"
        assert "snap-003" not in owners.owners_for("snap-007")
    stubber.assert_no_pending_responses()


def dereg(image_id):
    return {"image_id": image_id, "region": "eu-west-1", "snapshot_ids": []}


def snapshot(snapshot_id, *image_ids):
    return {
        "snapshot_id": snapshot_id,
        "image_id": image_ids[0],
        "image_ids": list(image_ids),
        "name": image_ids[0] + "-name",
        "region": "eu-west-1",
    }


def test_each_snapshot_goes_right_after_its_last_ami_and_never_after_a_failed_deregister_or_when_foreign():
    deregister_client, deregister_stubber = stubbed_client()
    delete_client, delete_stubber = stubbed_client()
    deregister_stubber.add_response("deregister_image", {}, {"ImageId": "ami-ok"})
    deregister_stubber.add_response(
        "describe_snapshots",
        {"Snapshots": [{"SnapshotId": "snap-ok", "OwnerId": "111122223333"}]},
        owners_filter(["snap-ok"]),
    )
    delete_stubber.add_response("delete_snapshot", {}, {"SnapshotId": "snap-ok"})
    deregister_stubber.add_client_error("deregister_image", "UnauthorizedOperation", "not authorized", 403)
    deregister_stubber.add_client_error("deregister_image", "InvalidAMIID.Unavailable", "no longer available")
    deregister_stubber.add_response(
        "describe_snapshots",
        {
            "Snapshots": [
                {"SnapshotId": "snap-in-use", "OwnerId": "111122223333"},
                {"SnapshotId": "snap-foreign", "OwnerId": "444455556666"},
            ]
        },
        owners_filter(["snap-in-use", "snap-foreign"]),
    )
    delete_stubber.add_client_error("delete_snapshot", "InvalidSnapshot.InUse", "in use by ami-x")
    errors, kept = [], []
    to_delete = [
        snapshot("snap-ok", "ami-ok"),
        snapshot("snap-shared", "ami-ok", "ami-refused"),
        snapshot("snap-refused", "ami-refused"),
        snapshot("snap-in-use", "ami-gone-already"),
        snapshot("snap-foreign", "ami-gone-already"),
    ]
    planned = [item["snapshot_id"] for item in to_delete]
    owners = {"eu-west-1": ami_purge.SnapshotOwners(deregister_client, planned, "111122223333")}

    with deregister_stubber, delete_stubber:
        deregistered, deleted = ami_purge.apply_plan(
            {"eu-west-1": deregister_client},
            {"eu-west-1": delete_client},
            owners,
            [dereg("ami-ok"), dereg("ami-refused"), dereg("ami-gone-already")],
            to_delete,
            1,
            errors,
            kept,
        )
    deregister_stubber.assert_no_pending_responses()
    delete_stubber.assert_no_pending_responses()

    assert [item["image_id"] for item in deregistered] == ["ami-ok", "ami-gone-already"]
    assert deleted == [{"snapshot_id": "snap-ok", "image_id": "ami-ok", "image_ids": ["ami-ok"], "region": "eu-west-1"}]
    assert [(e["resource"], e["code"], e["action"]) for e in errors] == [
        ("ami-refused", "UnauthorizedOperation", "deregister_image"),
        ("snap-in-use", "InvalidSnapshot.InUse", "delete_snapshot"),
    ]
    assert [(item["snapshot_id"], item["reason"]) for item in kept] == [
        ("snap-foreign", "owned by 444455556666, not by this account"),
        ("snap-shared", "not deleted: ami-refused could not be deregistered"),
        ("snap-refused", "not deleted: ami-refused could not be deregistered"),
    ]


@pytest.mark.parametrize("value", ["2026-13-01", "2026-02-30", "20261201", "tomorrow", "2026-12-01T00:00:00", " "])
def test_as_of_must_be_a_yyyy_mm_dd_date(value):
    with pytest.raises(ValueError, match="as_of {0!r} is not a date".format(value)):
        ami_purge.parse_as_of(value, TODAY)


def test_as_of_defaults_to_today():
    assert ami_purge.parse_as_of(None, TODAY) == TODAY
    assert ami_purge.parse_as_of(" 2027-01-31 ", TODAY) == datetime.date(2027, 1, 31)


def test_the_account_is_the_single_owner_of_the_images_described_for_owners_self():
    assert ami_purge.account_of([{"OwnerId": "123456789012"}, {"OwnerId": "123456789012"}]) == "123456789012"
    assert ami_purge.account_of([]) is None
    assert ami_purge.account_of([{"OwnerId": "123456789012"}, {"OwnerId": "999999999999"}]) is None
