"""Seed fleets in moto, and set what moto cannot show through its API (it runs in this process)."""

import datetime

import boto3
from moto.backends import get_backend

from tests.harness.moto_server import ACCOUNT_ID

BASE_IMAGE = "ami-12c6146b"


def client(endpoint, service, region):
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def tag_list(tags):
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def launch(ec2, tags=None, count=1, state="running"):
    """Launch instances with tags; stop them when ``state`` is stopped. Returns their ids."""
    params = dict(ImageId=BASE_IMAGE, MinCount=count, MaxCount=count, InstanceType="t3.micro")
    if tags:
        params["TagSpecifications"] = [{"ResourceType": "instance", "Tags": tag_list(tags)}]
    ids = [instance["InstanceId"] for instance in ec2.run_instances(**params)["Instances"]]
    if state == "stopped":
        ec2.stop_instances(InstanceIds=ids)
    return ids


def ec2_backend(region):
    return get_backend("ec2")[ACCOUNT_ID][region]


def set_image(region, image_id, state=None, created=None):
    """Give an AMI a state (``pending``, ``failed``) or a creation time, as AWS would show them."""
    ami = ec2_backend(region).amis[image_id]
    if state:
        ami.state = state
    if created:
        ami.creation_date = created.astimezone(datetime.timezone.utc).replace(tzinfo=None)


def share_snapshot(region, from_image_id, to_image_id):
    """Make ``to_image_id`` use the root snapshot of ``from_image_id`` (as CopyImage in-region or RegisterImage do)."""
    backend = ec2_backend(region)
    backend.amis[to_image_id].ebs_snapshot = backend.amis[from_image_id].ebs_snapshot


def images(ec2):
    return {image["ImageId"]: image for image in ec2.describe_images(Owners=["self"])["Images"]}


def tags_of(resource):
    return {tag["Key"]: tag["Value"] for tag in resource.get("Tags") or []}


def add_volume(ec2, instance_id=None, device="/dev/sdf", tags=None, volume_type="gp3", size=8, zone=None):
    """Create a volume (tagged) and attach it to ``instance_id`` when given. Returns its id."""
    if instance_id and not zone:
        instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
        zone = instance["Placement"]["AvailabilityZone"]
    params = dict(Size=size, AvailabilityZone=zone or ec2.meta.region_name + "a", VolumeType=volume_type)
    if tags:
        params["TagSpecifications"] = [{"ResourceType": "volume", "Tags": tag_list(tags)}]
    volume_id = ec2.create_volume(**params)["VolumeId"]
    if instance_id:
        ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device=device)
    return volume_id


def root_volume(ec2, instance_id):
    instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    for mapping in instance["BlockDeviceMappings"]:
        if mapping["DeviceName"] == instance["RootDeviceName"]:
            return mapping["Ebs"]["VolumeId"]
    raise AssertionError("instance {0} has no root volume".format(instance_id))


def add_snapshot(ec2, volume_id, tags=None, description="seeded"):
    params = dict(VolumeId=volume_id, Description=description)
    if tags:
        params["TagSpecifications"] = [{"ResourceType": "snapshot", "Tags": tag_list(tags)}]
    return ec2.create_snapshot(**params)["SnapshotId"]


def set_snapshot(region, snapshot_id, state=None, started=None, owner_id=None):
    """Give a snapshot a state (``pending``, ``error``), a start time or another owner, as AWS would show them."""
    snapshot = ec2_backend(region).snapshots[snapshot_id]
    if state:
        snapshot.status = state
    if started:
        snapshot.start_time = started.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    if owner_id:
        snapshot.owner_id = owner_id


def snapshots(ec2):
    """The account's snapshots by id (moto's OwnerIds filter leaks others: checked here)."""
    found = ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
    return {snapshot["SnapshotId"]: snapshot for snapshot in found if snapshot["OwnerId"] == ACCOUNT_ID}


def set_service_tags(region, resource_id, tags):
    """Tags with the ``aws:`` prefix, which only AWS services write (DLM, AWS Backup); the API refuses them to users."""
    ec2_backend(region).create_tags([resource_id], tags)
