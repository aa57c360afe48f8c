# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The regions a task runs in: the ``regions`` option read, checked against the account's regions."""

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # AnsibleAWSModule reports the missing SDK

from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import client_for

ALL_REGIONS = "all"
OPTED_IN = ("opt-in-not-required", "opted-in")
NO_REGION = (
    "no region given: set the regions or region option, or AWS_REGION; in a play, "
    "module_defaults for group/opsvault.aws_backup.aws reach these modules (group/amazon.aws.aws does not)"
)


def split_regions(requested):
    """The region names of the ``regions`` option: a list, or text such as an AWX survey sends
    (``"eu-west-1,us-east-1"``, with or without spaces).  None when the option is unset.

    Raises ValueError for a list that names no region (``[]``, ``[""]``): an empty list is
    refused rather than read as "the task's region".
    """
    if requested is None:
        return None
    if isinstance(requested, str):
        requested = [requested]
    names = [name.strip() for item in requested for name in str(item or "").split(",") if name.strip()]
    if not names:
        raise ValueError(
            "regions {0!r} names no region: give region names, 'all', or leave regions unset "
            "for the task's region".format(requested)
        )
    return names


def resolve_regions(requested, describe_regions, default_region):
    """The regions a task runs in.

    ``requested``: None (the task's region), ``all``/``[all]`` (every opted-in region), a list of
    names or comma-separated text.  ``describe_regions`` is ``ec2.describe_regions`` of any region.
    Raises ValueError naming a region AWS does not have, or one not enabled for the account.
    """
    names = split_regions(requested)
    if names is None:
        if not default_region:
            raise ValueError(NO_REGION)
        names = [default_region]
    known = {
        item["RegionName"]: item.get("OptInStatus", "opt-in-not-required")
        for item in describe_regions(AllRegions=True)["Regions"]
    }
    enabled = sorted(name for name, status in known.items() if status in OPTED_IN)
    if ALL_REGIONS in names:
        if len(names) > 1:
            raise ValueError("regions: 'all' cannot be combined with region names {0}".format(names))
        return enabled
    for name in names:
        if name not in known:
            raise ValueError(
                "regions: {0!r} is not an AWS region; known regions: {1}".format(name, ", ".join(sorted(known)))
            )
        if known[name] not in OPTED_IN:
            raise ValueError(
                "regions: {0!r} is not enabled for this account (opt-in status {1})".format(name, known[name])
            )
    return list(dict.fromkeys(names))


def target_regions(module):
    """Resolve the module's ``regions`` option, failing the task before any change on a bad name."""
    requested = module.params.get("regions")
    try:
        names = split_regions(requested)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    if names is None and not module.region:
        module.fail_json(msg=NO_REGION)
    explicit = [name for name in names or [] if name != ALL_REGIONS]
    base_region = module.region or (explicit[0] if explicit else "us-east-1")
    client = client_for(module, "ec2", base_region)
    try:
        return resolve_regions(names, client.describe_regions, module.region)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    except (ClientError, BotoCoreError) as exc:
        module.fail_json_aws(exc, msg="Could not list the regions of the account")
