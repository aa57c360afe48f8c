"""The opsvault.aws_backup.iam role through real ansible-playbook runs against moto."""

import json
import urllib.parse
import urllib.request

import pytest

from ansible_collections.opsvault.aws_backup.plugins.module_utils.iam_actions import policy_document
from tests.harness import fleet

ROLE = "opsvault-aws-backup"
ACCOUNT = fleet.ACCOUNT_ID
POLICY_ARN = "arn:aws:iam::{0}:policy/{1}".format(ACCOUNT, ROLE)
SSM_ARN = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
DEFAULT_FEATURES = ["ami_backup", "ami_purge", "ebs_snapshot", "snapshot_purge"]


@pytest.fixture
def aws_managed_policies(aws, monkeypatch):
    """moto loads the AWS managed policies (AmazonSSMManagedInstanceCore) only when asked, at reset."""
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    urllib.request.urlopen(urllib.request.Request(aws.endpoint + "/moto-api/reset", method="POST")).read()


def iam_role_task(**role_vars):
    return {"name": "iam", "ansible.builtin.include_role": {"name": "opsvault.aws_backup.iam"}, "vars": role_vars}


def document(value):
    return json.loads(urllib.parse.unquote(value)) if isinstance(value, str) else value


def policy_in_moto(iam):
    policy = iam.get_policy(PolicyArn=POLICY_ARN)["Policy"]
    versions = iam.list_policy_versions(PolicyArn=POLICY_ARN)["Versions"]
    default = iam.get_policy_version(PolicyArn=POLICY_ARN, VersionId=policy["DefaultVersionId"])["PolicyVersion"]
    return document(default["Document"]), versions


def test_iam_role_check_mode_then_create_then_rerun_changes_nothing(aws, aws_managed_policies, play):
    iam = aws.client("iam")
    role_vars = {"iam_s3_mirror_bucket": "seed-images", "iam_s3_mirror_prefix": "uploads/"}

    preview = play([iam_role_task(**role_vars)], check=True)
    assert preview.rc == 0, preview.stdout
    assert {"Create the least-privilege managed policy", "Create the role EC2 instances assume"} <= set(
        preview.changed_tasks()
    )
    assert iam.list_roles()["Roles"] == []
    assert iam.list_policies(Scope="Local")["Policies"] == []
    assert iam.list_instance_profiles()["InstanceProfiles"] == []

    created = play([iam_role_task(**role_vars)])
    assert created.rc == 0, created.stdout
    assert "Create the instance profile holding the role" in created.changed_tasks()

    expected = policy_document(
        DEFAULT_FEATURES + [{"name": "s3_mirror", "bucket": "seed-images", "prefix": "uploads/"}]
    )
    actual, versions = policy_in_moto(iam)
    assert actual == expected
    assert len(versions) == 1

    role = iam.get_role(RoleName=ROLE)["Role"]
    trust = document(role["AssumeRolePolicyDocument"])
    assert trust["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]
    attached = iam.list_attached_role_policies(RoleName=ROLE)["AttachedPolicies"]
    assert sorted(policy["PolicyArn"] for policy in attached) == sorted([POLICY_ARN, SSM_ARN])
    assert iam.list_role_policies(RoleName=ROLE)["PolicyNames"] == []

    profile = iam.get_instance_profile(InstanceProfileName=ROLE)["InstanceProfile"]
    assert [item["RoleName"] for item in profile["Roles"]] == [ROLE]
    assert {tag["Key"]: tag["Value"] for tag in role.get("Tags", [])} == {"CreatedBy": "opsvault.aws_backup"}

    facts = created.role_result("Publish the IAM resources of the backup host")["ansible_facts"]
    assert facts["iam_policy_arn"] == POLICY_ARN
    assert facts["iam_role_arn"] == role["Arn"]
    assert facts["iam_instance_profile_arn"] == profile["Arn"]

    rerun = play([iam_role_task(**role_vars)])
    assert rerun.rc == 0, rerun.stdout
    assert [name for name in rerun.changed_tasks() if name != "Publish the IAM resources of the backup host"] == []
    assert policy_in_moto(iam) == (actual, versions)


def test_iam_role_updates_the_policy_to_fewer_features_and_drops_ssm(aws, aws_managed_policies, play):
    iam = aws.client("iam")
    assert play([iam_role_task()]).rc == 0

    updated = play([iam_role_task(iam_features=["ami_backup"], iam_attach_ssm_policy=False)])
    assert updated.rc == 0, updated.stdout
    assert "Create the least-privilege managed policy" in updated.changed_tasks()

    actual, versions = policy_in_moto(iam)
    assert actual == policy_document(["ami_backup"])
    assert len(versions) == 1
    attached = iam.list_attached_role_policies(RoleName=ROLE)["AttachedPolicies"]
    assert [policy["PolicyArn"] for policy in attached] == [POLICY_ARN]


def test_iam_role_associates_the_profile_with_an_existing_instance(aws, play):
    ec2 = aws.ec2()
    [instance_id] = fleet.launch(ec2, {"Name": "backup-host"})

    run = play([iam_role_task(iam_role_name="backup-host", iam_instance_id=instance_id, iam_attach_ssm_policy=False)])
    assert run.rc == 0, run.stdout
    assert run.role_result("Associate the instance profile with the backup host instance")["changed"] is True

    instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    profile = aws.client("iam").get_instance_profile(InstanceProfileName="backup-host")["InstanceProfile"]
    assert instance["IamInstanceProfile"]["Arn"] == profile["Arn"]

    rerun = play([iam_role_task(iam_role_name="backup-host", iam_instance_id=instance_id, iam_attach_ssm_policy=False)])
    assert rerun.rc == 0, rerun.stdout
    assert rerun.role_result("Associate the instance profile with the backup host instance")["changed"] is False


def test_iam_role_rejects_mistyped_and_unknown_values_before_any_change(aws, play):
    iam = aws.client("iam")
    mistyped = play([iam_role_task(iam_attach_ssm_policy="sometimes")])
    assert mistyped.rc != 0
    text = json.dumps(mistyped.output)
    assert "iam_attach_ssm_policy" in text and "bool" in text, text

    wrong_choice = play([iam_role_task(iam_partition="aws-mars")])
    assert wrong_choice.rc != 0
    text = json.dumps(wrong_choice.output)
    assert "iam_partition" in text and "aws-mars" in text and "aws-cn" in text

    bad_feature = play([iam_role_task(iam_features=["ami_backup", "tape_backup"])])
    assert bad_feature.rc != 0
    assert "unknown feature 'tape_backup'" in json.dumps(bad_feature.output)

    assert iam.list_roles()["Roles"] == []
    assert iam.list_policies(Scope="Local")["Policies"] == []
