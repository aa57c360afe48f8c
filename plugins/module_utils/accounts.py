# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Accounts x regions as hosts, the decisions of the ``accounts`` inventory: which accounts, the role
ARN of each, host names, groups and host variables.  Plain functions of data; AWS calls are the plugin's."""

import re
import string

from ansible_collections.opsvault.aws_backup.plugins.module_utils.options import ROLE_ARN

DEFAULT_ROLE_ARN_TEMPLATE = "arn:aws:iam::{account_id}:role/OpsvaultBackup"
TEMPLATE_FIELDS = ("account_id", "account_name")
ACCOUNT_ID = re.compile(r"^\d{12}$")
REGION_NAME = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
ACTIVE = "ACTIVE"


def check_role_arn_template(template):
    """Raise ValueError naming the template unless it names ``{account_id}``, uses only the known fields
    and makes an IAM role ARN."""
    try:
        fields = {field for _text, field, _spec, _conv in string.Formatter().parse(template) if field is not None}
    except ValueError as exc:
        raise ValueError("role_arn_template {0!r} is not a valid template: {1}".format(template, exc))
    unknown = sorted(fields - set(TEMPLATE_FIELDS))
    if unknown or "account_id" not in fields:
        raise ValueError(
            "role_arn_template {0!r} must contain {{account_id}} and no other field than {1}{2}".format(
                template,
                ", ".join("{%s}" % name for name in TEMPLATE_FIELDS),
                "; unknown: " + ", ".join(unknown) if unknown else "",
            )
        )
    sample = template.format(account_id="123456789012", account_name="name")
    if not ROLE_ARN.match(sample):
        raise ValueError(
            "role_arn_template {0!r} does not make an IAM role ARN (arn:aws:iam::{{account_id}}:role/NAME), "
            "it makes {1!r}".format(template, sample)
        )
    return template


def role_arn(template, account):
    return template.format(account_id=account["id"], account_name=account["name"])


def static_accounts(entries):
    """The ``accounts`` option as ``[{id, name, ous}]``; raises ValueError naming a bad entry."""
    accounts = []
    for entry in entries:
        if not isinstance(entry, dict) or "id" not in entry:
            raise ValueError("accounts: each entry needs an id (and optionally a name), got {0!r}".format(entry))
        unknown = sorted(set(entry) - {"id", "name"})
        if unknown:
            raise ValueError("accounts: unknown key(s) {0} in {1!r}; keys: id, name".format(", ".join(unknown), entry))
        account_id = str(entry["id"]).strip()
        if not ACCOUNT_ID.match(account_id):
            raise ValueError(
                "accounts: id {0!r} is not a 12-digit AWS account id (quote ids with a leading zero)".format(
                    entry["id"]
                )
            )
        accounts.append(dict(id=account_id, name=str(entry.get("name") or account_id), ous=[]))
    return accounts


def organization_accounts(listed, ous_of=None):
    """``(active, skipped)``: the ACTIVE accounts of ListAccounts(ForParent) as ``[{id, name, ous}]``, and
    ``[(id, state)]`` of the others (suspended, closing).  ``ous_of`` maps an account id to its OU ids."""
    active, skipped = [], []
    for account in listed:
        state = account.get("State") or account.get("Status")
        if state != ACTIVE:
            skipped.append((account["Id"], state))
            continue
        ous = list((ous_of or {}).get(account["Id"], []))
        active.append(dict(id=account["Id"], name=account.get("Name") or account["Id"], ous=ous))
    return active, skipped


def check_regions(regions):
    """``regions`` read: ``["all"]`` or region names (each checked for its shape); raises ValueError."""
    names = [name.strip() for item in regions or [] for name in str(item or "").split(",") if name.strip()]
    if not names:
        raise ValueError("regions must name at least one region, or be 'all'")
    if "all" in names:
        if len(names) > 1:
            raise ValueError("regions: 'all' cannot be combined with region names {0}".format(names))
        return names
    for name in names:
        if not REGION_NAME.match(name):
            raise ValueError("regions: {0!r} is not an AWS region name (such as eu-west-1)".format(name))
    return list(dict.fromkeys(names))


def group_name(kind, value):
    """``account_123456789012``, ``region_eu_west_1``, ``ou_ab12_cdef3456``: valid Ansible group names."""
    if kind == "ou" and value.startswith("ou-"):
        value = value[3:]
    return "{0}_{1}".format(kind, re.sub(r"[^A-Za-z0-9_]", "_", value))


def host_name(account, region):
    return "{0}-{1}".format(account["id"], region)


def hosts(accounts, regions_of, template, external_id):
    """``[{name, vars, groups}]``: one host per (account, region), the scope of AWS's API throttling."""
    found = []
    for account in accounts:
        arn = role_arn(template, account)
        for region in regions_of[account["id"]]:
            variables = dict(
                aws_account_id=account["id"],
                aws_account_name=account["name"],
                aws_region=region,
                aws_role_arn=arn,
                aws_external_id=external_id,
                aws_organizational_units=account["ous"],
            )
            groups = [group_name("account", account["id"]), group_name("region", region)]
            groups.extend(group_name("ou", ou) for ou in account["ous"])
            found.append(dict(name=host_name(account, region), vars=variables, groups=groups))
    return found
