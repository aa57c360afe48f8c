# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""AWS clients: one boto3 session per module run (in an assumed role when asked), botocore's retry config,
paginated lists, the account id."""

import functools
import weakref

try:
    import boto3
    import botocore.config
    import botocore.credentials
    import botocore.session
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
except ImportError:
    pass  # AnsibleAWSModule reports the missing SDK

from ansible_collections.amazon.aws.plugins.module_utils.botocore import get_aws_connection_info

from ansible_collections.opsvault.aws_backup.plugins.module_utils.options import assume_role

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
_CREDENTIAL_KEYS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")


class _GivenCredentials:
    """A credential provider (what botocore's CredentialResolver asks) answering with given credentials."""

    METHOD = "assume-role"

    def __init__(self, credentials):
        self._credentials = credentials

    def load(self):
        return self._credentials


def assumed_role_credentials(role, source_session, client_kwargs):
    """Credentials of ``role`` (``options.assume_role``) that renew themselves before they expire.

    botocore's ``AssumeRoleCredentialFetcher`` calls sts:AssumeRole with the source credentials;
    ``RefreshableCredentials`` calls it again within 15 minutes of expiry, so a run longer than
    the one-hour limit of a chained role session keeps working.  The first AssumeRole is made
    here, so a role that cannot be assumed fails before any other call.
    """
    source = source_session.get_credentials()
    if source is None:
        raise NoCredentialsError()
    extra_args = {"RoleSessionName": role["session_name"]}
    if role["external_id"]:
        extra_args["ExternalId"] = role["external_id"]
    fetcher = botocore.credentials.AssumeRoleCredentialFetcher(
        client_creator=functools.partial(source_session.client, **client_kwargs),
        source_credentials=source,
        role_arn=role["role_arn"],
        extra_args=extra_args,
    )
    return botocore.credentials.RefreshableCredentials.create_from_metadata(
        metadata=fetcher.fetch_credentials(), refresh_using=fetcher.fetch_credentials, method="assume-role"
    )


def _assumed(module, profile_name, region, endpoint_url, connect_kwargs):
    """The module's assumed-role credentials (made once per module run), or None without a role."""
    try:
        role = assume_role(module.params)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    if role is None:
        return None
    sessions = _SESSIONS.setdefault(module, {})
    if "credentials" not in sessions:
        source = boto3.session.Session(
            profile_name=profile_name,
            **{key: connect_kwargs[key] for key in _CREDENTIAL_KEYS if connect_kwargs.get(key)}
        )
        sts_kwargs = dict(region_name=region or "us-east-1", endpoint_url=endpoint_url, config=client_config(1))
        if "verify" in connect_kwargs:
            sts_kwargs["verify"] = connect_kwargs["verify"]
        try:
            sessions["credentials"] = assumed_role_credentials(role, source, sts_kwargs)
        except (BotoCoreError, ClientError) as exc:
            message = "Could not assume role {0}".format(role["role_arn"])
            if role["external_id"]:
                message += " with external_id {0!r}".format(role["external_id"])
            module.fail_json_aws(exc, msg=message)
    return sessions["credentials"]


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
        region, endpoint_url, connect_kwargs = get_aws_connection_info(module)
        profile_name = connect_kwargs.pop("profile_name", None)
        core = botocore.session.Session()
        if text_timestamps:
            core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_keep_text)
        assumed = _assumed(module, profile_name, region, endpoint_url, connect_kwargs)
        if assumed is not None:
            # Every client of this session signs with the role's credentials, renewed as they expire.
            core.register_component(
                "credential_provider", botocore.credentials.CredentialResolver([_GivenCredentials(assumed)])
            )
            connect_kwargs = {key: value for key, value in connect_kwargs.items() if key not in _CREDENTIAL_KEYS}
            profile_name = None
        session = boto3.session.Session(profile_name=profile_name, botocore_session=core)
        sessions[text_timestamps] = (session, endpoint_url, connect_kwargs)
    return sessions[text_timestamps]


def clients_for(module, service, config, regions=None, text_timestamps=False):
    """``{region: client}`` for ``regions`` (default: the module's region), from the module's shared session."""
    regions = regions or [get_aws_connection_info(module)[0]]
    try:
        return _clients(shared_session(module, text_timestamps), service, regions, config)
    except (BotoCoreError, ValueError) as exc:
        module.fail_json_aws(
            exc, msg="Could not create {0} clients for {1}".format(service, ", ".join(map(str, regions)))
        )


def _clients(session_parts, service, regions, config):
    """``{region: client}`` from ``(session, endpoint_url, connection kwargs)``, a user's ``aws_config``
    merged over ``config``."""
    session, endpoint_url, connect_kwargs = session_parts
    client_kwargs = dict(connect_kwargs)
    user_config = client_kwargs.pop("aws_config", None)
    if user_config is not None:
        config = config.merge(user_config)
    return {
        region: session.client(service, region_name=region, endpoint_url=endpoint_url, config=config, **client_kwargs)
        for region in regions
    }


def client_for(module, service, region, config=None):
    """One client of ``service`` in ``region``, from the module's shared session."""
    return clients_for(module, service, config or client_config(1), [region])[region]


def regional_clients(module, service, regions, max_concurrency, **retries):
    """One client per region, made up front (clients are thread-safe, sessions are not)."""
    return clients_for(module, service, client_config(max_concurrency, **retries), regions)


def paginate(client, operation, result_key, **params):
    """Every item of a paginated Describe/List call, following NextToken."""
    return client.get_paginator(operation).paginate(**params).build_full_result().get(result_key, [])


def pages(client, operation, **params):
    """The pages of a paginated Describe/List call one by one, as they arrive: a caller that keeps only
    what it needs of each page never holds the whole answer (the calls are the same as ``paginate``'s)."""
    return client.get_paginator(operation).paginate(**params)


def growing_pages(client, operation, first=10, largest=1000, **params):
    """The pages of a Describe call with MaxResults doubling from ``first`` to ``largest``: the first
    page comes back soon, so a streamed job starts its work while the rest is described; the later
    pages are large, so a big fleet takes few calls."""
    request = dict(params, MaxResults=first)
    while True:
        page = getattr(client, operation)(**request)
        yield page
        if not page.get("NextToken"):
            return
        request.update(NextToken=page["NextToken"], MaxResults=min(2 * request["MaxResults"], largest))


def account_id_of(module, region):
    """The account's id (sts:GetCallerIdentity), to check the owner of what Describe calls return."""
    try:
        return client_for(module, "sts", region).get_caller_identity()["Account"]
    except (BotoCoreError, ClientError) as exc:
        module.fail_json_aws(exc, msg="Could not find the account id (sts:GetCallerIdentity)")


def role_clients(module, service, regions, role, config):
    """``{region: client}`` of ``service`` acting in another account: ``role`` (role_arn, external_id,
    session_name) assumed with the module's own credentials (themselves assumed when the module has
    ``assume_role_arn``), renewed before they expire; one session per role and module run.

    The first AssumeRole is made here, so a role that cannot be assumed fails before any change.
    """
    sessions = _SESSIONS.setdefault(module, {})
    roles = sessions.setdefault("roles", {})
    try:
        if role["role_arn"] not in roles:
            source, endpoint_url, connect_kwargs = shared_session(module)
            sts_kwargs = dict(region_name=regions[0], endpoint_url=endpoint_url, config=client_config(1))
            if "verify" in connect_kwargs:
                sts_kwargs["verify"] = connect_kwargs["verify"]
            credentials = assumed_role_credentials(role, source, sts_kwargs)
            core = botocore.session.Session()
            core.register_component(
                "credential_provider", botocore.credentials.CredentialResolver([_GivenCredentials(credentials)])
            )
            client_kwargs = {key: value for key, value in connect_kwargs.items() if key not in _CREDENTIAL_KEYS}
            roles[role["role_arn"]] = (boto3.session.Session(botocore_session=core), endpoint_url, client_kwargs)
        return _clients(roles[role["role_arn"]], service, regions, config)
    except (BotoCoreError, ClientError, ValueError) as exc:
        message = "Could not assume role {0}".format(role["role_arn"])
        if role.get("external_id"):
            message += " with external_id {0!r}".format(role["external_id"])
        module.fail_json_aws(exc, msg=message)
