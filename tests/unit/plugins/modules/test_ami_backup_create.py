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


def test_describe_yields_each_page_of_instances_with_doubling_page_sizes(stub_client):
    client, stubber = stub_client("ec2", "us-east-1")
    marker = [{"Name": "tag:CreatedBy", "Values": ["opsvault.aws_backup"]}]
    older, newer = (
        {
            "ImageId": image_id,
            "State": "available",
            "CreationDate": created,
            "Tags": [{"Key": "CreatedBy", "Value": "opsvault.aws_backup"}, {"Key": "SourceInstanceId", "Value": "i-1"}],
        }
        for image_id, created in (("ami-old", "2026-11-01T00:00:00.000Z"), ("ami-new", "2026-11-02T00:00:00.000Z"))
    )
    stubber.add_response(
        "describe_images", {"Images": [older], "NextToken": "images-2"}, {"Owners": ["self"], "Filters": marker}
    )
    stubber.add_response(
        "describe_images", {"Images": [newer]}, {"Owners": ["self"], "Filters": marker, "NextToken": "images-2"}
    )
    selector = [{"Name": "tag-key", "Values": ["Backup"]}]
    for number, (size, token, following) in enumerate([(10, None, "p2"), (20, "p2", "p3"), (40, "p3", None)]):
        answer = {
            "Reservations": [{"Instances": [{"InstanceId": "i-{0}".format(number), "State": {"Name": "running"}}]}]
        }
        if following:
            answer["NextToken"] = following
        stubber.add_response(
            "describe_instances",
            answer,
            dict({"Filters": selector, "MaxResults": size}, **({"NextToken": token} if token else {})),
        )
    asked = []
    client.meta.events.register("before-parameter-build.ec2.DescribeInstances", lambda **kwargs: asked.append(1))
    job = ami_backup.AmiBackup(StandInModule(), options_of(ami_backup), ["us-east-1"], {"us-east-1": client})
    with stubber:
        parts = job.describe("us-east-1")
        instances, images = next(parts)
        assert len(asked) == 1  # the first page is handed over before the second is asked for
        assert [instance["InstanceId"] for instance in instances] == ["i-0"]
        assert [image["ImageId"] for image in images] == ["ami-new"]
        assert [[i["InstanceId"] for i in part] for part, _images in parts] == [["i-1"], ["i-2"]]
        stubber.assert_no_pending_responses()
