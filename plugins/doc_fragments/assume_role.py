# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    # Role assumption in every module (module_utils/options.py ASSUME_ROLE).
    DOCUMENTATION = r"""
options:
  assume_role_arn:
    description:
      - The ARN of an IAM role to assume (sts:AssumeRole) with the task's credentials; every AWS call of the
        task is then made in that role, typically in another account.
      - The credentials renew themselves before they expire, so a run longer than the one-hour limit of a
        chained role session keeps working.
      - Over the P(opsvault.aws_backup.accounts#inventory) inventory, the shipped playbooks pass the host's C(aws_role_arn).
      - A role that cannot be assumed fails the task before any other call, naming the role.
    type: str
  external_id:
    description: The external id the role's trust policy requires (C(sts:ExternalId)); needs O(assume_role_arn).
    type: str
  role_session_name:
    description:
      - The session name of the assumed role, as AWS CloudTrail shows it (2 to 64 letters, digits and C(+=,.@_-)).
    type: str
    default: opsvault-aws-backup
"""
