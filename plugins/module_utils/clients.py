# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""AWS clients: one boto3 session per module run, botocore's retry config, paginated lists, the account id."""

import weakref

try:
    import boto3
    import botocore.config
    import botocore.session
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # AnsibleAWSModule reports the missing SDK

from ansible_collections.amazon.aws.plugins.module_utils.botocore import get_aws_connection_info

# Enough attempts for adaptive mode to ride out a burst of RequestLimitExceeded.
MAX_ATTEMPTS = 12


def client_config(max_concurrency, **retries):
    """botocore config: adaptive retries (client-side rate limiting on throttling), a pool per thread.

    ``retries`` overrides the retry settings, e.g. ``total_max_attempts=1`` for a caller that
    decides itself when a call may be sent again.
    """
    return botocore.config.Config(
        retries=dict({"mode": "adaptive", "max_attempts": MAX_ATTEMPTS}, **retries),
        max_pool_connections=max(10, max_concurrency),
        connect_timeout=10,  # an unreachable region fails in minutes, not 12 x 60 s
    )


def _keep_text(timestamp):
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
            core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_keep_text)
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


def regional_clients(module, service, regions, max_concurrency, **retries):
    """One client per region, made up front (clients are thread-safe, sessions are not)."""
    return clients_for(module, service, client_config(max_concurrency, **retries), regions)


def paginate(client, operation, result_key, **params):
    """Every item of a paginated Describe/List call, following NextToken."""
    return client.get_paginator(operation).paginate(**params).build_full_result().get(result_key, [])


def account_id_of(module, region):
    """The account's id (sts:GetCallerIdentity), to check the owner of what Describe calls return."""
    try:
        return client_for(module, "sts", region).get_caller_identity()["Account"]
    except (BotoCoreError, ClientError) as exc:
        module.fail_json_aws(exc, msg="Could not find the account id (sts:GetCallerIdentity)")
