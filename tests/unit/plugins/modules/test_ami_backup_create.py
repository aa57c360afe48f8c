"""CreateImage retries: InvalidAMIName.Duplicate means our own earlier attempt went through."""

import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY

from ansible_collections.opsvault.aws_backup.plugins.modules import ami_backup
from tests.harness.module_options import StandInModule
from tests.harness.module_options import options_of

ITEM = {
    "region": "us-east-1",
    "instance_id": "i-0aaa",
    "name": "web-i-0aaa-20261123T010000Z",
    "reboot": False,
    "delete_on": "2026-11-30",
    "retention": "7",
    "tags": {"CreatedBy": "opsvault.aws_backup", "BackupPolicy": "default", "SourceInstanceId": "i-0aaa"},
}


def create_image(client):
    job = ami_backup.AmiBackup(StandInModule(), options_of(ami_backup), ["us-east-1"], {"us-east-1": client})
    return job.apply(ITEM)


def expect_duplicate(stubber, owner_instance):
    stubber.add_client_error("create_image", "InvalidAMIName.Duplicate", "AMI name is already in use")
    stubber.add_response(
        "describe_images",
        {
            "Images": [
                {
                    "ImageId": "ami-0first",
                    "State": "pending",
                    "Tags": [{"Key": "SourceInstanceId", "Value": owner_instance}],
                }
            ]
        },
        {"Owners": ["self"], "Filters": [{"Name": "name", "Values": [ITEM["name"]]}]},
    )


def test_create_image_sends_tags_for_image_and_snapshots_in_one_call(stub_client):
    client, stubber = stub_client("ec2", "us-east-1")
    stubber.add_response(
        "create_image",
        {"ImageId": "ami-0new"},
        {
            "InstanceId": "i-0aaa",
            "Name": ITEM["name"],
            "Description": ANY,
            "NoReboot": True,
            "TagSpecifications": [
                {"ResourceType": "image", "Tags": ANY},
                {"ResourceType": "snapshot", "Tags": ANY},
            ],
        },
    )
    with stubber:
        image = create_image(client)
    assert (image["image_id"], image["state"]) == ("ami-0new", "pending")


def test_duplicate_name_from_our_own_retry_counts_as_done(stub_client):
    client, stubber = stub_client("ec2", "us-east-1")
    expect_duplicate(stubber, "i-0aaa")
    with stubber:
        image = create_image(client)
    assert (image["image_id"], image["state"], image["instance_id"]) == ("ami-0first", "pending", "i-0aaa")


def test_duplicate_name_of_another_instance_is_an_error(stub_client):
    client, stubber = stub_client("ec2", "us-east-1")
    expect_duplicate(stubber, "i-0other")
    with stubber:
        with pytest.raises(ClientError, match="InvalidAMIName.Duplicate"):
            create_image(client)
