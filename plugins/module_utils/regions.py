# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""AWS clients per region, the region list, and bounded concurrent fan-out."""

import weakref
from concurrent.futures import ThreadPoolExecutor

try:
    import boto3
    import botocore.config
    import botocore.session
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # AnsibleAWSModule reports the missing SDK

from ansible_collections.amazon.aws.plugins.module_utils.botocore import get_aws_connection_info

ALL_REGIONS = "all"
OPTED_IN = ("opt-in-not-required", "opted-in")

# Enough attempts for adaptive mode to ride out a burst of RequestLimitExceeded.
MAX_ATTEMPTS = 12


def client_config(max_concurrency):
    """botocore config: adaptive retries (client-side rate limiting on throttling), a pool per thread."""
    return botocore.config.Config(
        retries={"mode": "adaptive", "max_attempts": MAX_ATTEMPTS},
        max_pool_connections=max(10, max_concurrency),
        connect_timeout=10,  # an unreachable region fails in minutes, not 12 x 60 s
    )


def keep_text(timestamp):
    return timestamp


_SESSIONS = weakref.WeakKeyDictionary()


def shared_session(module, text_timestamps=False):
    """``(session, endpoint_url, client_kwargs)``: the boto3 session every client of ``module`` comes
    from, built once from the module's connection options (one per timestamp mode).

    ``module.client`` makes a session per client, and each new session loads and builds the
    service model again: a quarter of a second for EC2, seconds when ``regions: all`` means
    dozens of regions.  With ``text_timestamps`` responses keep their timestamps as the text
    AWS sent: botocore parses each one with dateutil otherwise, which costs more than the rest
    of a large listing.
    """
    sessions = _SESSIONS.setdefault(module, {})
    if text_timestamps not in sessions:
        _region, endpoint_url, connect_kwargs = get_aws_connection_info(module)
        profile_name = connect_kwargs.pop("profile_name", None)
        core = botocore.session.Session()
        if text_timestamps:
            core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=keep_text)
        session = boto3.session.Session(profile_name=profile_name, botocore_session=core)
        sessions[text_timestamps] = (session, endpoint_url, connect_kwargs)
    return sessions[text_timestamps]


def clients_for(module, service, config, regions=None, text_timestamps=False):
    """``{region: client}`` for ``regions`` (default: the module's region), from the module's shared session."""
    regions = regions or [get_aws_connection_info(module)[0]]
    try:
        session, endpoint_url, connect_kwargs = shared_session(module, text_timestamps)
        client_kwargs = dict(connect_kwargs)
        user_config = client_kwargs.pop("aws_config", None)
        if user_config is not None:
            config = config.merge(user_config)
        return {
            region: session.client(
                service, region_name=region, endpoint_url=endpoint_url, config=config, **client_kwargs
            )
            for region in regions
        }
    except (BotoCoreError, ValueError) as exc:
        module.fail_json_aws(
            exc, msg="Could not create {0} clients for {1}".format(service, ", ".join(map(str, regions)))
        )


def client_for(module, service, region, config=None):
    """One client of ``service`` in ``region``, from the module's shared session."""
    return clients_for(module, service, config or client_config(1), [region])[region]


def regional_clients(module, service, regions, max_concurrency):
    """One client per region, made up front (clients are thread-safe, sessions are not)."""
    return clients_for(module, service, client_config(max_concurrency), regions)


def error_code(exc):
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code", "ClientError")
    return type(exc).__name__


def error_message(exc):
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Message") or str(exc)
    return str(exc)


def error_entry(resource, region, exc, action=None):
    """One item of a module's ``errors`` list."""
    entry = {"resource": resource, "region": region, "code": error_code(exc), "message": error_message(exc)}
    if action:
        entry["action"] = action
    return entry


def resolve_regions(requested, describe_regions, default_region):
    """The regions a task runs in.

    ``requested``: None/[] (the task's region), ``all``/``[all]`` (every opted-in region)
    or a list of names.  ``describe_regions`` is ``ec2.describe_regions`` of any region.
    Raises ValueError naming a region AWS does not have, or one not enabled for the account.
    """
    if isinstance(requested, str):
        requested = [requested]
    requested = [name.strip() for name in requested or [] if name and name.strip()]
    if not requested:
        if not default_region:
            raise ValueError("no region given: set regions, region, or AWS_REGION")
        requested = [default_region]
    known = {
        item["RegionName"]: item.get("OptInStatus", "opt-in-not-required")
        for item in describe_regions(AllRegions=True)["Regions"]
    }
    enabled = sorted(name for name, status in known.items() if status in OPTED_IN)
    if ALL_REGIONS in requested:
        if len(requested) > 1:
            raise ValueError("regions: 'all' cannot be combined with region names {0}".format(requested))
        return enabled
    for name in requested:
        if name not in known:
            raise ValueError(
                "region {0!r} is not an AWS region; known regions: {1}".format(name, ", ".join(sorted(known)))
            )
        if known[name] not in OPTED_IN:
            raise ValueError(
                "region {0!r} is not enabled for this account (opt-in status {1})".format(name, known[name])
            )
    return list(dict.fromkeys(requested))


def by_region(item):
    return item["region"]


def interleave(items, key):
    """Items reordered round-robin over ``key`` groups: a, b, c, a, b, c, ..."""
    groups = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    queues = list(groups.values())
    ordered = []
    for index in range(max((len(queue) for queue in queues), default=0)):
        ordered.extend(queue[index] for queue in queues if index < len(queue))
    return ordered


def run_concurrently(func, items, max_workers, spread_by=None):
    """Call ``func(item)`` for each item on at most ``max_workers`` threads.

    Returns ``[(item, value, error)]``: an exception in one call is returned as its ``error``
    and never stops the others.  With ``spread_by`` (e.g. ``by_region``) the work is taken
    round-robin over its groups, so that every region's API rate limits are used at once
    instead of one region's after another; otherwise in the order of ``items``.
    """
    items = interleave(items, spread_by) if spread_by else list(items)
    if not items:
        return []

    def guarded(item):
        try:
            return item, func(item), None
        except Exception as exc:  # pylint: disable=broad-except
            return item, None, exc

    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(items)))) as pool:
        return list(pool.map(guarded, items))


def paginate(client, operation, result_key, **params):
    """Every item of a paginated Describe/List call, following NextToken."""
    return client.get_paginator(operation).paginate(**params).build_full_result().get(result_key, [])


def target_regions(module):
    """Resolve the module's ``regions`` option, failing the task before any change on a bad name."""
    requested = module.params.get("regions")
    explicit = [name for name in requested or [] if name and name != ALL_REGIONS]
    base_region = module.region or (explicit[0] if explicit else "us-east-1")
    client = client_for(module, "ec2", base_region)
    try:
        return resolve_regions(requested, client.describe_regions, module.region)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    except (ClientError, BotoCoreError) as exc:
        module.fail_json_aws(exc, msg="Could not list the regions of the account")


def account_id_of(module, region):
    """The account's id, to check the owner of each snapshot DescribeSnapshots returns."""
    try:
        return client_for(module, "sts", region).get_caller_identity()["Account"]
    except (BotoCoreError, ClientError) as exc:
        module.fail_json_aws(exc, msg="Could not find the account id (sts:GetCallerIdentity)")


def finish(module, activity, result):
    """Exit with the result; when any item failed, fail the task after all the rest was done."""
    errors = result["errors"]
    if errors:
        summary = "; ".join("{resource} in {region}: {code}".format(**error) for error in errors[:5])
        module.fail_json(msg="{0} error(s) while {1}: {2}".format(len(errors), activity, summary), **result)
    module.exit_json(**result)
