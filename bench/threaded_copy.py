"""A reference AMI copy: boto3 on 16 threads, CopyImage with a ClientToken and the tags inline.

Not a product: it shows what CopyImage's token bucket and moto allow (describe the source region's
managed AMIs once, then one CopyImage per AMI into the destination). Prints a JSON summary.
"""

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor

import boto3
import botocore.config

CONFIG = botocore.config.Config(retries={"mode": "adaptive", "max_attempts": 12}, max_pool_connections=16)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--destination", required=True)
    args = parser.parse_args()
    source = boto3.client("ec2", region_name=args.source, endpoint_url=args.endpoint, config=CONFIG)
    destination = boto3.client("ec2", region_name=args.destination, endpoint_url=args.endpoint, config=CONFIG)
    images = source.describe_images(
        Owners=["self"], Filters=[{"Name": "tag:CreatedBy", "Values": ["opsvault.aws_backup"]}]
    )["Images"]

    def copy(image):
        tags = [
            {"Key": "CreatedBy", "Value": "opsvault.aws_backup"},
            {"Key": "SourceImageId", "Value": image["ImageId"]},
            {"Key": "SourceRegion", "Value": args.source},
        ]
        destination.copy_image(
            SourceImageId=image["ImageId"],
            SourceRegion=args.source,
            Name=image["Name"],
            ClientToken="reference-" + image["ImageId"],
            TagSpecifications=[{"ResourceType": "image", "Tags": tags}],
        )

    errors = []
    with ThreadPoolExecutor(16) as pool:
        for future in [pool.submit(copy, image) for image in images]:
            try:
                future.result()
            except Exception as exc:  # pylint: disable=broad-except
                errors.append("{0}: {1}".format(type(exc).__name__, exc))
    print(json.dumps({"copied": len(images) - len(errors), "error": errors[0] if errors else None}))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
