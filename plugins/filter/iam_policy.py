# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: iam_policy
short_description: The least-privilege IAM policy document for the collection's modules
version_added: 0.1.0
description:
  - Renders the IAM policy document that allows exactly the AWS calls the listed features make,
    from the single list of actions each module declares in the collection's module_utils.
  - Describe calls are allowed on C(*) (AWS has no resource-level scoping for them); C(ec2:CreateTags)
    is allowed only when a create call tags its new resource (condition C(ec2:CreateAction));
    deregister, delete and archive are limited to images and snapshots tagged
    C(CreatedBy=opsvault.aws_backup) unless the feature adopts legacy or stale ones;
    S3 is limited to the bucket and the objects under the prefix.
author:
  - opsvault.aws_backup contributors
positional: _input
options:
  _input:
    description:
      - The features, each a module name or a dict with C(name) and the options that change what it calls.
      - V(ami_backup).
      - V(ami_purge) with C(adopt_legacy) (bool).
      - V(ebs_snapshot) with C(mode), V(volume) (default) and/or V(instance).
      - V(snapshot_purge) with C(action), V(delete) (default), V(archive) and/or V(report);
        C(stale), V(none), V(volume_gone) or V(unattached); C(adopt_legacy).
      - V(s3_mirror) with C(bucket) (required), C(prefix), and C(versions) (V(true) for the runs with
        O(opsvault.aws_backup.s3_mirror#module:version_as_of), adding C(s3:GetBucketVersioning),
        C(s3:ListBucketVersions) and C(s3:GetObjectVersion)).
      - V(accounts), the backup host's own calls over the P(opsvault.aws_backup.accounts#inventory) inventory,
        C(sts:AssumeRole) on the member roles named C(role_name) (default V(OpsvaultBackup)) and the
        AWS Organizations listing of C(organization) (bool, default true) and C(organizational_units) (bool).
    type: list
    elements: raw
    required: true
  partition:
    description: The AWS partition of the ARNs.
    type: str
    default: aws
"""

EXAMPLES = r"""
- name: Policy for a host that backs up AMIs and purges them
  ansible.builtin.set_fact:
    backup_policy: "{{ ['ami_backup', 'ami_purge'] | opsvault.aws_backup.iam_policy }}"

- name: Create the managed policy for every job of the backup host
  amazon.aws.iam_managed_policy:
    name: opsvault-aws-backup
    policy: >-
      {{ ['ami_backup', 'ami_purge', 'ebs_snapshot',
          {'name': 'snapshot_purge', 'action': ['delete', 'archive']},
          {'name': 's3_mirror', 'bucket': 'my-images', 'prefix': 'uploads/'}]
         | opsvault.aws_backup.iam_policy | to_json }}
"""

RETURN = r"""
_value:
  description: An IAM policy document (C(Version) and C(Statement)), a dict ready for C(to_json).
  type: dict
  sample:
    Version: "2012-10-17"
    Statement:
      - Sid: Describe
        Effect: Allow
        Action: [ec2:DescribeImages, ec2:DescribeInstances, ec2:DescribeRegions]
        Resource: "*"
      - Sid: CreateBackups
        Effect: Allow
        Action: [ec2:CreateImage]
        Resource: "*"
      - Sid: TagOnCreate
        Effect: Allow
        Action: [ec2:CreateTags]
        Resource: ["arn:aws:ec2:*::image/*", "arn:aws:ec2:*::snapshot/*"]
        Condition: {StringEquals: {"ec2:CreateAction": [CreateImage]}}
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.opsvault.aws_backup.plugins.module_utils.iam_actions import FeatureError
from ansible_collections.opsvault.aws_backup.plugins.module_utils.iam_actions import policy_document


def iam_policy(features, partition="aws"):
    try:
        return policy_document(features, partition=partition)
    except FeatureError as exc:
        raise AnsibleFilterError("opsvault.aws_backup.iam_policy: {0}".format(exc))


class FilterModule:
    def filters(self):
        return {"iam_policy": iam_policy}
