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

import boto3
import pytest
from botocore.exceptions import ClientError

from ansible_collections.opsvault.aws_backup.plugins.module_utils import iam_actions
from tests.harness import fleet
from tests.harness.ansible_run import REPO
from tests.harness.ansible_run import run_playbook
from tests.harness.iam_enforcement import enforce_iam

REGION = "us-east-1"
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
    InstanceRestore(),
    VolumeRestore(attach=True),
    VolumeRestore(attach=False),
    S3Restore(),
    BackupCoverage(),
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
