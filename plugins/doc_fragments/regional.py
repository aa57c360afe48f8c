# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    # The options every regional module shares (module_utils/options.py REGIONAL).
    DOCUMENTATION = r"""
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
notes:
  - Regions are processed concurrently, and a failing region or resource does not stop the others;
    the task fails at the end, listing every error in RV(errors).
  - Throttled requests are retried with botocore's adaptive retry mode, which slows the run down
    instead of failing it.
  - In a play, C(module_defaults) for C(group/opsvault.aws_backup.aws) reach these modules and those of
    amazon.aws; C(group/amazon.aws.aws) does not reach these modules.
  - To use another endpoint (a VPC endpoint, LocalStack, moto), set O(endpoint_url) or C(AWS_ENDPOINT_URL).
"""
