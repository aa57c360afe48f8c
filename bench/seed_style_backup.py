"""The AMI backup the seed documents describe (seeds/000), as its users run it: boto3 with default settings.

For each region in turn: describe the running instances tagged Backup, then for each instance
CreateImage and a CreateTags for DeleteOn, one call after the other. Prints a JSON summary.
"""

import argparse
import datetime
import json
import sys

import boto3


def backup_region(ec2, stamp, today):
    answer = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "tag-key", "Values": ["Backup"]}, {"Name": "instance-state-name", "Values": ["running"]}]
    )
    reservations = [reservation for page in answer for reservation in page["Reservations"]]
    created = 0
    for instance in (instance for reservation in reservations for instance in reservation["Instances"]):
        tags = {tag["Key"]: tag["Value"] for tag in instance.get("Tags", [])}
        retention = int(tags.get("Retention") or 7)
        image = ec2.create_image(
            InstanceId=instance["InstanceId"],
            Name="{0}-{1}".format(instance["InstanceId"], stamp),
            Description="Automated backup of {0}".format(instance["InstanceId"]),
            NoReboot=True,
        )
        delete_on = (today + datetime.timedelta(days=retention)).isoformat()
        ec2.create_tags(Resources=[image["ImageId"]], Tags=[{"Key": "DeleteOn", "Value": delete_on}])
        created += 1
    return created


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--regions", nargs="+", required=True)
    args = parser.parse_args()
    now = datetime.datetime.now(datetime.timezone.utc)
    stamp, created, error = now.strftime("%Y-%m-%d-%H-%M-%S"), 0, None
    try:
        for region in args.regions:
            created += backup_region(
                boto3.client("ec2", region_name=region, endpoint_url=args.endpoint), stamp, now.date()
            )
    except Exception as exc:  # pylint: disable=broad-except
        error = "{0}: {1}".format(type(exc).__name__, exc)
    print(json.dumps({"created": created, "error": error}))
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main())
