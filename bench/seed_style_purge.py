"""The purge the seed documents describe (seeds/000, script 2), as its users run it: boto3 with default settings.

``--kind images``: for each region in turn, list the account's AMIs tagged DeleteOn, and for each
expired one DeregisterImage, then DeleteSnapshot for each of its EBS snapshots, one call after the
other. ``--kind snapshots``: list the snapshots tagged DeleteOn and DeleteSnapshot each expired one.
Prints a JSON summary.
"""

import argparse
import datetime
import json
import sys

import boto3

EXPIRY = [{"Name": "tag-key", "Values": ["DeleteOn"]}]


def delete_on(resource):
    tags = {tag["Key"]: tag["Value"] for tag in resource.get("Tags", [])}
    return datetime.date.fromisoformat(tags["DeleteOn"][:10])


def purge_images(ec2, today):
    done = 0
    for image in ec2.describe_images(Owners=["self"], Filters=EXPIRY)["Images"]:
        if delete_on(image) > today:
            continue
        ec2.deregister_image(ImageId=image["ImageId"])
        for mapping in image.get("BlockDeviceMappings", []):
            if "Ebs" in mapping and mapping["Ebs"].get("SnapshotId"):
                ec2.delete_snapshot(SnapshotId=mapping["Ebs"]["SnapshotId"])
        done += 1
    return done


def purge_snapshots(ec2, today):
    done = 0
    for snapshot in ec2.describe_snapshots(OwnerIds=["self"], Filters=EXPIRY)["Snapshots"]:
        if delete_on(snapshot) <= today:
            ec2.delete_snapshot(SnapshotId=snapshot["SnapshotId"])
            done += 1
    return done


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--regions", nargs="+", required=True)
    parser.add_argument("--kind", choices=["images", "snapshots"], required=True)
    args = parser.parse_args()
    today = datetime.datetime.now(datetime.timezone.utc).date()
    purge = purge_images if args.kind == "images" else purge_snapshots
    done, error = 0, None
    try:
        for region in args.regions:
            done += purge(boto3.client("ec2", region_name=region, endpoint_url=args.endpoint), today)
    except Exception as exc:  # pylint: disable=broad-except
        error = "{0}: {1}".format(type(exc).__name__, exc)
    print(json.dumps({"purged": done, "error": error}))
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main())
