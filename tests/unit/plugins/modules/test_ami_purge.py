"""ami_purge's AWS steps with botocore's Stubber: pagination (moto never pages), ordering and partial failure."""

import pytest

from ansible_collections.opsvault.aws_backup.plugins.module_utils.ami import SnapshotOwners
from ansible_collections.opsvault.aws_backup.plugins.module_utils.ami import account_of
from ansible_collections.opsvault.aws_backup.plugins.module_utils.fanout import batches_doubling
from ansible_collections.opsvault.aws_backup.plugins.modules import ami_purge
from tests.harness.module_options import StandInModule
from tests.harness.module_options import options_of
from tests.harness.module_options import params_of


def job(clients, check_mode=False, **params):
    module = StandInModule(params_of(ami_purge, **params), check_mode)
    options = ami_purge.parse_options(module.params, check_mode)
    return ami_purge.AmiPurge(module, options, sorted(clients), clients)


def test_describe_region_follows_next_token(stub_client):
    client, stubber = stub_client()
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
        "describe_locked_snapshots",
        {"Snapshots": [{"SnapshotId": "snap-1", "LockState": "governance"}]},
        {"MaxResults": 1000},
    )
    purge = job({"eu-west-1": client})
    with stubber:
        images = purge.describe("eu-west-1")
    assert [image["ImageId"] for image in images] == ["ami-1", "ami-2"]
    assert list(purge.locks["eu-west-1"]) == ["snap-1"]


def owners_filter(snapshot_ids, **extra):
    return dict({"OwnerIds": ["self"], "Filters": [{"Name": "snapshot-id", "Values": snapshot_ids}]}, **extra)


def test_batches_double_from_one_up_to_the_largest():
    sizes = [len(batch) for batch in batches_doubling(list(range(300)), 100)]
    assert sizes == [1, 2, 4, 8, 16, 32, 64, 100, 73]
    assert sum(batches_doubling(list(range(300)), 100), []) == list(range(300))
    assert batches_doubling([], 100) == []


def test_snapshot_owners_describes_only_planned_snapshots_a_batch_at_a_time_when_first_needed(stub_client):
    client, stubber = stub_client()
    planned = ["snap-{0:03d}".format(number) for number in range(10)]
    owners = SnapshotOwners(client, planned, "111122223333")
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


def test_each_snapshot_goes_right_after_its_last_ami_and_never_after_a_failed_deregister_or_when_foreign(stub_client):
    deregister_client, deregister_stubber = stub_client()
    delete_client, delete_stubber = stub_client()
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
    # A failed delete is checked against the snapshot's lock (one set after the plan is no failure): none here.
    delete_stubber.add_response("describe_locked_snapshots", {"Snapshots": []}, {"SnapshotIds": ["snap-in-use"]})
    to_delete = [
        snapshot("snap-ok", "ami-ok"),
        snapshot("snap-shared", "ami-ok", "ami-refused"),
        snapshot("snap-refused", "ami-refused"),
        snapshot("snap-in-use", "ami-gone-already"),
        snapshot("snap-foreign", "ami-gone-already"),
    ]
    planned = [item["snapshot_id"] for item in to_delete]
    purge = job({"eu-west-1": deregister_client}, max_concurrency=1)
    purge.make_clients = lambda regions: {"eu-west-1": delete_client}
    purge.owners = {"eu-west-1": SnapshotOwners(deregister_client, planned, "111122223333")}
    purge.to_delete = to_delete

    with deregister_stubber, delete_stubber:
        deregistered = purge.apply_all([dereg("ami-ok"), dereg("ami-refused"), dereg("ami-gone-already")])
    deleted, errors, kept = purge.deleted, purge.errors, purge.skipped

    assert [item["image_id"] for item in deregistered] == ["ami-ok", "ami-gone-already"]
    assert deleted == [
        {
            "snapshot_id": "snap-ok",
            "image_id": "ami-ok",
            "image_ids": ["ami-ok"],
            "region": "eu-west-1",
            "state": "deleted",
        }
    ]
    assert [(e["resource"], e["code"], e["action"]) for e in errors] == [
        ("ami-refused", "UnauthorizedOperation", "deregister_image"),
        ("snap-in-use", "InvalidSnapshot.InUse", "delete_snapshot"),
    ]
    assert [(item["snapshot_id"], item["reason"]) for item in kept] == [
        ("snap-foreign", "owned by 444455556666, not by this account"),
        ("snap-shared", "not deleted: ami-refused could not be deregistered"),
        ("snap-refused", "not deleted: ami-refused could not be deregistered"),
    ]


def test_a_future_as_of_outside_check_mode_is_refused_naming_the_option():
    with pytest.raises(ValueError, match="as_of 2099-01-01 is in the future.*allow_future_as_of"):
        options_of(ami_purge, as_of="2099-01-01")
    assert options_of(ami_purge, check_mode=True, as_of="2099-01-01")["as_of"].year == 2099
    assert options_of(ami_purge, as_of="2099-01-01", allow_future_as_of=True)["as_of"].year == 2099


@pytest.mark.parametrize("keep_min", [0, -1])
def test_keep_min_below_one_is_refused(keep_min):
    with pytest.raises(ValueError, match="keep_min must be at least 1"):
        options_of(ami_purge, keep_min=keep_min)


def test_the_account_is_the_single_owner_of_the_images_described_for_owners_self():
    assert account_of([{"OwnerId": "123456789012"}, {"OwnerId": "123456789012"}]) == "123456789012"
    assert account_of([]) is None
    assert account_of([{"OwnerId": "123456789012"}, {"OwnerId": "999999999999"}]) is None
