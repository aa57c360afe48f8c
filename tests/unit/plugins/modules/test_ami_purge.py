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


def test_describe_region_follows_next_token_for_images_and_snapshots():
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
    stubber.add_response(
        "describe_snapshots", {"Snapshots": [{"SnapshotId": "snap-1"}], "NextToken": "s2"}, {"OwnerIds": ["self"]}
    )
    stubber.add_response(
        "describe_snapshots", {"Snapshots": [{"SnapshotId": "snap-2"}]}, {"OwnerIds": ["self"], "NextToken": "s2"}
    )
    with stubber:
        images, snapshots = ami_purge.describe_region(client)
    stubber.assert_no_pending_responses()
    assert [image["ImageId"] for image in images] == ["ami-1", "ami-2"]
    assert [snapshot["SnapshotId"] for snapshot in snapshots] == ["snap-1", "snap-2"]


def dereg(image_id):
    return {"image_id": image_id, "region": "eu-west-1", "snapshot_ids": []}


def snapshot(snapshot_id, *image_ids):
    return {"snapshot_id": snapshot_id, "image_id": image_ids[0], "image_ids": list(image_ids), "region": "eu-west-1"}


def test_each_snapshot_goes_right_after_its_last_ami_and_never_after_a_failed_deregister():
    client, stubber = stubbed_client()
    stubber.add_response("deregister_image", {}, {"ImageId": "ami-ok"})
    stubber.add_response("delete_snapshot", {}, {"SnapshotId": "snap-ok"})
    stubber.add_client_error("deregister_image", "UnauthorizedOperation", "not authorized", 403)
    stubber.add_client_error("deregister_image", "InvalidAMIID.Unavailable", "no longer available")
    stubber.add_client_error("delete_snapshot", "InvalidSnapshot.InUse", "in use by ami-x")
    errors, kept = [], []
    to_delete = [
        snapshot("snap-ok", "ami-ok"),
        snapshot("snap-shared", "ami-ok", "ami-refused"),
        snapshot("snap-refused", "ami-refused"),
        snapshot("snap-in-use", "ami-gone-already"),
    ]

    with stubber:
        deregistered, deleted = ami_purge.apply_plan(
            {"eu-west-1": client},
            [dereg("ami-ok"), dereg("ami-refused"), dereg("ami-gone-already")],
            to_delete,
            1,
            errors,
            kept,
        )
    stubber.assert_no_pending_responses()

    assert [item["image_id"] for item in deregistered] == ["ami-ok", "ami-gone-already"]
    assert deleted == [{"snapshot_id": "snap-ok", "image_id": "ami-ok", "image_ids": ["ami-ok"], "region": "eu-west-1"}]
    assert [(e["resource"], e["code"], e["action"]) for e in errors] == [
        ("ami-refused", "UnauthorizedOperation", "deregister_image"),
        ("snap-in-use", "InvalidSnapshot.InUse", "delete_snapshot"),
    ]
    assert [(item["snapshot_id"], item["reason"]) for item in kept] == [
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
