"""backup_coverage's AWS calls, with botocore's Stubber where moto cannot show them: every list is
paginated (moto never pages), with the filters that keep the calls per region, not per resource."""

import pytest

from ansible_collections.opsvault.aws_backup.plugins.modules import backup_coverage
from tests.harness.module_options import options_of

LIVE = [{"Name": "instance-state-name", "Values": backup_coverage.LIVE_INSTANCE_STATES}]


def test_each_list_follows_next_token_and_public_snapshots_come_from_one_filtered_call(stub_client):
    client, stubber = stub_client()
    pages = [
        (
            "describe_instances",
            {"Filters": LIVE},
            "Reservations",
            [{"Instances": [{"InstanceId": "i-1"}]}],
            [{"Instances": [{"InstanceId": "i-2"}]}],
        ),
        (
            "describe_snapshots",
            {"OwnerIds": ["self"], "RestorableByUserIds": ["all"]},
            "Snapshots",
            [{"SnapshotId": "snap-public"}],
            [],
        ),
        ("describe_volumes", {}, "Volumes", [{"VolumeId": "vol-1"}], [{"VolumeId": "vol-2"}]),
        ("describe_images", {"Owners": ["self"]}, "Images", [{"ImageId": "ami-1"}], [{"ImageId": "ami-2"}]),
        (
            "describe_snapshots",
            {"OwnerIds": ["self"]},
            "Snapshots",
            [{"SnapshotId": "snap-1"}],
            [{"SnapshotId": "snap-2"}],
        ),
    ]
    for operation, params, key, first, second in pages:
        stubber.add_response(operation, {key: first, "NextToken": "page-2"}, params)
        stubber.add_response(operation, {key: second}, dict(params, NextToken="page-2"))
    stubber.activate()

    described = backup_coverage.describe_region(client, options_of(backup_coverage))

    assert [item["InstanceId"] for item in described["instances"]] == ["i-1", "i-2"]
    assert [item["VolumeId"] for item in described["volumes"]] == ["vol-1", "vol-2"]
    assert [item["ImageId"] for item in described["images"]] == ["ami-1", "ami-2"]
    assert [item["SnapshotId"] for item in described["snapshots"]] == ["snap-1", "snap-2"]
    assert described["public_snapshot_ids"] == ["snap-public"]


def test_host_results_is_a_folder_or_an_s3_location_and_a_bad_one_is_named(tmp_path):
    assert options_of(backup_coverage, host_results=str(tmp_path))["host_results"] == str(tmp_path)
    assert options_of(backup_coverage, host_results="s3://reports/daily/")["host_results"] == "s3://reports/daily/"
    for bad in (str(tmp_path / "missing"), "s3:///daily/"):
        with pytest.raises(ValueError, match=repr(bad)):
            options_of(backup_coverage, host_results=bad)
