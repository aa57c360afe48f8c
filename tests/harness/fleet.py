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
