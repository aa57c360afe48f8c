# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The IAM actions each module calls: the single source of the least-privilege policy.

A feature is a module name, optionally with the options that change what it calls
(``{"name": "snapshot_purge", "action": "archive"}``). ``grants(feature)`` lists what it
needs; ``policy_document(features)`` merges the grants of several features into one IAM
policy document. Scoping follows what AWS evaluates:

* Describe calls support no resource-level scoping: ``Resource: "*"``.
* Tags are written in the create call (TagSpecifications), which AWS authorises as
  ``ec2:CreateTags`` with the condition key ``ec2:CreateAction``; the policy allows
  ``ec2:CreateTags`` only for those create actions, so it cannot retag existing resources.
* Deregister/delete/archive are scoped to the image or snapshot resource type and, unless a
  feature adopts legacy resources or opts in to the clean-up of every stale snapshot
  (``stale_include_unmanaged``), to resources carrying the managed marker tag.
* S3 is scoped to the bucket (``s3:ListBucket``) and its objects under the prefix (``s3:GetObject``).
* Restores launch and create only what carries the restore marker (``aws:RequestTag/RestoredBy``
  on the new instance, volume or network interface), only from managed AMIs and snapshots
  (``aws:ResourceTag/CreatedBy``), and attach only restored volumes.
  https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ExamplePolicies_EC2.html#iam-example-runinstances
* The restore drill changes, terminates and deletes only what carries its ``RestoreDrill`` tag
  (``aws:ResourceTag/RestoreDrill`` not null), tags the tested backups only with ``LastRestoreTest``
  and only managed ones, and runs its check commands only on its own instances.
"""

import json
from collections import namedtuple

from ansible_collections.opsvault.aws_backup.plugins.module_utils import contract
from ansible_collections.opsvault.aws_backup.plugins.module_utils import options as module_options
from ansible_collections.opsvault.aws_backup.plugins.module_utils import values

POLICY_VERSION = "2012-10-17"

# Every API call the modules make goes through one of these; `target_regions` calls DescribeRegions.
DESCRIBE_REGIONS = "ec2:DescribeRegions"

Grant = namedtuple("Grant", ["sid", "actions", "resources", "condition"])

SNAPSHOT_PURGE_ACTIONS = module_options.SNAPSHOT_PURGE_ACTIONS
SNAPSHOT_PURGE_STALE = module_options.STALE_MODES
EBS_SNAPSHOT_MODES = module_options.EBS_SNAPSHOT_MODES

TAG_ON_CREATE_SID = "TagOnCreate"


class FeatureError(ValueError):
    pass


def _as_list(value, name, choices, default):
    values = default if value is None else ([value] if isinstance(value, str) else list(value))
    unknown = [item for item in values if item not in choices]
    if unknown or not values:
        raise FeatureError(
            "{0} must be one or more of {1}, got {2!r}".format(name, ", ".join(choices), value if unknown else values)
        )
    return values


def _bool(value, name):
    try:
        return values.parse_yes_no(value, name)
    except ValueError:
        raise FeatureError("{0} must be a boolean, got {1!r}".format(name, value))


def _image_arn(partition):
    return "arn:{0}:ec2:*::image/*".format(partition)


def _snapshot_arn(partition):
    return "arn:{0}:ec2:*::snapshot/*".format(partition)


def _account_arn(partition, resource_type):
    return "arn:{0}:ec2:*:*:{1}/*".format(partition, resource_type)


def _managed_condition():
    return {"StringEquals": {"aws:ResourceTag/" + contract.MARKER_KEY: contract.MARKER_VALUE}}


def _restored_condition(key="aws:RequestTag/"):
    return {"StringEquals": {key + contract.RESTORED_BY_KEY: contract.MARKER_VALUE}}


def _delete_grant(actions, resources, managed_only):
    if managed_only:
        return Grant("DeleteManagedBackups", tuple(actions), tuple(resources), _managed_condition())
    return Grant("DeleteBackups", tuple(actions), tuple(resources), None)


def _tag_on_create(create_actions, resources):
    return Grant(
        TAG_ON_CREATE_SID,
        ("ec2:CreateTags",),
        tuple(resources),
        {"StringEquals": {"ec2:CreateAction": [action.split(":", 1)[1] for action in create_actions]}},
    )


def _ami_backup(options, partition):
    return [
        Grant("Describe", (DESCRIBE_REGIONS, "ec2:DescribeInstances", "ec2:DescribeImages"), ("*",), None),
        Grant("CreateBackups", ("ec2:CreateImage",), ("*",), None),
        _tag_on_create(["ec2:CreateImage"], [_image_arn(partition), _snapshot_arn(partition)]),
    ]


def _ami_purge(options, partition):
    managed_only = not _bool(options.get("adopt_legacy", False), "adopt_legacy")
    describe = (DESCRIBE_REGIONS, "ec2:DescribeImages", "ec2:DescribeSnapshots", "ec2:DescribeLockedSnapshots")
    grants = [
        Grant("Describe", describe, ("*",), None),
        _delete_grant(["ec2:DeregisterImage"], [_image_arn(partition)], managed_only),
        _delete_grant(["ec2:DeleteSnapshot"], [_snapshot_arn(partition)], managed_only),
    ]
    if _bool(options.get("remove_deregistration_protection", False), "remove_deregistration_protection"):
        unprotect = ["ec2:DisableImageDeregistrationProtection"]
        grants.append(_delete_grant(unprotect, [_image_arn(partition)], managed_only))
    return grants


def _ebs_snapshot(options, partition):
    modes = _as_list(options.get("mode"), "mode", EBS_SNAPSHOT_MODES, ["volume"])
    creates = []
    if "volume" in modes:
        creates.append("ec2:CreateSnapshot")
    if "instance" in modes:
        creates.append("ec2:CreateSnapshots")
    # CreateSnapshot(s) authorise the source volume/instance and the new snapshot.
    return [
        Grant(
            "Describe",
            (DESCRIBE_REGIONS, "ec2:DescribeVolumes", "ec2:DescribeInstances", "ec2:DescribeSnapshots"),
            ("*",),
            None,
        ),
        Grant("CreateBackups", tuple(creates), ("*",), None),
        _tag_on_create(creates, [_snapshot_arn(partition)]),
    ]


def _snapshot_purge(options, partition):
    actions = _as_list(options.get("action"), "action", SNAPSHOT_PURGE_ACTIONS, ["delete"])
    stale = options.get("stale") or "none"
    if stale not in SNAPSHOT_PURGE_STALE:
        raise FeatureError("stale must be one of {0}, got {1!r}".format(", ".join(SNAPSHOT_PURGE_STALE), stale))
    adopt_legacy = _bool(options.get("adopt_legacy", False), "adopt_legacy")
    include_unmanaged = _bool(options.get("stale_include_unmanaged", False), "stale_include_unmanaged")
    describe = [DESCRIBE_REGIONS, "ec2:DescribeSnapshots", "ec2:DescribeImages"]
    if set(actions) & {"delete", "report"}:
        describe.append("ec2:DescribeLockedSnapshots")
    if stale != "none":
        describe.append("ec2:DescribeVolumes")
    if stale == "unattached":
        describe.append("ec2:DescribeInstances")
    grants = [Grant("Describe", tuple(describe), ("*",), None)]
    mutating = []
    if "delete" in actions:
        mutating.append("ec2:DeleteSnapshot")
    if "archive" in actions:
        mutating.append("ec2:ModifySnapshotTier")
    if mutating:
        # Only the opt-in clean-up of every stale snapshot (or adopting legacy ones) reaches unmarked snapshots.
        unmanaged = adopt_legacy or (stale != "none" and include_unmanaged)
        grants.append(_delete_grant(mutating, [_snapshot_arn(partition)], not unmanaged))
    return grants


def _s3_mirror(options, partition):
    bucket = options.get("bucket")
    if not bucket or not isinstance(bucket, str) or "/" in bucket or "*" in bucket:
        raise FeatureError("s3_mirror needs its bucket name (a plain name, no wildcard), got {0!r}".format(bucket))
    prefix = options.get("prefix") or ""
    if "*" in prefix:
        raise FeatureError("s3_mirror prefix must not contain a wildcard, got {0!r}".format(prefix))
    bucket_arn = "arn:{0}:s3:::{1}".format(partition, bucket)
    listing, reads = ["s3:ListBucket"], ["s3:GetObject"]
    if _bool(options.get("versions", False), "versions"):  # version_as_of
        listing.extend(("s3:GetBucketVersioning", "s3:ListBucketVersions"))
        reads.append("s3:GetObjectVersion")
    return [
        Grant("ListBucket", tuple(listing), (bucket_arn,), None),
        Grant("ReadObjects", tuple(reads), ("{0}/{1}*".format(bucket_arn, prefix),), None),
    ]


def _accounts(options, partition):
    """The backup host's own calls over the accounts inventory: listing the organisation, assuming the member roles."""
    role_name = options.get("role_name") or "OpsvaultBackup"
    if not isinstance(role_name, str) or "*" in role_name or ":" in role_name:
        raise FeatureError("accounts role_name must be a plain role name (no wildcard), got {0!r}".format(role_name))
    grants = [
        Grant("AssumeMemberRoles", ("sts:AssumeRole",), ("arn:{0}:iam::*:role/{1}".format(partition, role_name),), None)
    ]
    listing = []
    if _bool(options.get("organization", True), "organization"):
        listing.append("organizations:ListAccounts")
    if _bool(options.get("organizational_units", False), "organizational_units"):
        listing.extend(
            (
                "organizations:DescribeOrganizationalUnit",
                "organizations:ListAccountsForParent",
                "organizations:ListOrganizationalUnitsForParent",
            )
        )
    if listing:
        grants.append(Grant("ListOrganization", tuple(listing), ("*",), None))
    return grants


def _s3_restore(options, partition):
    bucket = options.get("bucket")
    if not bucket or not isinstance(bucket, str) or "/" in bucket or "*" in bucket:
        raise FeatureError("s3_restore needs its bucket name (a plain name, no wildcard), got {0!r}".format(bucket))
    prefix = options.get("prefix") or ""
    if "*" in prefix:
        raise FeatureError("s3_restore prefix must not contain a wildcard, got {0!r}".format(prefix))
    bucket_arn = "arn:{0}:s3:::{1}".format(partition, bucket)
    # s3:PutObject also authorises the multipart upload calls; a multipart upload refused at completion (the
    # object changed since the listing) is aborted, so that its parts are not kept and billed.
    writes = ["s3:PutObject", "s3:AbortMultipartUpload"]
    if _bool(options.get("delete", False), "delete"):
        writes.append("s3:DeleteObject")
    return [
        Grant("ListBucket", ("s3:ListBucket",), (bucket_arn,), None),
        Grant("WriteObjects", tuple(writes), ("{0}/{1}*".format(bucket_arn, prefix),), None),
    ]


def _instance_restore(options, partition):
    describe = [
        DESCRIBE_REGIONS,
        "ec2:DescribeImages",
        "ec2:DescribeInstances",
        "ec2:DescribeSubnets",
        "ec2:DescribeSecurityGroups",
    ]
    if _bool(options.get("wait", False), "wait"):
        describe.append("ec2:DescribeInstanceStatus")
    new = [_account_arn(partition, kind) for kind in ("instance", "volume")]
    used = [_account_arn(partition, kind) for kind in ("subnet", "security-group", "network-interface", "key-pair")]
    grants = [
        Grant("Describe", tuple(describe), ("*",), None),
        # RunInstances authorises each resource it creates or uses: the new ones must carry the restore
        # marker, the AMI must be a managed backup, the network is the one the task names.
        Grant("LaunchRestores", ("ec2:RunInstances",), tuple(new), _restored_condition()),
        Grant("LaunchFromManagedImages", ("ec2:RunInstances",), (_image_arn(partition),), _managed_condition()),
        Grant("LaunchInNetwork", ("ec2:RunInstances",), tuple(used), None),
        _tag_on_create(["ec2:RunInstances"], new),
    ]
    if _bool(options.get("iam_instance_profile", False), "iam_instance_profile"):
        grants.append(
            Grant(
                "PassInstanceRole",
                ("iam:PassRole",),
                ("*",),
                {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
            )
        )
    return grants


def _volume_restore(options, partition):
    attach = _bool(options.get("attach", False), "attach")
    describe = [DESCRIBE_REGIONS, "ec2:DescribeSnapshots", "ec2:DescribeVolumes"]
    describe.append("ec2:DescribeInstances" if attach else "ec2:DescribeAvailabilityZones")
    volume = _account_arn(partition, "volume")
    grants = [
        Grant("Describe", tuple(describe), ("*",), None),
        Grant("CreateRestoredVolumes", ("ec2:CreateVolume",), (volume,), _restored_condition()),
        Grant("CreateFromManagedSnapshots", ("ec2:CreateVolume",), (_snapshot_arn(partition),), _managed_condition()),
        _tag_on_create(["ec2:CreateVolume"], [volume]),
    ]
    if attach:
        grants += [
            Grant("AttachRestoredVolumes", ("ec2:AttachVolume",), (volume,), _restored_condition("aws:ResourceTag/")),
            Grant("AttachToInstances", ("ec2:AttachVolume",), (_account_arn(partition, "instance"),), None),
        ]
    return grants


def _backup_coverage(options, partition):
    describe = ("ec2:DescribeInstances", "ec2:DescribeVolumes", "ec2:DescribeImages", "ec2:DescribeSnapshots")
    merged = options.get("host_results")
    if merged is None:
        return [Grant("Describe", (DESCRIBE_REGIONS,) + describe, ("*",), None)]
    # Merging host results reads the S3 prefix they were written to, and nothing of EC2.
    if not isinstance(merged, str) or not merged.startswith("s3://") or "*" in merged:
        raise FeatureError("backup_coverage host_results must be s3://bucket/prefix/ here, got {0!r}".format(merged))
    bucket, _sep, prefix = merged[len("s3://"):].partition("/")
    return _s3_mirror({"bucket": bucket, "prefix": prefix}, partition)


def _backup_copy(options, partition):
    """The source account's calls: its backups described, copies within the account, and for other
    accounts the vault role assumed, the managed sources shared (and unshared) and their keys described."""
    same_account = _bool(options.get("same_account", True), "same_account")
    cross_account = _bool(options.get("cross_account", False), "cross_account")
    if not (same_account or cross_account):
        raise FeatureError("backup_copy needs same_account, cross_account or both")
    grants = [Grant("Describe", (DESCRIBE_REGIONS, "ec2:DescribeImages", "ec2:DescribeSnapshots"), ("*",), None)]
    if same_account:
        grants += _copy_grants(partition) + [Grant("DescribeKeys", ("kms:DescribeKey",), ("*",), None)]
    if cross_account:
        role_name = options.get("vault_role_name") or "OpsvaultBackupVault"
        if not isinstance(role_name, str) or "*" in role_name or ":" in role_name:
            raise FeatureError("backup_copy vault_role_name must be a plain role name, got {0!r}".format(role_name))
        grants += [
            Grant(
                "AssumeVaultRoles", ("sts:AssumeRole",), ("arn:{0}:iam::*:role/{1}".format(partition, role_name),), None
            ),
            Grant("ShareManagedBackups", ("ec2:ModifyImageAttribute",), (_image_arn(partition),), _managed_condition()),
            Grant(
                "ShareManagedBackups",
                ("ec2:ModifySnapshotAttribute",),
                (_snapshot_arn(partition),),
                _managed_condition(),
            ),
            Grant("DescribeKeys", ("kms:DescribeKey",), ("*",), None),
        ]
    return grants


def _copy_grants(partition):
    return [
        Grant("CopyBackups", ("ec2:CopyImage", "ec2:CopySnapshot"), ("*",), None),
        _tag_on_create(["ec2:CopyImage", "ec2:CopySnapshot"], [_image_arn(partition), _snapshot_arn(partition)]),
    ]


def _backup_copy_vault(options, partition):
    """The vault account's role: its copies described and made (tags in the call), its key described."""
    return [
        Grant("Describe", ("ec2:DescribeImages", "ec2:DescribeSnapshots"), ("*",), None),
        Grant("DescribeKeys", ("kms:DescribeKey",), ("*",), None),
    ] + _copy_grants(partition)


DRILL_TAG = "RestoreDrill"
LAST_RESTORE_TEST = "LastRestoreTest"


def _drill_condition():
    return {"Null": {"aws:ResourceTag/" + DRILL_TAG: "false"}}


def _restore_drill(options, partition):
    """The restore drill's own calls: its network, the restores, the checks, the cleanup, the tags, the report."""
    commands = _bool(options.get("commands", False), "commands")
    volumes = _bool(options.get("volumes", False), "volumes")
    bucket = options.get("report_bucket")
    if bucket is not None and (not isinstance(bucket, str) or not bucket or "/" in bucket or "*" in bucket):
        raise FeatureError("restore_drill report_bucket must be a plain bucket name, got {0!r}".format(bucket))
    describe = [
        "ec2:DescribeVpcs",
        "ec2:DescribeVpcAttribute",
        "ec2:DescribeSubnets",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeTags",
        "ec2:DescribeVolumes",
        "ec2:DescribeVpcEndpoints",
    ]
    creates = ["ec2:CreateVpc", "ec2:CreateSubnet", "ec2:CreateSecurityGroup"]
    drill_only = [
        "ec2:ModifyVpcAttribute",
        "ec2:TerminateInstances",
        "ec2:DeleteVolume",
        "ec2:DeleteSecurityGroup",
        "ec2:DeleteSubnet",
        "ec2:DeleteVpc",
        "ec2:DeleteVpcEndpoints",
    ]
    if commands:
        creates.append("ec2:CreateVpcEndpoint")
        drill_only.append("ec2:AuthorizeSecurityGroupIngress")
    network = [_account_arn(partition, kind) for kind in ("vpc", "subnet", "security-group", "vpc-endpoint")]
    grants = [
        Grant("Describe", tuple(describe), ("*",), None),
        Grant("CreateDrillNetwork", tuple(creates), ("*",), None),
        _tag_on_create(creates, network),
        Grant(
            "ChangeOnlyWhatTheDrillMade",
            tuple(drill_only),
            tuple(_account_arn(partition, kind) for kind in ("instance", "volume")) + tuple(network),
            _drill_condition(),
        ),
        Grant(
            "TagTestedBackups",
            ("ec2:CreateTags",),
            (_image_arn(partition), _snapshot_arn(partition)),
            dict(_managed_condition(), **{"ForAllValues:StringEquals": {"aws:TagKeys": [LAST_RESTORE_TEST]}}),
        ),
    ]
    restores = {"wait": True, "iam_instance_profile": options.get("instance_profile", False)}
    grants += _instance_restore(restores, partition)
    if volumes:
        grants += _volume_restore({"attach": False}, partition)
    if commands:
        grants += [
            Grant(
                "ReadCommands", ("ssm:DescribeInstanceInformation", "ssm:GetCommandInvocation"), ("*",), None
            ),
            Grant(
                "RunChecksWithTheShellDocument",
                ("ssm:SendCommand",),
                ("arn:{0}:ssm:*::document/AWS-RunShellScript".format(partition),),
                None,
            ),
            Grant(
                "RunChecksOnDrillInstances",
                ("ssm:SendCommand",),
                (_account_arn(partition, "instance"),),
                _drill_condition(),
            ),
        ]
    if bucket:
        bucket_arn = "arn:{0}:s3:::{1}".format(partition, bucket)
        # amazon.aws.s3_object checks that the bucket exists (HeadBucket, authorised as s3:ListBucket) and
        # reads the object's metadata and tags (HeadObject as s3:GetObject, GetObjectTagging) around the write.
        grants += [
            Grant("FindReportBucket", ("s3:ListBucket",), (bucket_arn,), None),
            Grant("WriteReport", ("s3:GetObject", "s3:GetObjectTagging", "s3:PutObject"), (bucket_arn + "/*",), None),
        ]
    return grants


def _vault_guard(options, partition):
    """Locks and protection only on managed backups; Recycle Bin rules are the account's, in ``*``."""
    describe = [DESCRIBE_REGIONS]
    grants = []
    if _bool(options.get("lock_snapshots", True), "lock_snapshots"):
        describe += ["ec2:DescribeSnapshots", "ec2:DescribeLockedSnapshots"]
        grants.append(
            Grant("LockManagedSnapshots", ("ec2:LockSnapshot",), (_snapshot_arn(partition),), _managed_condition())
        )
    if _bool(options.get("protect_images", True), "protect_images"):
        describe.append("ec2:DescribeImages")
        grants.append(
            Grant(
                "ProtectManagedImages",
                ("ec2:EnableImageDeregistrationProtection",),
                (_image_arn(partition),),
                _managed_condition(),
            )
        )
    if _bool(options.get("recycle_bin", False), "recycle_bin"):
        grants.append(
            Grant(
                "RetentionRules",
                ("rbin:ListRules", "rbin:CreateRule", "rbin:UpdateRule", "rbin:LockRule"),
                ("*",),
                None,
            )
        )
    return [Grant("Describe", tuple(describe), ("*",), None)] + grants


FEATURES = {
    "ami_backup": (_ami_backup, ()),
    "ami_purge": (_ami_purge, ("adopt_legacy", "remove_deregistration_protection")),
    "ebs_snapshot": (_ebs_snapshot, ("mode",)),
    "snapshot_purge": (_snapshot_purge, ("action", "stale", "adopt_legacy", "stale_include_unmanaged")),
    "s3_mirror": (_s3_mirror, ("bucket", "prefix", "versions")),
    "accounts": (_accounts, ("role_name", "organization", "organizational_units")),
    "instance_restore": (_instance_restore, ("wait", "iam_instance_profile")),
    "volume_restore": (_volume_restore, ("attach",)),
    "s3_restore": (_s3_restore, ("bucket", "prefix", "delete")),
    "backup_coverage": (_backup_coverage, ("host_results",)),
    "backup_copy": (_backup_copy, ("same_account", "cross_account", "vault_role_name")),
    "backup_copy_vault": (_backup_copy_vault, ()),
    "restore_drill": (_restore_drill, ("commands", "volumes", "report_bucket", "instance_profile")),
    "vault_guard": (_vault_guard, ("lock_snapshots", "protect_images", "recycle_bin")),
}


def normalize_feature(feature):
    """``"ami_backup"`` or ``{"name": "s3_mirror", "bucket": "b"}`` -> ``(name, options)``."""
    if isinstance(feature, str):
        name, options = feature, {}
    elif isinstance(feature, dict):
        options = dict(feature)
        name = options.pop("name", None)
    else:
        raise FeatureError("a feature is a name or a dict with 'name', got {0!r}".format(feature))
    if name not in FEATURES:
        raise FeatureError("unknown feature {0!r}; features: {1}".format(name, ", ".join(sorted(FEATURES))))
    unknown = sorted(set(options) - set(FEATURES[name][1]))
    if unknown:
        raise FeatureError(
            "unknown option(s) {0} for feature {1}; options: {2}".format(
                ", ".join(unknown), name, ", ".join(FEATURES[name][1]) or "none"
            )
        )
    return name, options


def grants(feature, partition="aws"):
    """The grants one feature needs."""
    name, options = normalize_feature(feature)
    return FEATURES[name][0](options, partition)


def actions(feature, partition="aws"):
    """The sorted IAM actions one feature needs."""
    return sorted({action for grant in grants(feature, partition) for action in grant.actions})


def _merge(all_grants):
    """Merge grants into statements: one per Sid, resources and condition; tag-on-create conditions united."""
    merged = {}
    tag_actions, tag_resources = [], []
    for grant in all_grants:
        if grant.sid == TAG_ON_CREATE_SID:
            tag_actions.extend(grant.condition["StringEquals"]["ec2:CreateAction"])
            tag_resources.extend(grant.resources)
            continue
        key = (grant.sid, grant.resources, json.dumps(grant.condition, sort_keys=True))
        merged.setdefault(key, set()).update(grant.actions)
    unconditional = {
        (action, resource)
        for (sid, resources, condition), merged_actions in merged.items()
        if condition == "null"
        for action in merged_actions
        for resource in resources
    }
    statements = []
    for (sid, resources, condition), merged_actions in merged.items():
        if condition != "null":
            merged_actions = {
                action for action in merged_actions if not all((action, r) in unconditional for r in resources)
            }
            if not merged_actions:
                continue
        statements.append((sid, resources, json.loads(condition), merged_actions))
    if tag_actions:
        statements.append(
            (
                TAG_ON_CREATE_SID,
                tuple(dict.fromkeys(tag_resources)),
                {"StringEquals": {"ec2:CreateAction": sorted(set(tag_actions))}},
                {"ec2:CreateTags"},
            )
        )
    return statements


def _sid(base, used):
    sid, number = base, 2
    while sid in used:
        sid, number = "{0}{1}".format(base, number), number + 1
    used.add(sid)
    return sid


def policy_document(features, partition="aws"):
    """The IAM policy document (a dict) that allows exactly what ``features`` call."""
    if isinstance(features, (str, dict)):
        features = [features]
    if not features:
        raise FeatureError("at least one feature is needed; features: {0}".format(", ".join(sorted(FEATURES))))
    all_grants = [grant for feature in features for grant in grants(feature, partition)]
    used = set()
    statements = []
    for sid, resources, condition, merged_actions in _merge(all_grants):
        statement = {
            "Sid": _sid(sid, used),
            "Effect": "Allow",
            "Action": sorted(merged_actions),
            "Resource": list(resources) if len(resources) > 1 else resources[0],
        }
        if condition:
            statement["Condition"] = condition
        statements.append(statement)
    return {"Version": POLICY_VERSION, "Statement": statements}


def policy_actions(document):
    """Every action a policy document allows (for tests and reports)."""
    found = set()
    for statement in document["Statement"]:
        if statement["Effect"] == "Allow":
            value = statement["Action"]
            found.update([value] if isinstance(value, str) else value)
    return sorted(found)
