"""A reference AMI backup: boto3 on 16 threads, work interleaved across regions, tags in CreateImage.

Not a product: it shows what the token buckets and moto allow when every region's bucket drains at
once (describe each region, then CreateImage round-robin over the regions). Prints a JSON summary.
"""

import argparse
import datetime
import itertools
import json
import sys
from concurrent.futures import ThreadPoolExecutor

import boto3
import botocore.config

CONFIG = botocore.config.Config(retries={"mode": "adaptive", "max_attempts": 12}, max_pool_connections=16)


def instances(ec2):
    answer = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "tag-key", "Values": ["Backup"]}, {"Name": "instance-state-name", "Values": ["running"]}]
    )
    return [instance["InstanceId"] for page in answer for r in page["Reservations"] for instance in r["Instances"]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--regions", nargs="+", required=True)
    args = parser.parse_args()
    now = datetime.datetime.now(datetime.timezone.utc)
    delete_on = (now.date() + datetime.timedelta(days=7)).isoformat()
    clients = {
        region: boto3.client("ec2", region_name=region, endpoint_url=args.endpoint, config=CONFIG)
        for region in args.regions
    }
    with ThreadPoolExecutor(len(clients)) as pool:
        found = dict(zip(clients, pool.map(lambda region: instances(clients[region]), clients)))
    work = [
        (region, instance_id)
        for batch in itertools.zip_longest(*([(region, i) for i in ids] for region, ids in found.items()))
        for region, instance_id in filter(None, batch)
    ]

    def create(item):
        region, instance_id = item
        tags = [{"Key": "DeleteOn", "Value": delete_on}, {"Key": "SourceInstanceId", "Value": instance_id}]
        clients[region].create_image(
            InstanceId=instance_id,
            Name="{0}-{1}".format(instance_id, now.strftime("%Y%m%dT%H%M%SZ")),
            NoReboot=True,
            TagSpecifications=[{"ResourceType": "image", "Tags": tags}],
        )

    errors = []
    with ThreadPoolExecutor(16) as pool:
        for future in [pool.submit(create, item) for item in work]:
            try:
                future.result()
            except Exception as exc:  # pylint: disable=broad-except
                errors.append("{0}: {1}".format(type(exc).__name__, exc))
    print(json.dumps({"created": len(work) - len(errors), "error": errors[0] if errors else None}))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
