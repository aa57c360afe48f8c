# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: accounts
short_description: One host per AWS account and region, for backups across an organisation
version_added: 0.2.0
description:
  - Makes one inventory host per (account, region), the scope of AWS's API throttling, so that Ansible's
    C(forks) run accounts and regions in parallel and AWX job slicing spreads them over execution nodes.
  - Accounts come from AWS Organizations (O(organization), optionally only under O(organizational_units)),
    skipping suspended and closing accounts, or from the static list O(accounts).
  - Each host carries C(aws_account_id), C(aws_account_name), C(aws_region), C(aws_role_arn) (from
    O(role_arn_template)), C(aws_external_id) and C(aws_organizational_units), and runs on the controller
    (C(ansible_connection=local), C(ansible_python_interpreter) the Python that runs the inventory). The shipped playbooks pass the region, role
    and external id of each host to the modules, which assume the role.
  - "Groups: C(account_<id>), C(region_<region>) (V(region_eu_west_1)) and C(ou_<id>) for each OU given in
    O(organizational_units) and each OU below it that holds the account."
  - The configuration file must end in C(accounts.yml) or C(accounts.yaml), for example C(org.accounts.yml).
author:
  - opsvault.aws_backup contributors (@opsvault)
options:
  plugin:
    description: The name of this plugin.
    required: true
    type: str
    choices: [opsvault.aws_backup.accounts]
  organization:
    description:
      - Take the accounts from AWS Organizations (C(organizations:ListAccounts)) with the plugin's own
        credentials, which must be those of the management account or a delegated administrator.
      - Accounts that are not C(ACTIVE) (suspended, closing) are left out.
    type: bool
    default: false
  organizational_units:
    description:
      - Only the accounts under these OUs (ids such as V(ou-ab12-cdef3456)), at any depth. Implies O(organization).
      - The root's id (V(r-ab12)) takes every account, with a group for each OU.
      - An OU id the organisation does not have fails the inventory, naming it.
    type: list
    elements: str
    default: []
  accounts:
    description:
      - A static list of accounts instead of O(organization), each a dict with C(id) (12 digits, quoted) and
        an optional C(name) (default the id).
    type: list
    elements: dict
    default: []
  regions:
    description:
      - The regions of each account, as a list, or V(all) for the regions enabled in each account
        (C(ec2:DescribeRegions) in the account's role, at inventory time).
      - With V(all), an account whose role cannot be assumed gets one host in the plugin's O(region), which
        fails when a play runs on it, naming the role; the other accounts are not affected.
    type: list
    elements: str
    required: true
  role_arn_template:
    description:
      - The role each host's tasks assume in its account, with the fields C({account_id}) (required) and
        C({account_name}).
    type: str
    default: "arn:aws:iam::{account_id}:role/OpsvaultBackup"
  external_id:
    description:
      - The external id the member roles' trust policies require, set on every host as C(aws_external_id).
      - May be a template, such as V({{ lookup('ansible.builtin.env', 'OPSVAULT_EXTERNAL_ID'\) }}).
    type: str
  role_session_name:
    description: The session name with which the plugin assumes the member roles (for O(regions=all)).
    type: str
    default: opsvault-aws-backup-inventory
  max_concurrency:
    description: Accounts whose regions are looked up at once with O(regions=all).
    type: int
    default: 10
notes:
  - Requires C(organizations:ListAccounts) with O(organization), and C(organizations:DescribeOrganizationalUnit),
    C(organizations:ListAccountsForParent) and C(organizations:ListOrganizationalUnitsForParent) with
    O(organizational_units); with O(regions=all), C(sts:AssumeRole) on the member roles and
    C(ec2:DescribeRegions) in them.
  - The plugin's own O(assume_role_arn) is the role it reads AWS Organizations with; the member roles come from
    O(role_arn_template).
extends_documentation_fragment:
  - inventory_cache
  - constructed
  - amazon.aws.boto3
  - amazon.aws.common.plugins
  - amazon.aws.region.plugins
  - amazon.aws.assume_role.plugins
"""

EXAMPLES = r"""
# org.accounts.yml: every active account of the organisation in two regions
plugin: opsvault.aws_backup.accounts
organization: true
regions: [eu-west-1, us-east-1]

---
# prod.accounts.yml: the accounts under one OU, in every region enabled in each, with an external id
plugin: opsvault.aws_backup.accounts
organizational_units: [ou-ab12-cdef3456]
regions: all
role_arn_template: "arn:aws:iam::{account_id}:role/OpsvaultBackup"
external_id: "{{ lookup('ansible.builtin.env', 'OPSVAULT_EXTERNAL_ID') }}"
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: /tmp/opsvault-accounts
cache_timeout: 3600

---
# static.accounts.yml: two accounts without AWS Organizations
plugin: opsvault.aws_backup.accounts
accounts:
  - {id: "111111111111", name: prod}
  - {id: "222222222222", name: staging}
regions: [eu-west-1]
"""

import sys

try:
    import botocore
except ImportError:
    pass  # AWSInventoryBase reports the missing SDK

from ansible.errors import AnsibleParserError

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.plugin_utils.botocore import get_aws_region
from ansible_collections.amazon.aws.plugins.plugin_utils.inventory import AWSInventoryBase

from ansible_collections.opsvault.aws_backup.plugins.module_utils import accounts as planner
from ansible_collections.opsvault.aws_backup.plugins.module_utils.fanout import run_concurrently
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import resolve_regions


class InventoryModule(AWSInventoryBase):
    NAME = "opsvault.aws_backup.accounts"
    INVENTORY_FILE_SUFFIXES = ("accounts.yml", "accounts.yaml")

    class TemplatedOptions(AWSInventoryBase.TemplatedOptions):
        # The external id can be kept out of the file, e.g. in an environment variable.
        TEMPLATABLE_OPTIONS = AWSInventoryBase.TemplatedOptions.TEMPLATABLE_OPTIONS + ("external_id",)

    def _do_fail(self, message):
        raise AnsibleParserError(message)

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache=cache)
        try:
            template = planner.check_role_arn_template(self.get_option("role_arn_template"))
            regions = planner.check_regions(self.get_option("regions"))
            static = planner.static_accounts(self.get_option("accounts"))
        except ValueError as exc:
            self.fail_aws("{0}: {1}".format(path, exc))
        ous = self.get_option("organizational_units")
        from_organization = self.get_option("organization") or bool(ous)
        if from_organization == bool(static):
            self.fail_aws("{0}: set organization (or organizational_units) or accounts, one of them".format(path))

        was_cached, hosts = self.get_cached_result(path, cache)
        if not was_cached:
            found = self._organization_accounts(ous) if from_organization else static
            hosts = planner.hosts(found, self._regions_of(found, regions, template), template, self._external_id())
        self.update_cached_result(path, cache, hosts)
        self._populate(hosts)

    def _external_id(self):
        return self.get_option("external_id") or None

    def _base_region(self):
        return get_aws_region(self) or "us-east-1"

    # ------------------------------------------------------------ AWS Organizations

    def _organization_accounts(self, ous):
        client = self.client("organizations", region=self._base_region())
        try:
            if not ous:
                listed = client.get_paginator("list_accounts").paginate().build_full_result()["Accounts"]
                active, skipped = planner.organization_accounts(listed)
            else:
                listed, ous_of = [], {}
                for ou in ous:
                    self._describe_ou(client, ou)
                    self._walk(client, ou, [ou], listed, ous_of)
                unique = list({account["Id"]: account for account in listed}.values())
                active, skipped = planner.organization_accounts(unique, ous_of)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            self.fail_aws("Could not list the accounts of the organisation", exception=exc)
        for account_id, state in skipped:
            self.v_log(2, "accounts: {0} left out, its state is {1}".format(account_id, state))
        return active

    def _describe_ou(self, client, ou):
        """Fail naming an OU (or root) id the organisation does not have."""
        try:
            if ou.startswith("r-"):  # the root: every account, with groups for the OUs
                client.list_organizational_units_for_parent(ParentId=ou, MaxResults=1)
            else:
                client.describe_organizational_unit(OrganizationalUnitId=ou)
        except is_boto3_error_code(
            ["OrganizationalUnitNotFoundException", "ParentNotFoundException", "InvalidInputException"]
        ) as exc:
            self.fail_aws("organizational_units: {0!r} is not an OU of this organisation".format(ou), exception=exc)

    def _walk(self, client, parent, path, listed, ous_of):
        """The accounts below ``parent`` at any depth; ``ous_of[id]`` is the OU path down to each."""
        for account in self._paginate(client, "list_accounts_for_parent", "Accounts", parent):
            listed.append(account)
            ous_of.setdefault(account["Id"], [])
            ous_of[account["Id"]].extend(ou for ou in path if ou not in ous_of[account["Id"]])
        for child in self._paginate(client, "list_organizational_units_for_parent", "OrganizationalUnits", parent):
            self._walk(client, child["Id"], path + [child["Id"]], listed, ous_of)

    @staticmethod
    def _paginate(client, operation, key, parent):
        return client.get_paginator(operation).paginate(ParentId=parent).build_full_result().get(key, [])

    # ------------------------------------------------------------ regions

    def _regions_of(self, found, regions, template):
        """``{account_id: [region]}``: the given regions, or with ``all`` those enabled in each account."""
        if regions != ["all"]:
            return {account["id"]: regions for account in found}
        looked_up = run_concurrently(
            lambda account: self._enabled_regions(planner.role_arn(template, account)),
            found,
            self.get_option("max_concurrency"),
        )
        regions_of = {}
        for account, names, exc in looked_up:
            if exc is not None:
                self.warn(
                    "accounts: could not list the regions of account {0} ({1}) in role {2}: {3}; its only host is "
                    "in {4}, and fails when a play runs on it".format(
                        account["id"], account["name"], planner.role_arn(template, account), exc, self._base_region()
                    )
                )
                names = [self._base_region()]
            regions_of[account["id"]] = names
        return regions_of

    def _enabled_regions(self, role_arn):
        params = dict(RoleArn=role_arn, RoleSessionName=self.get_option("role_session_name"))
        if self._external_id():
            params["ExternalId"] = self._external_id()
        credentials = self.client("sts", region=self._base_region()).assume_role(**params)["Credentials"]
        ec2 = self.client(
            "ec2",
            region=self._base_region(),
            profile_name=None,
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )
        return resolve_regions(["all"], ec2.describe_regions, None)

    # ------------------------------------------------------------ hosts

    def _populate(self, hosts):
        strict = self.get_option("strict")
        for host in hosts:
            name = host["name"]
            self.inventory.add_host(name)
            for group in host["groups"]:
                self.inventory.add_group(group)
                self.inventory.add_child(group, name)
            # The hosts are the controller: its Python, which has boto3 (Ansible's discovery would not find it).
            variables = dict(host["vars"], ansible_connection="local", ansible_python_interpreter=sys.executable)
            for key, value in variables.items():
                self.inventory.set_variable(name, key, value)
            self._set_composite_vars(self.get_option("compose"), variables, name, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), variables, name, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), variables, name, strict=strict)
