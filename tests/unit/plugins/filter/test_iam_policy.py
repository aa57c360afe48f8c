import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.opsvault.aws_backup.plugins.filter.iam_policy import FilterModule
from ansible_collections.opsvault.aws_backup.plugins.filter.iam_policy import iam_policy
from ansible_collections.opsvault.aws_backup.plugins.module_utils import iam_actions

MANAGED = {"StringEquals": {"aws:ResourceTag/CreatedBy": "opsvault.aws_backup"}}


def statements_with(document, action):
    return [statement for statement in document["Statement"] if action in statement["Action"]]


def only_statement(document, action):
    found = statements_with(document, action)
    assert len(found) == 1, found
    return found[0]


def test_filter_is_registered_under_its_name():
    assert FilterModule().filters() == {"iam_policy": iam_policy}


@pytest.mark.parametrize(
    "feature, expected",
    [
        (
            "ami_backup",
            ["ec2:CreateImage", "ec2:CreateTags", "ec2:DescribeImages", "ec2:DescribeInstances", "ec2:DescribeRegions"],
        ),
        (
            "ami_purge",
            [
                "ec2:DeleteSnapshot",
                "ec2:DeregisterImage",
                "ec2:DescribeImages",
                "ec2:DescribeLockedSnapshots",
                "ec2:DescribeRegions",
                "ec2:DescribeSnapshots",
            ],
        ),
        (
            {"name": "ami_purge", "remove_deregistration_protection": True},
            [
                "ec2:DeleteSnapshot",
                "ec2:DeregisterImage",
                "ec2:DescribeImages",
                "ec2:DescribeLockedSnapshots",
                "ec2:DescribeRegions",
                "ec2:DescribeSnapshots",
                "ec2:DisableImageDeregistrationProtection",
            ],
        ),
        (
            "vault_guard",
            [
                "ec2:DescribeImages",
                "ec2:DescribeLockedSnapshots",
                "ec2:DescribeRegions",
                "ec2:DescribeSnapshots",
                "ec2:EnableImageDeregistrationProtection",
                "ec2:LockSnapshot",
            ],
        ),
        (
            {"name": "vault_guard", "lock_snapshots": False, "protect_images": False, "recycle_bin": True},
            ["ec2:DescribeRegions", "rbin:CreateRule", "rbin:ListRules", "rbin:LockRule", "rbin:UpdateRule"],
        ),
        (
            "ebs_snapshot",
            [
                "ec2:CreateSnapshot",
                "ec2:CreateTags",
                "ec2:DescribeInstances",
                "ec2:DescribeRegions",
                "ec2:DescribeSnapshots",
                "ec2:DescribeVolumes",
            ],
        ),
        (
            {"name": "ebs_snapshot", "mode": "instance"},
            [
                "ec2:CreateSnapshots",
                "ec2:CreateTags",
                "ec2:DescribeInstances",
                "ec2:DescribeRegions",
                "ec2:DescribeSnapshots",
                "ec2:DescribeVolumes",
            ],
        ),
        (
            "snapshot_purge",
            [
                "ec2:DeleteSnapshot",
                "ec2:DescribeImages",
                "ec2:DescribeLockedSnapshots",
                "ec2:DescribeRegions",
                "ec2:DescribeSnapshots",
            ],
        ),
        (
            {"name": "snapshot_purge", "action": "archive"},
            ["ec2:DescribeImages", "ec2:DescribeRegions", "ec2:DescribeSnapshots", "ec2:ModifySnapshotTier"],
        ),
        (
            {"name": "snapshot_purge", "action": "report"},
            ["ec2:DescribeImages", "ec2:DescribeLockedSnapshots", "ec2:DescribeRegions", "ec2:DescribeSnapshots"],
        ),
        (
            {"name": "snapshot_purge", "stale": "volume_gone"},
            [
                "ec2:DeleteSnapshot",
                "ec2:DescribeImages",
                "ec2:DescribeLockedSnapshots",
                "ec2:DescribeRegions",
                "ec2:DescribeSnapshots",
                "ec2:DescribeVolumes",
            ],
        ),
        (
            {"name": "snapshot_purge", "stale": "unattached"},
            [
                "ec2:DeleteSnapshot",
                "ec2:DescribeImages",
                "ec2:DescribeInstances",
                "ec2:DescribeLockedSnapshots",
                "ec2:DescribeRegions",
                "ec2:DescribeSnapshots",
                "ec2:DescribeVolumes",
            ],
        ),
        ({"name": "s3_mirror", "bucket": "images"}, ["s3:GetObject", "s3:ListBucket"]),
    ],
)
def test_each_feature_allows_exactly_the_actions_it_calls(feature, expected):
    assert iam_actions.actions(feature) == expected
    assert iam_actions.policy_actions(iam_policy([feature])) == expected


def test_reboot_needs_nothing_beyond_create_image():
    assert "ec2:RebootInstances" not in iam_actions.policy_actions(iam_policy(["ami_backup"]))


def test_create_tags_is_only_allowed_for_tagging_on_create():
    document = iam_policy(["ami_backup", {"name": "ebs_snapshot", "mode": ["volume", "instance"]}])
    statement = only_statement(document, "ec2:CreateTags")
    assert statement["Action"] == ["ec2:CreateTags"]
    assert statement["Condition"] == {
        "StringEquals": {"ec2:CreateAction": ["CreateImage", "CreateSnapshot", "CreateSnapshots"]}
    }
    assert statement["Resource"] == ["arn:aws:ec2:*::image/*", "arn:aws:ec2:*::snapshot/*"]


def test_deletes_are_limited_to_managed_images_and_snapshots():
    document = iam_policy(["ami_purge", {"name": "snapshot_purge", "action": ["delete", "archive"]}])
    deregister = only_statement(document, "ec2:DeregisterImage")
    assert deregister["Resource"] == "arn:aws:ec2:*::image/*"
    assert deregister["Condition"] == MANAGED
    delete = only_statement(document, "ec2:DeleteSnapshot")
    assert delete["Action"] == ["ec2:DeleteSnapshot", "ec2:ModifySnapshotTier"]
    assert delete["Resource"] == "arn:aws:ec2:*::snapshot/*"
    assert delete["Condition"] == MANAGED


@pytest.mark.parametrize(
    "feature",
    [
        {"name": "ami_purge", "adopt_legacy": True},
        {"name": "snapshot_purge", "adopt_legacy": "yes"},
        {"name": "snapshot_purge", "stale": "volume_gone", "stale_include_unmanaged": True},
        {"name": "snapshot_purge", "stale": "unattached", "stale_include_unmanaged": "on"},
    ],
)
def test_adopting_legacy_or_stale_snapshots_drops_the_marker_condition(feature):
    document = iam_policy([feature])
    statement = only_statement(document, "ec2:DeleteSnapshot")
    assert "Condition" not in statement
    assert statement["Resource"] == "arn:aws:ec2:*::snapshot/*"


@pytest.mark.parametrize(
    "feature",
    [
        {"name": "snapshot_purge", "stale": "volume_gone"},
        {"name": "snapshot_purge", "stale": "unattached", "stale_include_unmanaged": False},
        {"name": "snapshot_purge", "stale_include_unmanaged": True},
        {"name": "snapshot_purge", "action": ["delete", "archive"], "stale": "volume_gone"},
    ],
)
def test_stale_clean_up_of_managed_snapshots_keeps_the_marker_condition(feature):
    statement = only_statement(iam_policy([feature]), "ec2:DeleteSnapshot")
    assert statement["Condition"] == MANAGED


def test_an_unconditional_grant_absorbs_the_same_conditional_one():
    document = iam_policy(
        ["ami_purge", {"name": "snapshot_purge", "stale": "unattached", "stale_include_unmanaged": True}]
    )
    assert "Condition" not in only_statement(document, "ec2:DeleteSnapshot")
    assert only_statement(document, "ec2:DeregisterImage")["Condition"] == MANAGED


def test_s3_is_scoped_to_the_bucket_and_the_prefix():
    document = iam_policy([{"name": "s3_mirror", "bucket": "images", "prefix": "uploads/"}], partition="aws-cn")
    assert only_statement(document, "s3:ListBucket")["Resource"] == "arn:aws-cn:s3:::images"
    assert only_statement(document, "s3:GetObject")["Resource"] == "arn:aws-cn:s3:::images/uploads/*"
    assert not [s for s in document["Statement"] if s["Action"][0].startswith("ec2:")]


def test_merging_host_results_reads_only_their_s3_prefix_and_nothing_of_ec2():
    document = iam_policy([{"name": "backup_coverage", "host_results": "s3://reports/coverage/daily/"}])
    assert only_statement(document, "s3:ListBucket")["Resource"] == "arn:aws:s3:::reports"
    assert only_statement(document, "s3:GetObject")["Resource"] == "arn:aws:s3:::reports/coverage/daily/*"
    assert not [s for s in document["Statement"] if s["Action"][0].startswith("ec2:")]
    with pytest.raises(AnsibleFilterError, match="'/var/lib/results'"):
        iam_policy([{"name": "backup_coverage", "host_results": "/var/lib/results"}])


def test_every_feature_together_has_no_wildcard_action_and_no_unscoped_mutation():
    document = iam_policy(
        [
            "ami_backup",
            "ami_purge",
            {"name": "ebs_snapshot", "mode": ["volume", "instance"]},
            {"name": "snapshot_purge", "action": ["delete", "archive"]},
            {"name": "s3_mirror", "bucket": "images"},
        ]
    )
    sids = [statement["Sid"] for statement in document["Statement"]]
    assert len(sids) == len(set(sids))
    assert document["Version"] == "2012-10-17"
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        for action in statement["Action"]:
            assert "*" not in action
            if statement["Resource"] == "*":
                assert action.split(":")[1].startswith(("Describe", "CreateImage", "CreateSnapshot")), statement


def test_the_same_action_listed_by_two_features_appears_once():
    document = iam_policy(["ami_backup", "ami_purge", "snapshot_purge"])
    describe = only_statement(document, "ec2:DescribeImages")
    assert describe["Action"].count("ec2:DescribeImages") == 1


@pytest.mark.parametrize(
    "features, message",
    [
        (["ami_backupp"], "unknown feature 'ami_backupp'; features: accounts, ami_backup, ami_purge"),
        ([{"name": "ami_backup", "reboot": True}], "unknown option(s) reboot for feature ami_backup; options: none"),
        (["s3_mirror"], "s3_mirror needs its bucket name"),
        ([{"name": "s3_mirror", "bucket": "b*"}], "s3_mirror needs its bucket name"),
        ([{"name": "snapshot_purge", "action": "shred"}], "action must be one or more of delete, archive, report"),
        ([{"name": "snapshot_purge", "stale": "old"}], "stale must be one of none, volume_gone, unattached"),
        ([{"name": "ami_purge", "adopt_legacy": "maybe"}], "adopt_legacy must be a boolean, got 'maybe'"),
        (
            [{"name": "snapshot_purge", "stale_include_unmanaged": "perhaps"}],
            "stale_include_unmanaged must be a boolean, got 'perhaps'",
        ),
        ([42], "a feature is a name or a dict with 'name', got 42"),
        ([], "at least one feature is needed"),
    ],
)
def test_bad_features_fail_with_a_message_naming_them(features, message):
    with pytest.raises(AnsibleFilterError) as failure:
        iam_policy(features)
    assert message in str(failure.value)
    assert "opsvault.aws_backup.iam_policy" in str(failure.value)
