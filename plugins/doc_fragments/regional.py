# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)


# Role assumption (module_utils/options.py ASSUME_ROLE), in every module: regional ones get it with
# DOCUMENTATION, the others extend opsvault.aws_backup.regional.assume_role.
_ASSUME_ROLE_OPTIONS = r"""
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


class ModuleDocFragment:
    # The options every regional module shares (module_utils/options.py REGIONAL and ASSUME_ROLE).
    DOCUMENTATION = (
        r"""
options:
  regions:
    description:
      - The regions to work in, as a list or as comma-separated text (V(eu-west-1,us-east-1)).
      - V(all) means every region enabled for the account.
      - Defaults to the task's O(region). An empty list is refused, so that a missing answer is never
        read as "the task's region" by mistake.
      - A region AWS does not have, or one not enabled for the account, fails the task before any change.
    type: list
    elements: str
  max_concurrency:
    description: The most AWS requests in flight at once, across all regions.
    type: int
    default: 16
"""
        + _ASSUME_ROLE_OPTIONS
        + r"""
notes:
  - Regions are processed concurrently, and a failing region or resource does not stop the others;
    the task fails at the end, listing every error in RV(errors).
  - Throttled requests are retried with botocore's adaptive retry mode, which slows the run down
    instead of failing it.
  - In a play, C(module_defaults) for C(group/opsvault.aws_backup.aws) reach these modules and those of
    amazon.aws; C(group/amazon.aws.aws) does not reach these modules.
  - To use another endpoint (a VPC endpoint, LocalStack, moto), set O(endpoint_url) or C(AWS_ENDPOINT_URL).
"""
    )

    ASSUME_ROLE = "options:" + _ASSUME_ROLE_OPTIONS
