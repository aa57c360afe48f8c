"""Each module works under exactly its generated IAM policy and fails, naming the action, without any one action.

moto enforces IAM once ``enforce_iam`` turns it on; ``tests/harness/iam_enforcement.py`` makes
it evaluate EC2 requests as AWS does (resource ARNs and ``aws:ResourceTag`` conditions for
deregister/delete/archive, ``ec2:CreateTags`` with ``ec2:CreateAction`` for tags written on
create, ``UnauthorizedOperation``). The module runs in a real ``ansible-playbook`` process
with the access key of an IAM user whose only policy is the document that
``opsvault.aws_backup.iam_policy`` renders for the feature. Scenarios exist for every module;
those whose module file is not in the collection are not collected.
"""

import datetime
import json
import os
import time

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.s3.responses import S3Response

from ansible_collections.opsvault.aws_backup.plugins.module_utils import iam_actions
from tests.harness import fleet
from tests.harness import moto_ssm_agent
from tests.harness.ansible_run import REPO
from tests.harness.ansible_run import run_playbook
from tests.harness.iam_enforcement import enforce_iam

REGION = "us-east-1"
COPY_REGION = "eu-west-1"
USER = "backup-host"
MANAGED = {"CreatedBy": "opsvault.aws_backup"}
EXPIRED = "2020-01-01"
MONTH_AGO = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=30)


def module_exists(feature):
    name = feature if isinstance(feature, str) else feature["name"]
    return (REPO / "plugins" / "modules" / "{0}.py".format(name)).exists()


def tag_specs(resource_type, tags):
    return [{"ResourceType": resource_type, "Tags": fleet.tag_list(tags)}]


def snapshot(ec2, volume_id, tags):
    return ec2.create_snapshot(VolumeId=volume_id, TagSpecifications=tag_specs("snapshot", tags))["SnapshotId"]


def root_volume(ec2, instance_id):
    instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return instance["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]


def managed_images(ec2):
    return [
        image for image in fleet.images(ec2).values() if fleet.tags_of(image).get("CreatedBy") == MANAGED["CreatedBy"]
    ]


def own_snapshots(ec2):
    found = ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
    return {item["SnapshotId"]: item for item in found if item["OwnerId"] == fleet.ACCOUNT_ID}


class AmiBackup:
    feature = "ami_backup"

    def seed(self, aws, tmp_path):
        fleet.launch(aws.ec2(REGION), {"Backup": "", "Name": "web"})
        return {}

    def state(self, aws):
        return sorted(image["ImageId"] for image in managed_images(aws.ec2(REGION)))

    def succeeded(self, aws, before, after):
        assert before == [] and len(after) == 1


class AmiPurge:
    feature = "ami_purge"
    # The AMI is deregistered before its snapshots are deleted: without DeleteSnapshot the first step happens.
    completes_before = {"ec2:DeleteSnapshot"}

    def seed(self, aws, tmp_path):
        ec2 = aws.ec2(REGION)
        [instance] = fleet.launch(ec2, {"Backup": ""})
        self.expired = ec2.create_image(
            InstanceId=instance,
            Name="expired-backup",
            TagSpecifications=tag_specs(
                "image", dict(MANAGED, DeleteOn=EXPIRED, SourceInstanceId=instance, BackupPolicy="default")
            )
            + tag_specs("snapshot", dict(MANAGED, DeleteOn=EXPIRED, SourceInstanceId=instance)),
        )["ImageId"]
        fleet.set_image(REGION, self.expired, created=MONTH_AGO)
        ec2.create_image(
            InstanceId=instance,
            Name="current-backup",
            TagSpecifications=tag_specs(
                "image", dict(MANAGED, DeleteOn="2999-01-01", SourceInstanceId=instance, BackupPolicy="default")
            ),
        )
        return {}

    def state(self, aws):
        return sorted(fleet.images(aws.ec2(REGION)))

    def succeeded(self, aws, before, after):
        assert self.expired in before and self.expired not in after and len(after) == 1


class EbsSnapshot:
    def __init__(self, mode):
        self.mode = mode
        self.feature = {"name": "ebs_snapshot", "mode": mode}

    def seed(self, aws, tmp_path):
        fleet.launch(aws.ec2(REGION), {"Name": "db"})
        return {"mode": self.mode}

    def state(self, aws):
        return sorted(
            snapshot_id
            for snapshot_id, item in own_snapshots(aws.ec2(REGION)).items()
            if fleet.tags_of(item).get("CreatedBy") == MANAGED["CreatedBy"]
        )

    def succeeded(self, aws, before, after):
        assert before == [] and len(after) == 1


class SnapshotPurge:
    def __init__(self, action):
        self.action = action
        self.feature = {"name": "snapshot_purge", "action": action}

    def seed(self, aws, tmp_path):
        ec2 = aws.ec2(REGION)
        [instance] = fleet.launch(ec2, {"Name": "db"})
        volume = root_volume(ec2, instance)
        self.expired = snapshot(ec2, volume, dict(MANAGED, DeleteOn=EXPIRED, VolumeId=volume))
        self.unmanaged = snapshot(ec2, volume, {"DeleteOn": EXPIRED, "Name": "legacy"})
        # The newest completed snapshot of a volume is never purged: this one stays.
        self.newest = snapshot(ec2, volume, dict(MANAGED, DeleteOn="2999-01-01", VolumeId=volume))
        return {"action": self.action}

    def state(self, aws):
        return {
            snapshot_id: item.get("StorageTier", "standard")
            for snapshot_id, item in own_snapshots(aws.ec2(REGION)).items()
        }

    def succeeded(self, aws, before, after):
        if self.action == "delete":
            assert self.expired in before and self.expired not in after
        else:
            assert before[self.expired] == "standard" and after[self.expired] == "archive"
        assert after[self.unmanaged] == "standard" and after[self.newest] == "standard"


class S3Mirror:
    feature = {"name": "s3_mirror", "bucket": "seed-images", "prefix": "uploads/"}

    def seed(self, aws, tmp_path):
        s3 = aws.client("s3", REGION)
        s3.create_bucket(Bucket="seed-images")
        s3.put_object(Bucket="seed-images", Key="uploads/cat.jpg", Body=b"cat")
        s3.put_object(Bucket="seed-images", Key="uploads/2026/dog.png", Body=b"dog")
        self.dest = tmp_path / "myS3backup"
        return {"bucket": "seed-images", "prefix": "uploads/", "dest": str(self.dest)}

    def state(self, aws):
        if not self.dest.exists():
            return {}
        files = {str(path.relative_to(self.dest)): path for path in self.dest.rglob("*") if path.is_file()}
        return {name: path.read_bytes() for name, path in files.items() if not name.startswith(".s3_mirror")}

    def succeeded(self, aws, before, after):
        assert before == {} and after == {"cat.jpg": b"cat", "2026/dog.png": b"dog"}


class S3MirrorVersionAsOf(S3Mirror):
    """s3_mirror of a versioned bucket as it was before its objects were overwritten."""

    feature = {"name": "s3_mirror", "bucket": "seed-images", "prefix": "uploads/", "versions": True}

    def seed(self, aws, tmp_path):
        options = super().seed(aws, tmp_path)
        s3 = aws.client("s3", REGION)
        s3.put_bucket_versioning(Bucket="seed-images", VersioningConfiguration={"Status": "Enabled"})
        s3.put_object(Bucket="seed-images", Key="uploads/cat.jpg", Body=b"cat")
        s3.put_object(Bucket="seed-images", Key="uploads/2026/dog.png", Body=b"dog")
        time.sleep(1.1)
        moment = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        time.sleep(1.1)
        s3.put_object(Bucket="seed-images", Key="uploads/cat.jpg", Body=b"overwritten")
        return dict(options, version_as_of=moment.isoformat())


def restored(ec2, describe, key):
    found = getattr(ec2, describe)(Filters=[{"Name": "tag:RestoredBy", "Values": ["opsvault.aws_backup"]}])
    return found


class InstanceRestore:
    feature = {"name": "instance_restore", "wait": True}
    # The instance is launched before its status checks are read.
    completes_before = {"ec2:DescribeInstanceStatus"}

    def seed(self, aws, tmp_path):
        ec2 = aws.ec2(REGION)
        [source] = fleet.launch(ec2, {"Backup": "", "Name": "web"})
        ec2.create_image(
            InstanceId=source,
            Name="web-backup",
            TagSpecifications=tag_specs("image", dict(MANAGED, DeleteOn="2999-01-01", SourceInstanceId=source)),
        )
        vpc = ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.7.1.0/24")["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName="drill", Description="none", VpcId=vpc)["GroupId"]
        return {"instance_ids": [source], "subnet_id": subnet, "security_group_ids": [group], "wait": True}

    def state(self, aws):
        reservations = restored(aws.ec2(REGION), "describe_instances", "Reservations")["Reservations"]
        return sorted(instance["InstanceId"] for reservation in reservations for instance in reservation["Instances"])

    def succeeded(self, aws, before, after):
        assert before == [] and len(after) == 1


class VolumeRestore:
    def __init__(self, attach):
        self.attach = attach
        self.feature = {"name": "volume_restore", "attach": attach}
        # With attach, the volume is created before it is attached.
        self.completes_before = {"ec2:AttachVolume"}

    def seed(self, aws, tmp_path):
        ec2 = aws.ec2(REGION)
        [instance] = fleet.launch(ec2, {"Name": "db"})
        volume = root_volume(ec2, instance)
        snapshot(ec2, volume, dict(MANAGED, DeleteOn="2999-01-01", VolumeId=volume))
        if self.attach:
            return {"volume_ids": [volume], "instance_id": instance, "device": "/dev/sdf"}
        return {"volume_ids": [volume], "availability_zone": REGION + "a"}

    def state(self, aws):
        volumes = restored(aws.ec2(REGION), "describe_volumes", "Volumes")["Volumes"]
        return sorted((volume["VolumeId"], len(volume["Attachments"])) for volume in volumes)

    def succeeded(self, aws, before, after):
        assert before == [] and [attached for _volume, attached in after] == [1 if self.attach else 0]


class S3Restore:
    feature = {"name": "s3_restore", "bucket": "restored-images", "prefix": "uploads/", "delete": True}
    # The files are uploaded before the objects the mirror does not hold are deleted.
    completes_before = {"s3:DeleteObject"}
    # Used only when a multipart upload is refused; the module cannot see a failed abort (s3transfer cleans
    # up after the refusal), so its test reads the bucket's multipart uploads instead.
    proven_elsewhere = {"s3:AbortMultipartUpload": "test_a_refused_multipart_upload_is_aborted_only_with_its_action"}

    def seed(self, aws, tmp_path):
        s3 = aws.client("s3", REGION)
        s3.create_bucket(Bucket="restored-images")
        s3.put_object(Bucket="restored-images", Key="uploads/stale.jpg", Body=b"gone from the mirror")
        src = tmp_path / "myS3backup"
        (src / "2026").mkdir(parents=True)
        (src / "cat.jpg").write_bytes(b"cat")
        (src / "2026" / "dog.png").write_bytes(b"dog")
        (src / ".s3_mirror_index.jsonl").write_text("{}\n")
        return {"src": str(src), "bucket": "restored-images", "prefix": "uploads/", "delete": True}

    def state(self, aws):
        s3 = aws.client("s3", REGION)
        listed = s3.list_objects_v2(Bucket="restored-images").get("Contents", [])
        return {item["Key"]: s3.get_object(Bucket="restored-images", Key=item["Key"])["Body"].read() for item in listed}

    def succeeded(self, aws, before, after):
        assert before == {"uploads/stale.jpg": b"gone from the mirror"}
        assert after == {"uploads/cat.jpg": b"cat", "uploads/2026/dog.png": b"dog"}


class BackupCoverage:
    feature = "backup_coverage"
    changes = False  # read-only: success is the report, with every status it must find

    def seed(self, aws, tmp_path):
        ec2 = aws.ec2(REGION)
        [self.covered] = fleet.launch(ec2, {"Backup": "", "Name": "web"})
        ec2.create_image(
            InstanceId=self.covered,
            Name="web-backup",
            TagSpecifications=tag_specs("image", dict(MANAGED, DeleteOn="2999-01-01", SourceInstanceId=self.covered)),
        )
        [self.missing] = fleet.launch(ec2, {"Backup": "", "Name": "db"})
        self.volume = fleet.add_volume(ec2, tags={"Backup": ""})
        snapshot(ec2, self.volume, dict(MANAGED, DeleteOn="2999-01-01", VolumeId=self.volume))
        self.report = tmp_path / "coverage.json"
        return {"json_path": str(self.report)}

    def state(self, aws):
        return sorted(fleet.images(aws.ec2(REGION))), sorted(own_snapshots(aws.ec2(REGION)))

    def succeeded(self, aws, before, after):
        assert after == before
        document = json.loads(self.report.read_text())
        assert document["errors"] == []
        found = {item["resource"]: item["status"] for item in document["sources"]}
        assert found == {self.covered: "ok", self.missing: "missing", self.volume: "ok"}


class BackupCoverageMerge:
    """The organisation-wide report from host results under an S3 prefix: S3 reads only, no EC2."""

    feature = {"name": "backup_coverage", "host_results": "s3://backup-reports/daily/"}
    changes = False

    def seed(self, aws, tmp_path):
        s3 = aws.client("s3", REGION)
        s3.create_bucket(Bucket="backup-reports")
        for host, failed in (("123456789012-us-east-1", False), ("210987654321-us-east-1", True)):
            entry = {"host": host, "account_id": host[:12], "region": REGION, "failed": failed, "tasks": []}
            s3.put_object(Bucket="backup-reports", Key="daily/{0}.json".format(host), Body=json.dumps(entry))
        self.report = tmp_path / "organisation.json"
        return {"host_results": self.feature["host_results"], "json_path": str(self.report)}

    def state(self, aws):
        return sorted(
            item["Key"] for item in aws.client("s3", REGION).list_objects_v2(Bucket="backup-reports")["Contents"]
        )

    def succeeded(self, aws, before, after):
        assert after == before
        document = json.loads(self.report.read_text())
        assert [row["host"] for row in document["hosts"]] == ["210987654321-us-east-1", "123456789012-us-east-1"]
        assert document["failed_hosts"] == ["210987654321-us-east-1"]


def copies_of(ec2):
    """The managed copies in a region, by source id."""
    found = {}
    for image in fleet.images(ec2).values():
        source = fleet.tags_of(image).get("SourceImageId")
        if source:
            found[source] = image["ImageId"]
    for snapshot_id, item in own_snapshots(ec2).items():
        source = fleet.tags_of(item).get("SourceSnapshotId")
        if source:
            found[source] = snapshot_id
    return found


def copy_sources(ec2):
    """A managed AMI (with its tagged snapshot) and a managed EBS snapshot to copy."""
    [instance] = fleet.launch(ec2, {"Backup": ""})
    tags = dict(MANAGED, DeleteOn="2999-01-01", SourceInstanceId=instance, BackupPolicy="default")
    image = ec2.create_image(
        InstanceId=instance, Name="web-backup", TagSpecifications=tag_specs("image", tags) + tag_specs("snapshot", tags)
    )["ImageId"]
    volume = fleet.add_volume(ec2, instance)
    return image, snapshot(ec2, volume, dict(MANAGED, DeleteOn="2999-01-01", VolumeId=volume))


class BackupCopy:
    feature = "backup_copy"
    # CopyImage and CopySnapshot are separate items: without one of them the other copy is still made.
    completes_before = {"ec2:CopyImage", "ec2:CopySnapshot"}

    def seed(self, aws, tmp_path):
        self.sources = copy_sources(aws.ec2(REGION))
        key = aws.client("kms", COPY_REGION).create_key(Description="copies")["KeyMetadata"]["Arn"]
        return {"destinations": [{"region": COPY_REGION, "kms_key_id": key}]}

    def state(self, aws):
        return copies_of(aws.ec2(COPY_REGION))

    def succeeded(self, aws, before, after):
        assert before == {} and sorted(after) == sorted(self.sources)


class AmiPurgeUnprotecting(AmiPurge):
    """The expired AMI has deregistration protection; the purge may remove it."""

    feature = {"name": "ami_purge", "remove_deregistration_protection": True}
    completes_before = {"ec2:DeleteSnapshot", "ec2:DeregisterImage"}

    def seed(self, aws, tmp_path):
        super().seed(aws, tmp_path)
        aws.ec2(REGION).enable_image_deregistration_protection(ImageId=self.expired)
        return {"remove_deregistration_protection": True}


class VaultGuard:
    """Locks a managed snapshot, protects a managed AMI, creates one retention rule and updates and locks another."""

    feature = {"name": "vault_guard", "recycle_bin": True}
    # Snapshots are locked, then AMIs protected, then the rules changed: each step is independent, so a
    # denied one leaves the others done (a denied Describe or List changes nothing).
    completes_before = {
        "ec2:LockSnapshot",
        "ec2:EnableImageDeregistrationProtection",
        "rbin:CreateRule",
        "rbin:UpdateRule",
        "rbin:LockRule",
    }
    recycle_bin = {"retention_days": 14, "selection": "region", "lock": True}

    def seed(self, aws, tmp_path):
        from ansible_collections.opsvault.aws_backup.plugins.module_utils.guard import rule_description

        ec2 = aws.ec2(REGION)
        [instance] = fleet.launch(ec2, {"Name": "db"})
        volume = root_volume(ec2, instance)
        self.snapshot = snapshot(ec2, volume, dict(MANAGED, DeleteOn="2999-01-01", VolumeId=volume))
        self.image = ec2.create_image(
            InstanceId=instance,
            Name="guarded",
            TagSpecifications=tag_specs("image", dict(MANAGED, DeleteOn="2999-01-01", SourceInstanceId=instance)),
        )["ImageId"]
        aws.client("rbin", REGION).create_rule(
            ResourceType="EBS_SNAPSHOT",
            RetentionPeriod={"RetentionPeriodValue": 7, "RetentionPeriodUnit": "DAYS"},
            Description=rule_description("EBS_SNAPSHOT", "region"),
        )
        return {"recycle_bin": self.recycle_bin}

    def state(self, aws):
        ec2, rbin = aws.ec2(REGION), aws.client("rbin", REGION)
        locks = sorted(item["SnapshotId"] for item in ec2.describe_locked_snapshots()["Snapshots"])
        protection = [image["DeregistrationProtection"] for image in managed_images(ec2)]
        rules = sorted(
            (kind, rule.get("LockState"), rule["RetentionPeriod"]["RetentionPeriodValue"])
            for kind in ("EBS_SNAPSHOT", "EC2_IMAGE")
            for rule in rbin.list_rules(ResourceType=kind)["Rules"]
        )
        return locks, protection, rules

    def succeeded(self, aws, before, after):
        assert before == ([], ["disabled"], [("EBS_SNAPSHOT", None, 7)])
        assert after == ([self.snapshot], ["enabled"], [("EBS_SNAPSHOT", "locked", 14), ("EC2_IMAGE", "locked", 14)])


SCENARIOS = [
    AmiBackup(),
    AmiPurge(),
    AmiPurgeUnprotecting(),
    EbsSnapshot("volume"),
    EbsSnapshot("instance"),
    SnapshotPurge("delete"),
    SnapshotPurge("archive"),
    S3Mirror(),
    S3MirrorVersionAsOf(),
    InstanceRestore(),
    VolumeRestore(attach=True),
    VolumeRestore(attach=False),
    S3Restore(),
    BackupCoverage(),
    BackupCoverageMerge(),
    BackupCopy(),
    VaultGuard(),
]


def scenario_id(scenario):
    feature = scenario.feature
    return feature if isinstance(feature, str) else "-".join(str(value) for value in feature.values())


def removal_cases():
    """(scenario, action) for every action of every scenario, each action once per module."""
    cases, seen = [], set()
    for scenario in SCENARIOS:
        name = scenario.feature if isinstance(scenario.feature, str) else scenario.feature["name"]
        for action in iam_actions.actions(scenario.feature):
            if action in getattr(scenario, "proven_elsewhere", {}):
                continue
            if (name, action) not in seen:
                seen.add((name, action))
                cases.append(pytest.param(scenario, action, id="{0}-without-{1}".format(scenario_id(scenario), action)))
    return [case for case in cases if module_exists(case.values[0].feature)]


def present(scenarios):
    return [pytest.param(s, id=scenario_id(s)) for s in scenarios if module_exists(s.feature)]


def without(document, action):
    statements = []
    for statement in document["Statement"]:
        kept = [item for item in statement["Action"] if item != action]
        if kept:
            statements.append(dict(statement, Action=kept))
    return dict(document, Statement=statements)


def iam_user(aws, document):
    iam = aws.client("iam", REGION)
    iam.create_user(UserName=USER)
    iam.put_user_policy(UserName=USER, PolicyName="opsvault-aws-backup", PolicyDocument=json.dumps(document))
    key = iam.create_access_key(UserName=USER)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def run_as(aws, tmp_path, key, task_name, module, options):
    access_key, secret_key = key
    play = {
        "name": "least privilege",
        "hosts": "localhost",
        "gather_facts": False,
        "module_defaults": {
            "group/opsvault.aws_backup.aws": {
                "endpoint_url": aws.endpoint,
                "region": REGION,
                "access_key": access_key,
                "secret_key": secret_key,
            }
        },
        "tasks": [{"name": task_name, "opsvault.aws_backup." + module: options}],
    }
    env = {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
    with enforce_iam(aws.endpoint):
        run = run_playbook([play], tmp_path, endpoint=aws.endpoint, env=env)
    return run, run.result(task_name)


def module_name(scenario):
    return scenario.feature if isinstance(scenario.feature, str) else scenario.feature["name"]


@pytest.mark.parametrize("scenario", present(SCENARIOS))
def test_module_succeeds_under_exactly_its_generated_policy(aws, tmp_path, scenario):
    options = scenario.seed(aws, tmp_path)
    document = iam_actions.policy_document([scenario.feature])
    key = iam_user(aws, document)
    before = scenario.state(aws)

    run, result = run_as(aws, tmp_path, key, "run", module_name(scenario), options)

    assert run.rc == 0, result
    assert result["changed"] is getattr(scenario, "changes", True)
    scenario.succeeded(aws, before, scenario.state(aws))


@pytest.mark.parametrize("scenario, action", removal_cases())
def test_module_fails_naming_the_action_when_one_is_removed(aws, tmp_path, scenario, action):
    options = scenario.seed(aws, tmp_path)
    document = without(iam_actions.policy_document([scenario.feature]), action)
    assert action not in iam_actions.policy_actions(document)
    key = iam_user(aws, document)
    before = scenario.state(aws)

    run, result = run_as(aws, tmp_path, key, "run", module_name(scenario), options)

    assert run.rc != 0 and result.get("failed") is True, result
    reported = json.dumps({key: result.get(key) for key in ("msg", "errors", "error")})
    assert "not authorized to perform: {0}".format(action) in reported, reported
    if action.startswith("ec2:"):
        assert "UnauthorizedOperation" in reported, reported
    else:
        assert "accessdenied" in reported.lower().replace(" ", ""), reported
    if action not in getattr(scenario, "completes_before", ()):
        assert scenario.state(aws) == before


def test_purge_policy_without_adopt_legacy_cannot_delete_unmanaged_snapshots(aws, tmp_path):
    scenario = SnapshotPurge("delete")
    if not module_exists(scenario.feature):
        pytest.skip("snapshot_purge is not in the collection")
    options = scenario.seed(aws, tmp_path)
    key = iam_user(aws, iam_actions.policy_document([scenario.feature]))

    run, result = run_as(aws, tmp_path, key, "run", "snapshot_purge", dict(options, adopt_legacy=True))

    assert run.rc != 0, result
    assert scenario.unmanaged in own_snapshots(aws.ec2(REGION))
    assert scenario.expired not in own_snapshots(aws.ec2(REGION))
    denied = [error for error in result["errors"] if error["resource"] == scenario.unmanaged]
    assert denied and denied[0]["code"] == "UnauthorizedOperation"
    assert "ec2:DeleteSnapshot on resource: arn:aws:ec2:{0}::snapshot/{1}".format(REGION, scenario.unmanaged) in (
        denied[0]["message"]
    )


def test_stale_clean_up_of_unmanaged_snapshots_needs_the_opt_in_policy(aws, tmp_path):
    if not module_exists("snapshot_purge"):
        pytest.skip("snapshot_purge is not in the collection")
    ec2 = aws.ec2(REGION)
    volume = fleet.add_volume(ec2)
    managed = snapshot(ec2, volume, dict(MANAGED, DeleteOn="2999-01-01", VolumeId=volume))
    untagged = snapshot(ec2, volume, {"Name": "old script"})
    ec2.delete_volume(VolumeId=volume)
    options = {"stale": "volume_gone", "stale_min_age": "0", "stale_include_unmanaged": True}
    key = iam_user(aws, iam_actions.policy_document([{"name": "snapshot_purge", "stale": "volume_gone"}]))

    run, result = run_as(aws, tmp_path, key, "run", "snapshot_purge", options)

    assert run.rc != 0, result
    assert [entry["snapshot_id"] for entry in result["deleted_snapshots"]] == [managed]
    [denied] = result["errors"]
    assert (denied["resource"], denied["code"]) == (untagged, "UnauthorizedOperation")
    assert untagged in own_snapshots(ec2)

    opt_in = {"name": "snapshot_purge", "stale": "volume_gone", "stale_include_unmanaged": True}
    aws.client("iam", REGION).put_user_policy(
        UserName=USER,
        PolicyName="opsvault-aws-backup",
        PolicyDocument=json.dumps(iam_actions.policy_document([opt_in])),
    )

    run, result = run_as(aws, tmp_path, key, "again", "snapshot_purge", options)

    assert run.rc == 0, result
    assert [entry["snapshot_id"] for entry in result["deleted_snapshots"]] == [untagged]
    assert result["deleted_snapshots"][0]["managed"] is False
    assert own_snapshots(ec2) == {}


def test_s3_policy_is_scoped_to_its_bucket(aws, tmp_path):
    scenario = S3Mirror()
    if not module_exists(scenario.feature):
        pytest.skip("s3_mirror is not in the collection")
    options = scenario.seed(aws, tmp_path)
    aws.client("s3", REGION).create_bucket(Bucket="other-bucket")
    key = iam_user(aws, iam_actions.policy_document([dict(scenario.feature, bucket="other-bucket")]))

    run, result = run_as(aws, tmp_path, key, "run", "s3_mirror", options)

    assert run.rc != 0, result
    assert 'not authorized to perform: s3:ListBucket on resource: \\"arn:aws:s3:::seed-images\\"' in json.dumps(result)
    [error] = result["errors"]
    assert (error["resource"], error["region"], error["action"], error["code"]) == (
        "seed-images",
        REGION,
        "list",
        "AccessDenied",
    )
    assert scenario.state(aws) == {}


def user_client(aws, key):
    access_key, secret_key = key
    return boto3.client(
        "ec2",
        region_name=REGION,
        endpoint_url=aws.endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
    )


RESTORE_TAGS = {"RestoredBy": "opsvault.aws_backup"}


def test_restore_policy_launches_only_tagged_restores_of_managed_amis(aws, tmp_path):
    scenario = InstanceRestore()
    if not module_exists(scenario.feature):
        pytest.skip("instance_restore is not in the collection")
    options = scenario.seed(aws, tmp_path)
    ec2 = aws.ec2(REGION)
    [managed] = [image["ImageId"] for image in managed_images(ec2)]
    unmanaged = ec2.create_image(InstanceId=options["instance_ids"][0], Name="hand-made")["ImageId"]
    as_user = user_client(aws, iam_user(aws, iam_actions.policy_document([scenario.feature])))
    interface = [{"DeviceIndex": 0, "SubnetId": options["subnet_id"], "Groups": options["security_group_ids"]}]
    tagged = tag_specs("instance", RESTORE_TAGS) + tag_specs("volume", RESTORE_TAGS)
    launch = dict(MinCount=1, MaxCount=1, InstanceType="t3.micro", NetworkInterfaces=interface)

    with enforce_iam(aws.endpoint):
        refused = []
        for image_id, tags in ((managed, tag_specs("instance", {"A": "b"})), (unmanaged, tagged)):
            try:
                as_user.run_instances(ImageId=image_id, TagSpecifications=tags, **launch)
            except ClientError as exc:
                refused.append((exc.response["Error"]["Code"], exc.response["Error"]["Message"]))
        allowed = as_user.run_instances(ImageId=managed, TagSpecifications=tagged, **launch)

    instance_arn = "arn:aws:ec2:{0}:{1}:instance/*".format(REGION, fleet.ACCOUNT_ID)
    assert [code for code, _message in refused] == ["UnauthorizedOperation"] * 2
    assert "ec2:RunInstances on resource: {0}".format(instance_arn) in refused[0][1]
    assert "ec2:RunInstances on resource: arn:aws:ec2:{0}::image/{1}".format(REGION, unmanaged) in refused[1][1]
    assert len(allowed["Instances"]) == 1


def test_volume_restore_policy_creates_only_tagged_volumes_from_managed_snapshots(aws, tmp_path):
    scenario = VolumeRestore(attach=False)
    if not module_exists(scenario.feature):
        pytest.skip("volume_restore is not in the collection")
    options = scenario.seed(aws, tmp_path)
    ec2 = aws.ec2(REGION)
    [volume] = options["volume_ids"]
    [managed] = [item["SnapshotId"] for item in own_snapshots(ec2).values() if fleet.tags_of(item).get("CreatedBy")]
    unmanaged = snapshot(ec2, volume, {"VolumeId": volume})
    as_user = user_client(aws, iam_user(aws, iam_actions.policy_document([scenario.feature])))
    zone = options["availability_zone"]

    with enforce_iam(aws.endpoint):
        refused = []
        for snapshot_id, tags in ((managed, {"A": "b"}), (unmanaged, RESTORE_TAGS)):
            try:
                as_user.create_volume(
                    SnapshotId=snapshot_id, AvailabilityZone=zone, TagSpecifications=tag_specs("volume", tags)
                )
            except ClientError as exc:
                refused.append((exc.response["Error"]["Code"], exc.response["Error"]["Message"]))
        allowed = as_user.create_volume(
            SnapshotId=managed, AvailabilityZone=zone, TagSpecifications=tag_specs("volume", RESTORE_TAGS)
        )

    assert [code for code, _message in refused] == ["UnauthorizedOperation"] * 2
    assert (
        "ec2:CreateVolume on resource: arn:aws:ec2:{0}:{1}:volume/*".format(REGION, fleet.ACCOUNT_ID) in refused[0][1]
    )
    assert "ec2:CreateVolume on resource: arn:aws:ec2:{0}::snapshot/{1}".format(REGION, unmanaged) in refused[1][1]
    assert allowed["SnapshotId"] == managed


VAULT_FEATURE = "backup_copy_vault"
PER_ITEM_ACTIONS = ("ec2:ModifyImageAttribute", "ec2:ModifySnapshotAttribute", "ec2:CopyImage", "ec2:CopySnapshot")
SOURCE_VAULT_FEATURE = {"name": "backup_copy", "same_account": False, "cross_account": True}


def vault_account(aws, document):
    """A vault account whose role (trusting this account) has ``document`` as its only policy, and its key."""
    from moto.backends import get_backend

    from tests.harness import organization

    org = organization.Organization(aws.endpoint, {"vault": "ACTIVE"})
    account = org.accounts["vault"]
    role_arn = organization.create_role(account, "OpsvaultBackupVault")
    get_backend("iam")[account]["aws"].put_role_policy("OpsvaultBackupVault", "vault", json.dumps(document))
    credentials = aws.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="setup")["Credentials"]
    kms = boto3.client(
        "kms",
        region_name=COPY_REGION,
        endpoint_url=aws.endpoint,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    return account, kms.create_key(Description="vault")["KeyMetadata"]["Arn"], credentials


def vault_copies(aws, credentials):
    ec2 = boto3.client(
        "ec2",
        region_name=COPY_REGION,
        endpoint_url=aws.endpoint,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    found = {}
    for image in ec2.describe_images(Owners=["self"])["Images"]:
        found[fleet.tags_of(image).get("SourceImageId")] = image["ImageId"]
    for item in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]:
        if "SourceSnapshotId" in fleet.tags_of(item):
            found[fleet.tags_of(item)["SourceSnapshotId"]] = item["SnapshotId"]
    found.pop(None, None)
    return found


def vault_removal_cases():
    if not module_exists("backup_copy"):
        return []
    cases = [("source", action) for action in iam_actions.actions(SOURCE_VAULT_FEATURE)]
    cases += [("vault", action) for action in iam_actions.actions(VAULT_FEATURE)]
    return [pytest.param(side, action, id="{0}-without-{1}".format(side, action)) for side, action in cases]


def copy_to_vault(aws, tmp_path, source_policy, vault_policy):
    sources = copy_sources(aws.ec2(REGION))
    # The EBS snapshot is encrypted with a key of the source account: the source role describes it.
    source_key = aws.client("kms", REGION).create_key(Description="source")["KeyMetadata"]["Arn"]
    encrypted = fleet.ec2_backend(REGION).snapshots[sources[1]]
    encrypted.encrypted, encrypted.kms_key_id = True, source_key
    account, key, credentials = vault_account(aws, vault_policy)
    user_key = iam_user(aws, source_policy)
    options = {"destinations": [{"region": COPY_REGION, "account_id": account, "kms_key_id": key}]}
    run, result = run_as(aws, tmp_path, user_key, "run", "backup_copy", options)
    return sources, credentials, run, result


@pytest.mark.skipif(not module_exists("backup_copy"), reason="backup_copy is not in the collection")
def test_backup_copy_to_a_vault_account_works_under_exactly_the_two_generated_policies(aws, tmp_path):
    sources, credentials, run, result = copy_to_vault(
        aws, tmp_path, iam_actions.policy_document([SOURCE_VAULT_FEATURE]), iam_actions.policy_document([VAULT_FEATURE])
    )

    assert run.rc == 0, result
    assert sorted(vault_copies(aws, credentials)) == sorted(sources)
    assert len(result["unshared"]) == 2


@pytest.mark.parametrize("side, action", vault_removal_cases())
def test_backup_copy_to_a_vault_account_fails_naming_the_action_removed_from_either_role(aws, tmp_path, side, action):
    source_policy = iam_actions.policy_document([SOURCE_VAULT_FEATURE])
    vault_policy = iam_actions.policy_document([VAULT_FEATURE])
    if side == "source":
        source_policy = without(source_policy, action)
    else:
        vault_policy = without(vault_policy, action)

    sources, credentials, run, result = copy_to_vault(aws, tmp_path, source_policy, vault_policy)

    assert run.rc != 0 and result.get("failed") is True, result
    reported = json.dumps({key: result.get(key) for key in ("msg", "errors", "error")})
    assert "not authorized to perform: {0}".format(action) in reported, reported
    copied = vault_copies(aws, credentials)
    if action in PER_ITEM_ACTIONS:
        # The AMI and the snapshot are copied as separate items: the one the action is not needed for goes on.
        assert len(copied) < len(sources), copied
    else:
        assert copied == {}


# ---------------------------------------------------------------- the restore drill's own policy

DRILL_FEATURE = {"name": "restore_drill", "commands": True, "volumes": True, "report_bucket": "drill-reports"}
DRILL_TAGGED = [{"Name": "tag-key", "Values": ["RestoreDrill"]}]


def drill_seed(aws):
    """A backed-up instance (with a simulated SSM Agent on its AMI), a backed-up volume and the report bucket."""
    ec2 = aws.ec2(REGION)
    [source] = fleet.launch(ec2, {"Backup": "", "Name": "web"})
    image_id = ec2.create_image(
        InstanceId=source,
        Name="web-backup",
        TagSpecifications=tag_specs("image", dict(MANAGED, DeleteOn="2999-01-01", SourceInstanceId=source)),
    )["ImageId"]
    moto_ssm_agent.install_agent(image_id, {"systemctl is-active app": (0, "active\n")})
    volume = fleet.add_volume(ec2)
    snapshot_id = snapshot(ec2, volume, dict(MANAGED, DeleteOn="2999-01-01", VolumeId=volume))
    aws.client("s3", REGION).create_bucket(Bucket=DRILL_FEATURE["report_bucket"])
    variables = {
        "restore_drill_instance_ids": [source],
        "restore_drill_volume_ids": [volume],
        "restore_drill_commands": [{"name": "app", "command": "systemctl is-active app", "expect": "^active$"}],
        "restore_drill_report_bucket": DRILL_FEATURE["report_bucket"],
        "restore_drill_report_key": "drills/weekly",
        "restore_drill_run_id": "drill-1",
    }
    return variables, image_id, snapshot_id


def drill_as(aws, tmp_path, key, variables):
    access_key, secret_key = key
    env = {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key, "AWS_REGION": REGION}
    with enforce_iam(aws.endpoint):
        return run_playbook(
            "opsvault.aws_backup.restore_drill", tmp_path, endpoint=aws.endpoint, extra_vars=variables, env=env
        )


def drill_leftovers(ec2):
    live = [{"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}]
    reservations = ec2.describe_instances(Filters=DRILL_TAGGED + live)["Reservations"]
    endpoints = ec2.describe_vpc_endpoints(Filters=DRILL_TAGGED)["VpcEndpoints"]
    return {
        "instances": [instance["InstanceId"] for reservation in reservations for instance in reservation["Instances"]],
        "volumes": [volume["VolumeId"] for volume in ec2.describe_volumes(Filters=DRILL_TAGGED)["Volumes"]],
        "endpoints": [item["VpcEndpointId"] for item in endpoints if item["State"].lower() != "deleted"],
        "groups": [group["GroupId"] for group in ec2.describe_security_groups(Filters=DRILL_TAGGED)["SecurityGroups"]],
        "subnets": [subnet["SubnetId"] for subnet in ec2.describe_subnets(Filters=DRILL_TAGGED)["Subnets"]],
        "vpcs": [vpc["VpcId"] for vpc in ec2.describe_vpcs(Filters=DRILL_TAGGED)["Vpcs"]],
    }


def test_the_drill_passes_under_exactly_its_generated_policy(aws, tmp_path):
    variables, image_id, snapshot_id = drill_seed(aws)
    key = iam_user(aws, iam_actions.policy_document([DRILL_FEATURE]))

    run = drill_as(aws, tmp_path, key, variables)

    failures = [(task["task_name"], task.get("msg"), task.get("results")) for task in run.tasks if task.get("failed")]
    assert run.rc == 0, failures
    ec2 = aws.ec2(REGION)
    assert all(found == [] for found in drill_leftovers(ec2).values()), drill_leftovers(ec2)
    report = json.loads(
        aws.client("s3", REGION).get_object(Bucket="drill-reports", Key="drills/weekly.json")["Body"].read()
    )
    assert (int(report["passed"]), int(report["failed"])) == (2, 0)
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    [image] = ec2.describe_images(ImageIds=[image_id])["Images"]
    [tested] = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    assert fleet.tags_of(image)["LastRestoreTest"] == fleet.tags_of(tested)["LastRestoreTest"] == today + ":passed"


def drill_statements():
    document = iam_actions.policy_document([DRILL_FEATURE])
    # The statements the drill has beyond the restore modules' own (those are proven above, module by module).
    own = ("CreateDrillNetwork", "ChangeOnlyWhatTheDrillMade", "TagTestedBackups", "RunChecksOnDrillInstances")
    statements = [statement for statement in document["Statement"] if statement["Sid"] in own]
    return [pytest.param(statement, id=statement["Sid"]) for statement in statements]


@pytest.mark.parametrize("statement", drill_statements())
def test_the_drill_fails_naming_the_action_when_one_of_its_statements_is_removed(aws, tmp_path, statement):
    variables, _image_id, _snapshot_id = drill_seed(aws)
    document = iam_actions.policy_document([DRILL_FEATURE])
    document = dict(document, Statement=[item for item in document["Statement"] if item["Sid"] != statement["Sid"]])
    key = iam_user(aws, document)

    run = drill_as(aws, tmp_path, key, variables)

    assert run.rc != 0
    denied = [action for action in statement["Action"] if "not authorized to perform: " + action in run.stdout]
    assert denied, [task.get("msg") for task in run.tasks if task.get("failed")]


def test_the_drill_policy_terminates_deletes_and_tags_only_what_it_may(aws, tmp_path):
    ec2 = aws.ec2(REGION)
    [production, drill_instance] = fleet.launch(ec2, {"Name": "prod"}, count=2)
    ec2.create_tags(Resources=[drill_instance], Tags=[{"Key": "RestoreDrill", "Value": "20260101T000000Z"}])
    production_volume = fleet.add_volume(ec2)
    drill_volume = fleet.add_volume(ec2, tags={"RestoreDrill": "20260101T000000Z"})
    image_id = ec2.create_image(
        InstanceId=production, Name="backup", TagSpecifications=tag_specs("image", dict(MANAGED, DeleteOn="2999-01-01"))
    )["ImageId"]
    as_user = user_client(aws, iam_user(aws, iam_actions.policy_document([DRILL_FEATURE])))

    def attempt(call, **params):
        try:
            getattr(as_user, call)(**params)
        except ClientError as exc:
            return exc.response["Error"]["Code"], exc.response["Error"]["Message"]
        return "allowed", None

    with enforce_iam(aws.endpoint):
        outcomes = {
            "terminate production": attempt("terminate_instances", InstanceIds=[production]),
            "delete production volume": attempt("delete_volume", VolumeId=production_volume),
            "change DeleteOn of a backup": attempt(
                "create_tags", Resources=[image_id], Tags=[{"Key": "DeleteOn", "Value": "2020-01-01"}]
            ),
            "terminate drill instance": attempt("terminate_instances", InstanceIds=[drill_instance]),
            "delete drill volume": attempt("delete_volume", VolumeId=drill_volume),
            "tag the tested backup": attempt(
                "create_tags", Resources=[image_id], Tags=[{"Key": "LastRestoreTest", "Value": "2026-12-01:passed"}]
            ),
        }

    codes = {name: code for name, (code, _message) in outcomes.items()}
    assert codes == {
        "terminate production": "UnauthorizedOperation",
        "delete production volume": "UnauthorizedOperation",
        "change DeleteOn of a backup": "UnauthorizedOperation",
        "terminate drill instance": "allowed",
        "delete drill volume": "allowed",
        "tag the tested backup": "allowed",
    }
    instance_arn = "arn:aws:ec2:{0}:{1}:instance/{2}".format(REGION, fleet.ACCOUNT_ID, production)
    assert "ec2:TerminateInstances on resource: " + instance_arn in outcomes["terminate production"][1]
    [state] = [
        instance["State"]["Name"]
        for reservation in ec2.describe_instances(InstanceIds=[production])["Reservations"]
        for instance in reservation["Instances"]
    ]
    assert state == "running"


@pytest.mark.parametrize("allowed", [True, False], ids=["with-abort", "without-abort"])
def test_a_refused_multipart_upload_is_aborted_only_with_its_action(aws, tmp_path, monkeypatch, allowed):
    feature = {"name": "s3_restore", "bucket": "restored-images", "prefix": "uploads/"}
    s3 = aws.client("s3", REGION)
    s3.create_bucket(Bucket="restored-images")
    s3.put_object(Bucket="restored-images", Key="uploads/big.bin", Body=b"old")
    src = tmp_path / "myS3backup"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(9 * 1024 * 1024))
    original = S3Response.list_objects_v2

    def list_then_change(self):
        answer = original(self)
        self.backend.put_object("restored-images", "uploads/big.bin", b"changed in the bucket meanwhile")
        return answer

    monkeypatch.setattr(S3Response, "list_objects_v2", list_then_change)
    document = iam_actions.policy_document([feature])
    if not allowed:
        document = without(document, "s3:AbortMultipartUpload")
    key = iam_user(aws, document)

    run, result = run_as(
        aws, tmp_path, key, "run", "s3_restore", {"src": str(src), "bucket": "restored-images", "prefix": "uploads/"}
    )

    assert run.rc == 0, result
    assert [item["resource"] for item in result["skipped_resources"]] == ["uploads/big.bin"]
    left = s3.list_multipart_uploads(Bucket="restored-images").get("Uploads", [])
    assert [upload["Key"] for upload in left] == ([] if allowed else ["uploads/big.bin"])
