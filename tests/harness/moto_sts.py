"""moto's sts:AssumeRole made to refuse what AWS refuses.

moto 5.2.5 hands out credentials for any role ARN, whether the role exists or not, and reads
neither its trust policy nor the external id. AWS answers ``AccessDenied`` (HTTP 403) unless the
role exists and its trust policy (the role's ``AssumeRolePolicyDocument``) allows the caller,
with the ``sts:ExternalId`` the policy's condition asks for:

* https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html
  (the role's trust policy specifies who can assume it; ExternalId)
* https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_roles.html
  ("I can't assume a role": the principal must be in the trust policy; a role with an external
  id condition must be assumed with that ExternalId)
* https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_common-scenarios_third-party.html
  (``"Condition": {"StringEquals": {"sts:ExternalId": "..."}}``)

The trust policy is evaluated for what the tests need: Allow statements whose Action covers
``sts:AssumeRole`` and whose ``Principal.AWS`` names ``*``, the caller's account (``123456789012``
or ``arn:aws:iam::123456789012:root``), or the caller's user or role ARN; a ``StringEquals`` on
``sts:ExternalId`` must match the request's ExternalId. A Deny statement or any other condition
refuses. The error message is AWS's: ``User: <caller> is not authorized to perform:
sts:AssumeRole on resource: <role arn>``.
"""

import fnmatch
import json
from urllib.parse import unquote

from moto.core.exceptions import AccessDeniedError
from moto.iam.models import iam_backends
from moto.sts.responses import TokenResponse


def _as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _caller(response):
    """``(account, arn, arns)``: the calling account, its ARN and the ARNs a trust policy may name for it."""
    _user_id, arn, account = response.backend.get_caller_identity(response.get_access_key(), response.region)
    arns = {arn}
    if ":assumed-role/" in arn:  # arn:aws:sts::A:assumed-role/Name/session -> the role's ARN
        partition = arn.split(":")[1]
        arns.add("arn:{0}:iam::{1}:role/{2}".format(partition, account, arn.split("/")[1]))
    return account, arn, arns


def _principal_allows(principal, account, arns):
    if principal == "*":
        return True
    named = _as_list(principal.get("AWS")) if isinstance(principal, dict) else []
    return any(
        name == "*" or name == account or name.endswith(":iam::{0}:root".format(account)) or name in arns
        for name in named
    )


def _condition_allows(condition, external_id):
    if not condition:
        return True
    if set(condition) != {"StringEquals"} or set(condition["StringEquals"]) != {"sts:ExternalId"}:
        return False
    return external_id in _as_list(condition["StringEquals"]["sts:ExternalId"])


def _actions_cover(actions):
    return any(fnmatch.fnmatchcase("sts:AssumeRole", action) for action in _as_list(actions))


def trust_allows(document, account, arns, external_id):
    """Whether a role's trust policy lets the caller assume it (an explicit Deny wins)."""
    allowed = False
    for statement in _as_list(document.get("Statement")):
        if not _actions_cover(statement.get("Action")):
            continue
        matches = _principal_allows(statement.get("Principal", {}), account, arns)
        if statement.get("Effect") == "Deny" and matches:
            return False
        if (
            statement.get("Effect") == "Allow"
            and matches
            and _condition_allows(statement.get("Condition"), external_id)
        ):
            allowed = True
    return allowed


def _role(role_arn):
    parts = role_arn.split(":")
    if len(parts) < 6 or parts[2] != "iam":
        return None
    try:
        return iam_backends[parts[4]]["aws" if parts[1] == "aws" else parts[1]].get_role_by_arn(role_arn)
    except Exception:  # moto's NotFoundException, or an account moto has never seen
        return None


def apply():
    original = TokenResponse.assume_role

    def assume_role(self):
        role_arn = self._get_param("RoleArn")
        account, caller, arns = _caller(self)
        role = _role(role_arn)
        document = {}
        if role is not None:
            text = role.assume_role_policy_document
            document = json.loads(unquote(text)) if isinstance(text, str) else text
        if role is None or not trust_allows(document, account, arns, self._get_param("ExternalId")):
            raise AccessDeniedError(caller, "sts:AssumeRole on resource: {0}".format(role_arn))
        return original(self)

    TokenResponse.assume_role = assume_role
