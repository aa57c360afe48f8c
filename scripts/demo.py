"""`make demo`: the main job end to end against a local moto server.

Seeds a small fleet in two regions (a bad Retention tag, a stopped instance, a BackupReboot
instance, expired backups from earlier runs, legacy AMIs of the old scripts), then runs the
collection's playbooks as a user would: AMI backup, a purge preview a month ahead, the purge;
EBS snapshots of every in-use volume and a snapshot purge report; an S3 bucket mirrored into a
local directory, then mirrored again after one object changed.
"""

import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import PurePosixPath
from pathlib import Path

import boto3

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.harness.ansible_run import ensure_collection_link  # noqa: E402
from tests.harness.fleet import BASE_IMAGE  # noqa: E402

REGIONS = ["us-east-1", "eu-west-1"]
TODAY = datetime.datetime.now(datetime.timezone.utc).date()
BIN = Path(sys.executable).parent


def banner(text):
    print("\n" + "=" * 78 + "\n== " + text + "\n" + "=" * 78, flush=True)


def start_moto(workdir):
    port_file = Path(workdir) / "port"
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.harness.moto_server", "--port-file", str(port_file)],
        cwd=str(REPO),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _attempt in range(200):
        if port_file.exists() and port_file.read_text():
            return server, "http://127.0.0.1:" + port_file.read_text()
        if server.poll() is not None:
            raise SystemExit("moto server did not start")
        time.sleep(0.1)
    server.kill()
    raise SystemExit("moto server did not start in 20 s")


def tags(**values):
    return [{"Key": key, "Value": value} for key, value in values.items()]


def seed(endpoint):
    ec2 = {region: boto3.client("ec2", region_name=region, endpoint_url=endpoint) for region in REGIONS}

    def launch(region, **instance_tags):
        spec = [{"ResourceType": "instance", "Tags": tags(**instance_tags)}]
        reply = ec2[region].run_instances(ImageId=BASE_IMAGE, MinCount=1, MaxCount=1, TagSpecifications=spec)
        return reply["Instances"][0]["InstanceId"]

    launch("us-east-1", Name="web-1", Backup="", Retention="14")
    launch("us-east-1", Name="db-1", Backup="", Retention="+6 months", BackupReboot="yes")
    launch("us-east-1", Name="cache-1", Backup="", Retention="forever")
    stopped = launch("us-east-1", Name="batch-1", Backup="")
    ec2["us-east-1"].stop_instances(InstanceIds=[stopped])
    launch("eu-west-1", Name="web-eu", Backup="", Retention="30d")
    launch("eu-west-1", Name="scratch")

    retired = launch("us-east-1", Name="app-retired")
    for days in (40, 35):
        expired = (TODAY - datetime.timedelta(days=days)).isoformat()
        ec2["us-east-1"].create_image(
            InstanceId=retired,
            Name="app-retired backup of " + expired,
            TagSpecifications=[
                {
                    "ResourceType": "image",
                    "Tags": tags(
                        CreatedBy="opsvault.aws_backup",
                        DeleteOn=expired,
                        SourceInstanceId=retired,
                        BackupPolicy="default",
                    ),
                }
            ],
        )
    ec2["us-east-1"].terminate_instances(InstanceIds=[retired])
    for region in REGIONS:
        legacy_host = launch(region, Name="legacy-host")
        for days in (40, 33):
            expired = (TODAY - datetime.timedelta(days=days)).isoformat()
            ec2[region].create_image(
                InstanceId=legacy_host,
                Name="Lambda - {0} from {1}".format(legacy_host, expired),
                TagSpecifications=[{"ResourceType": "image", "Tags": tags(DeleteOn=expired)}],
            )
    for region in REGIONS:
        ec2[region].create_volume(AvailabilityZone=region + "a", Size=8)
    return ec2


def backed_up_instances(client):
    """The instances with an available AMI made by the collection."""
    images = client.describe_images(
        Owners=["self"], Filters=[{"Name": "tag:CreatedBy", "Values": ["opsvault.aws_backup"]}]
    )
    sources = (
        {tag["Key"]: tag["Value"] for tag in image.get("Tags", [])}.get("SourceInstanceId")
        for image in images["Images"]
        if image["State"] == "available"
    )
    return sorted(source for source in set(sources) if source)


def show_images(ec2):
    print(
        "{0:<11} {1:<22} {2:<21} {3:<11} {4:<10} {5}".format("region", "image", "source", "DeleteOn", "managed", "name")
    )
    for region, client in ec2.items():
        for image in sorted(client.describe_images(Owners=["self"])["Images"], key=lambda i: i["Name"]):
            image_tags = {tag["Key"]: tag["Value"] for tag in image.get("Tags", [])}
            print(
                "{0:<11} {1:<22} {2:<21} {3:<11} {4:<10} {5}".format(
                    region,
                    image["ImageId"],
                    image_tags.get("SourceInstanceId", "-"),
                    image_tags.get("DeleteOn", "-"),
                    "yes" if image_tags.get("CreatedBy") == "opsvault.aws_backup" else "legacy",
                    image["Name"],
                )
            )


def show_snapshots(ec2):
    print("{0:<11} {1:<24} {2:<23} {3:<21} {4}".format("region", "snapshot", "volume", "instance", "DeleteOn"))
    for region, client in ec2.items():
        for snapshot in client.describe_snapshots(OwnerIds=["self"])["Snapshots"]:
            snapshot_tags = {tag["Key"]: tag["Value"] for tag in snapshot.get("Tags", [])}
            if snapshot_tags.get("CreatedBy") != "opsvault.aws_backup" or "SourceInstanceId" in snapshot_tags:
                continue
            print(
                "{0:<11} {1:<24} {2:<23} {3:<21} {4}".format(
                    region,
                    snapshot["SnapshotId"],
                    snapshot_tags.get("VolumeId", "-"),
                    snapshot_tags.get("InstanceId", "-"),
                    snapshot_tags.get("DeleteOn", "-"),
                )
            )


BUCKET_OBJECTS = {
    "photos/2026/cat.jpg": b"\xff\xd8 a cat " * 64,
    "photos/2026/dog.png": b"\x89PNG a dog " * 64,
    "photos/caf\u00e9 menu.jpg": b"\xff\xd8 a menu " * 32,
    "photos/empty.png": b"",
    "notes/readme.txt": b"not an image",
}


def seed_bucket(endpoint, bucket):
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint)
    s3.create_bucket(Bucket=bucket)
    for key, body in BUCKET_OBJECTS.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    return s3


def show_tree(root):
    for path in sorted(Path(root).rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            print("  {0:<40} {1:>6} bytes".format(str(PurePosixPath(path.relative_to(root))), path.stat().st_size))


def playbook(name, extra_vars, check=False):
    command = [str(BIN / "ansible-playbook"), "opsvault.aws_backup." + name, "-e", extra_vars]
    if check:
        command.append("--check")
    print("$ " + " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True)


def main():
    os.environ.update(
        AWS_ACCESS_KEY_ID="AKIADEMOEXAMPLE00000",
        AWS_SECRET_ACCESS_KEY="demo-secret-access-key-not-a-real-one",
        AWS_REGION="us-east-1",
        ANSIBLE_COLLECTIONS_PATH=str(ensure_collection_link()),
        ANSIBLE_LOCALHOST_WARNING="False",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
    )
    with tempfile.TemporaryDirectory() as workdir:
        server, endpoint = start_moto(workdir)
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        try:
            banner("A fleet in {0} (moto at {1})".format(" and ".join(REGIONS), endpoint))
            ec2 = seed(endpoint)
            show_images(ec2)

            banner("Back up every instance tagged Backup")
            regions = '{"ami_backup_regions": ["us-east-1", "eu-west-1"]}'
            playbook("ami_backup", regions)
            show_images(ec2)

            banner("Run it again: nothing new within min_interval")
            playbook("ami_backup", regions)

            month_ahead = (TODAY + datetime.timedelta(days=31)).isoformat()
            banner("Preview the purge as of " + month_ahead + " (check mode: nothing changes)")
            playbook(
                "ami_purge",
                '{"ami_purge_regions": ["us-east-1", "eu-west-1"], "ami_purge_as_of": "%s"}' % month_ahead,
                check=True,
            )

            banner("Purge what has expired today, adopting the old scripts' AMIs")
            playbook("ami_purge", '{"ami_purge_regions": ["us-east-1", "eu-west-1"], "ami_purge_adopt_legacy": true}')
            banner("Summary: the AMIs left")
            show_images(ec2)

            banner("Snapshot every in-use EBS volume in both regions (unattached volumes are left alone)")
            playbook(
                "ebs_snapshot", '{"ebs_snapshot_regions": ["us-east-1", "eu-west-1"], "ebs_snapshot_retention": "14d"}'
            )
            show_snapshots(ec2)

            banner("Which snapshots would snapshot_purge remove as of " + month_ahead + "? (action: report)")
            playbook(
                "snapshot_purge",
                '{"snapshot_purge_regions": ["us-east-1", "eu-west-1"], "snapshot_purge_action": "report", '
                '"snapshot_purge_as_of": "%s"}' % month_ahead,
            )

            bucket, dest = "demo-images", Path(workdir) / "myS3backup"
            banner("Mirror the images of s3://{0} into {1}".format(bucket, dest))
            s3 = seed_bucket(endpoint, bucket)
            mirror_vars = (
                '{"s3_mirror_bucket": "%s", "s3_mirror_dest": "%s", "s3_mirror_include": ["*.jpg", "*.png"]}'
                % (
                    bucket,
                    dest,
                )
            )
            playbook("s3_mirror", mirror_vars)
            show_tree(dest)

            banner("One image changes, same size: the next run fetches exactly that one")
            s3.put_object(Bucket=bucket, Key="photos/2026/cat.jpg", Body=b"\xff\xd8 a CAT " * 64)
            playbook("s3_mirror", mirror_vars)

            reports = Path(workdir) / "reports"
            banner("What is not protected? The coverage report (read-only; the HTML page works offline)")
            coverage_vars = {"coverage_report_regions": ["us-east-1", "eu-west-1"], "coverage_report_dir": str(reports)}
            coverage_vars["coverage_report_mirror_dests"] = [str(dest)]
            playbook("coverage_report", json.dumps(coverage_vars))
            print((reports / "coverage.md").read_text())

            banner("A restore drill of two backed-up instances in an isolated network, then its report")
            report = Path(workdir) / "restore-drill"
            drill_vars = {"restore_drill_instance_ids": backed_up_instances(ec2["us-east-1"])[:2]}
            drill_vars["restore_drill_report_path"] = str(report)
            playbook("restore_drill", json.dumps(drill_vars))
            print(report.with_name(report.name + ".md").read_text())
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
