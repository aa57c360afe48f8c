"""The restore modules' Describe calls with botocore's Stubber (moto never pages): every list follows NextToken
over several pages, with the server-side filters that keep the calls per region, never per resource."""

from ansible_collections.opsvault.aws_backup.plugins.module_utils import restore
from ansible_collections.opsvault.aws_backup.plugins.modules import instance_restore
from ansible_collections.opsvault.aws_backup.plugins.modules import volume_restore
from tests.harness.module_options import options_of

ACCOUNT = "123456789012"
MANAGED = [{"Name": "tag:CreatedBy", "Values": ["opsvault.aws_backup"]}]


def paged(stubber, operation, params, key, pages):
    """Stub ``operation`` answering ``pages`` (lists of items) one after the other, linked by NextToken."""
    for number, items in enumerate(pages):
        answer = {key: items}
        if number < len(pages) - 1:
            answer["NextToken"] = "page-{0}".format(number + 2)
        stubber.add_response(
            operation, answer, dict(params, NextToken="page-{0}".format(number + 1)) if number else params
        )


def tagged(item, **tags):
    return dict(item, Tags=[{"Key": key, "Value": value} for key, value in tags.items()])


def test_instance_restore_describes_images_sources_and_earlier_restores_over_every_page(stub_client):
    client, stubber = stub_client()
    options = options_of(
        instance_restore, instance_ids=["i-1"], image_ids=["ami-3"], subnet_id="subnet-1", restore_id="drill-1"
    )
    images = [
        [tagged({"ImageId": "ami-1"}, SourceInstanceId="i-1")],
        [tagged({"ImageId": "ami-2"}, SourceInstanceId="i-1")],
        [tagged({"ImageId": "ami-3"}, SourceInstanceId="i-2")],
    ]
    paged(stubber, "describe_images", {"Owners": ["self"], "Filters": MANAGED}, "Images", images)
    sources = [[{"Instances": [{"InstanceId": "i-1"}]}], [], [{"Instances": [{"InstanceId": "i-2"}]}]]
    by_id = {"Filters": [{"Name": "instance-id", "Values": ["i-1", "i-2"]}]}
    paged(stubber, "describe_instances", by_id, "Reservations", sources)
    earlier = [[{"Instances": [{"InstanceId": "i-9"}]}], [{"Instances": [{"InstanceId": "i-10"}]}]]
    by_restore = {"Filters": [{"Name": "tag:RestoreId", "Values": ["drill-1"]}]}
    paged(stubber, "describe_instances", by_restore, "Reservations", earlier)
    stubber.activate()

    found_images, found_sources, restored = restore.describe_instance_restores(client, options)

    assert [image["ImageId"] for image in found_images] == ["ami-1", "ami-2", "ami-3"]
    assert [instance["InstanceId"] for instance in found_sources] == ["i-1", "i-2"]
    assert [instance["InstanceId"] for instance in restored] == ["i-9", "i-10"]


def test_instance_restore_by_tag_asks_for_live_tagged_instances_page_after_page(stub_client):
    client, stubber = stub_client()
    options = options_of(instance_restore, tag_value="ProductionDaily", subnet_id="subnet-1", restore_id="r")
    paged(stubber, "describe_images", {"Owners": ["self"], "Filters": MANAGED}, "Images", [[], []])
    selection = {
        "Filters": [
            {"Name": "tag:Backup", "Values": ["ProductionDaily"]},
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
        ]
    }
    pages = [[{"Instances": [{"InstanceId": "i-{0}".format(page)}]}] for page in range(1, 4)]
    paged(stubber, "describe_instances", selection, "Reservations", pages)
    paged(
        stubber, "describe_instances", {"Filters": [{"Name": "tag:RestoreId", "Values": ["r"]}]}, "Reservations", [[]]
    )
    stubber.activate()

    _images, found_sources, restored = restore.describe_instance_restores(client, options)

    assert [instance["InstanceId"] for instance in found_sources] == ["i-1", "i-2", "i-3"]
    assert restored == []


def test_volume_restore_describes_snapshots_and_earlier_volumes_over_every_page_and_keeps_its_own(stub_client):
    client, stubber = stub_client()
    options = options_of(
        volume_restore, volume_ids=["vol-1", "vol-2"], availability_zone="eu-west-1a", restore_id="drill-1"
    )
    filters = MANAGED + [{"Name": "tag:VolumeId", "Values": ["vol-1", "vol-2"]}]
    snapshots = [
        [{"SnapshotId": "snap-1", "OwnerId": ACCOUNT}],
        [{"SnapshotId": "snap-public", "OwnerId": "999999999999"}],
        [{"SnapshotId": "snap-2", "OwnerId": ACCOUNT}],
    ]
    paged(stubber, "describe_snapshots", {"OwnerIds": ["self"], "Filters": filters}, "Snapshots", snapshots)
    volumes = [[{"VolumeId": "vol-restored-1"}], [{"VolumeId": "vol-restored-2"}]]
    paged(
        stubber, "describe_volumes", {"Filters": [{"Name": "tag:RestoreId", "Values": ["drill-1"]}]}, "Volumes", volumes
    )
    stubber.add_response(
        "describe_availability_zones",
        {"AvailabilityZones": [{"ZoneName": "eu-west-1a"}]},
        {"Filters": [{"Name": "zone-name", "Values": ["eu-west-1a"]}]},
    )
    stubber.activate()

    found, restored, target = restore.describe_volume_restores(client, "eu-west-1", options, ACCOUNT)

    assert [snapshot["SnapshotId"] for snapshot in found] == ["snap-1", "snap-2"]
    assert [volume["VolumeId"] for volume in restored] == ["vol-restored-1", "vol-restored-2"]
    assert target == {"availability_zone": "eu-west-1a", "instance_id": None}
