"""Recycle Bin (rbin) for the moto server: a small backend of our own, served by the same server.

moto 5.2.5 has no rbin service at all (HTTP 500). Recycle Bin is its own endpoint
(``rbin.<region>.amazonaws.com``, REST-JSON, SigV4 signing name ``rbin``); the moto server picks a
backend from the credential scope of the request's signature, so registering a backend named ``rbin``
(module ``moto.rbin`` with ``rbin_backends``, and its URL pattern in moto's backend index) makes the one
server answer it beside EC2: the same endpoint_url, the same reset (``/moto-api/reset`` resets every
BackendDict), the same IAM enforcement (moto checks ``rbin:<Action>`` for each request). The proxy
needs no change. The model follows the API reference:
https://docs.aws.amazon.com/recyclebin/latest/APIReference/Welcome.html

* CreateRule: ``ResourceType`` ``EBS_SNAPSHOT`` or ``EC2_IMAGE``; ``RetentionPeriod`` 1 to 365 ``DAYS``;
  ``Description`` up to 255 characters; ``ResourceTags`` (a tag-level rule) or none (a Region-level rule,
  optionally with ``ExcludeResourceTags``); ``LockConfiguration`` locks it at creation. The rule's
  ``Identifier`` is 11 letters and digits, its ARN ``arn:aws:rbin:<region>:<account>:rule/<id>``.
  https://docs.aws.amazon.com/recyclebin/latest/APIReference/API_CreateRule.html
* Only Region-level rules can be locked ("You can't lock tag-level retention rules"): a lock for a
  rule with ``ResourceTags`` is a ``ValidationException``.
  https://docs.aws.amazon.com/ebs/latest/userguide/recycle-bin-lock.html
* LockRule: ``UnlockDelay`` 7 to 30 ``DAYS``; the state becomes ``locked``. A locked rule can be re-locked
  but its unlock delay cannot be changed. UnlockRule starts the unlock delay: ``pending_unlock`` with a
  ``LockEndTime``, then ``unlocked``.
  https://docs.aws.amazon.com/recyclebin/latest/APIReference/API_UnlockDelay.html
  https://docs.aws.amazon.com/ebs/latest/userguide/recycle-bin-unlock.html
* UpdateRule and DeleteRule of a rule that is ``locked`` or ``pending_unlock`` fail with
  ``ConflictException`` (reason ``INVALID_RULE_STATE``, HTTP 409): "A locked retention rule can't be
  modified or deleted, even by users who have the required IAM permissions."
  https://docs.aws.amazon.com/recyclebin/latest/APIReference/API_DeleteRule.html
* GetRule, ListRules (``ResourceType`` required; filters ``LockState``, ``ResourceTags``), TagResource,
  UntagResource, ListTagsForResource; an unknown rule is ``ResourceNotFoundException`` (404).

Tests end an unlock delay with ``end_unlock_delay(rule_id)``.
"""

import datetime
import random
import re
import string
import sys
import types

from moto import backend_index
from moto.core.base_backend import BackendDict
from moto.core.base_backend import BaseBackend
from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.core.responses import BaseResponse

RESOURCE_TYPES = ("EBS_SNAPSHOT", "EC2_IMAGE")
RETENTION_DAYS = (1, 365)
UNLOCK_DELAY_DAYS = (7, 30)
_URL_PATTERN = re.compile(r"https?://rbin\.(.+)\.amazonaws\.com")
_PATCHED = False


class RbinError(ServiceException):
    def __init__(self, message, reason=None):
        super().__init__(message)
        if reason:
            self.Reason = reason


class ValidationException(RbinError):
    code = "ValidationException"


class ConflictException(RbinError):
    code = "ConflictException"


class ResourceNotFoundException(RbinError):
    code = "ResourceNotFoundException"


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _days(period, name, limits, unit_key, value_key):
    if not isinstance(period, dict) or period.get(unit_key) != "DAYS":
        raise ValidationException("{0}: the unit must be DAYS".format(name), "INVALID_PARAMETER_VALUE")
    value = period.get(value_key)
    if not isinstance(value, int) or not limits[0] <= value <= limits[1]:
        raise ValidationException(
            "{0} must be between {1} and {2} days, got {3}".format(name, limits[0], limits[1], value),
            "INVALID_PARAMETER_VALUE",
        )
    return value


class Rule:
    def __init__(self, backend, params):
        self.identifier = "".join(random.choice(string.ascii_letters + string.digits) for _unused in range(11))
        self.rule_arn = "arn:aws:rbin:{0}:{1}:rule/{2}".format(backend.region_name, backend.account_id, self.identifier)
        self.resource_type = params.get("ResourceType")
        if self.resource_type not in RESOURCE_TYPES:
            raise ValidationException(
                "ResourceType must be EBS_SNAPSHOT or EC2_IMAGE, got {0}".format(self.resource_type),
                "INVALID_PARAMETER_VALUE",
            )
        self.resource_tags = list(params.get("ResourceTags") or [])
        self.exclude_resource_tags = list(params.get("ExcludeResourceTags") or [])
        if self.resource_tags and self.exclude_resource_tags:
            raise ValidationException(
                "ResourceTags and ExcludeResourceTags can't be used together", "INVALID_PARAMETER_COMBINATION"
            )
        self.set_retention(params.get("RetentionPeriod"))
        self.set_description(params.get("Description"))
        self.status = "available"
        self.lock_configuration = None
        self.lock_state = None
        self.lock_end_time = None

    def set_retention(self, period):
        _days(period, "RetentionPeriod", RETENTION_DAYS, "RetentionPeriodUnit", "RetentionPeriodValue")
        self.retention_period = dict(period)

    def set_description(self, description):
        if description is not None and len(description) > 255:
            raise ValidationException("Description is longer than 255 characters", "INVALID_PARAMETER_VALUE")
        self.description = description

    def current_lock_state(self):
        if self.lock_state == "pending_unlock" and self.lock_end_time <= _now():
            self.lock_state, self.lock_end_time = "unlocked", None
        return self.lock_state

    def lock(self, configuration):
        if self.resource_tags:
            raise ValidationException(
                "Only Region-level retention rules can be locked; rule {0} has resource tags".format(self.identifier),
                "INVALID_PARAMETER_VALUE",
            )
        delay = (configuration or {}).get("UnlockDelay")
        _days(delay, "UnlockDelay", UNLOCK_DELAY_DAYS, "UnlockDelayUnit", "UnlockDelayValue")
        if self.lock_configuration and self.lock_configuration["UnlockDelay"] != delay:
            raise ConflictException(
                "The unlock delay of rule {0} can't be changed after it was locked".format(self.identifier),
                "INVALID_RULE_STATE",
            )
        self.lock_configuration = {"UnlockDelay": dict(delay)}
        self.lock_state, self.lock_end_time = "locked", None

    def unlock(self):
        if self.current_lock_state() != "locked":
            raise ConflictException("Rule {0} is not locked".format(self.identifier), "INVALID_RULE_STATE")
        delay = self.lock_configuration["UnlockDelay"]["UnlockDelayValue"]
        self.lock_state, self.lock_end_time = "pending_unlock", _now() + datetime.timedelta(days=delay)

    def check_changeable(self):
        state = self.current_lock_state()
        if state in ("locked", "pending_unlock"):
            raise ConflictException(
                "Rule {0} is {1}: a locked retention rule can't be modified or deleted".format(self.identifier, state),
                "INVALID_RULE_STATE",
            )

    def summary(self):
        found = {
            "Identifier": self.identifier,
            "Description": self.description,
            "RetentionPeriod": self.retention_period,
            "LockState": self.current_lock_state(),
            "RuleArn": self.rule_arn,
        }
        if self.exclude_resource_tags:
            found["ExcludeResourceTags"] = self.exclude_resource_tags
        return {key: value for key, value in found.items() if value is not None}

    def detail(self):
        found = dict(
            self.summary(),
            ResourceType=self.resource_type,
            ResourceTags=self.resource_tags,
            Status=self.status,
            LockConfiguration=self.lock_configuration,
            LockEndTime=self.lock_end_time,
        )
        return {key: value for key, value in found.items() if value is not None}


class RbinBackend(BaseBackend):
    def __init__(self, region_name, account_id):
        super().__init__(region_name, account_id)
        self.rules = {}
        self.tags = {}

    @property
    def _url_module(self):
        return sys.modules[__name__]

    def rule(self, identifier):
        if identifier not in self.rules:
            raise ResourceNotFoundException("Rule {0} was not found".format(identifier), "RULE_NOT_FOUND")
        return self.rules[identifier]

    def rule_by_arn(self, arn):
        for rule in self.rules.values():
            if rule.rule_arn == arn:
                return rule
        raise ResourceNotFoundException("Resource {0} was not found".format(arn), "RULE_NOT_FOUND")


rbin_backends = BackendDict(RbinBackend, "rbin")


def end_unlock_delay(rule_id):
    """As if a pending unlock's delay had passed, in whichever account and region holds the rule."""
    for account in rbin_backends.values():
        for backend in account.values():
            rule = backend.rules.get(rule_id)
            if rule is not None and rule.lock_state == "pending_unlock":
                rule.lock_end_time = _now() - datetime.timedelta(seconds=1)


class RbinResponse(BaseResponse):
    def __init__(self):
        super().__init__(service_name="rbin")
        self.automated_parameter_parsing = True

    @property
    def backend(self):
        return rbin_backends[self.current_account][self.region]

    def _identifier(self):
        return self.uri_match.get("identifier") or self._get_param("Identifier")

    def create_rule(self):
        params = self.params
        rule = Rule(self.backend, params)
        if params.get("LockConfiguration"):
            rule.lock(params["LockConfiguration"])
        self.backend.rules[rule.identifier] = rule
        self.backend.tags[rule.rule_arn] = {tag["Key"]: tag["Value"] for tag in params.get("Tags") or []}
        tags = [{"Key": key, "Value": value} for key, value in self.backend.tags[rule.rule_arn].items()]
        return ActionResult(dict(rule.detail(), Tags=tags))

    def get_rule(self):
        return ActionResult(self.backend.rule(self._identifier()).detail())

    def list_rules(self):
        params = self.params
        if params.get("ResourceType") not in RESOURCE_TYPES:
            raise ValidationException("ResourceType must be EBS_SNAPSHOT or EC2_IMAGE", "INVALID_PARAMETER_VALUE")
        found = []
        for rule in self.backend.rules.values():
            if rule.resource_type != params["ResourceType"]:
                continue
            if params.get("LockState") and rule.current_lock_state() != params["LockState"]:
                continue
            if params.get("ResourceTags") and rule.resource_tags != params["ResourceTags"]:
                continue
            found.append(rule.summary())
        return ActionResult({"Rules": found})

    def update_rule(self):
        rule = self.backend.rule(self._identifier())
        rule.check_changeable()
        params = self.params
        if "RetentionPeriod" in params:
            rule.set_retention(params["RetentionPeriod"])
        if "Description" in params:
            rule.set_description(params["Description"])
        if "ResourceTags" in params:
            rule.resource_tags = list(params["ResourceTags"])
        return ActionResult(dict(rule.detail(), LockConfiguration=None))

    def delete_rule(self):
        rule = self.backend.rule(self._identifier())
        rule.check_changeable()
        del self.backend.rules[rule.identifier]
        self.backend.tags.pop(rule.rule_arn, None)
        return ActionResult({})

    def lock_rule(self):
        rule = self.backend.rule(self._identifier())
        rule.lock(self.params.get("LockConfiguration"))
        return ActionResult(rule.detail())

    def unlock_rule(self):
        rule = self.backend.rule(self._identifier())
        rule.unlock()
        return ActionResult(rule.detail())

    def _arn(self):
        return self.uri_match.get("resourceArn") or self._get_param("ResourceArn")

    def tag_resource(self):
        rule = self.backend.rule_by_arn(self._arn())
        self.backend.tags[rule.rule_arn].update({tag["Key"]: tag["Value"] for tag in self.params.get("Tags") or []})
        return ActionResult({})

    def untag_resource(self):
        rule = self.backend.rule_by_arn(self._arn())
        for key in self.params.get("TagKeys") or []:
            self.backend.tags[rule.rule_arn].pop(key, None)
        return ActionResult({})

    def list_tags_for_resource(self):
        rule = self.backend.rule_by_arn(self._arn())
        return ActionResult(
            {"Tags": [{"Key": key, "Value": value} for key, value in self.backend.tags[rule.rule_arn].items()]}
        )


url_bases = [_URL_PATTERN.pattern]
url_paths = {
    "{0}/rules$": RbinResponse.dispatch,
    "{0}/list-rules$": RbinResponse.dispatch,
    "{0}/rules/(?P<identifier>[^/]+)$": RbinResponse.dispatch,
    "{0}/rules/(?P<identifier>[^/]+)/lock$": RbinResponse.dispatch,
    "{0}/rules/(?P<identifier>[^/]+)/unlock$": RbinResponse.dispatch,
    "{0}/tags/(?P<resourceArn>.+)$": RbinResponse.dispatch,
}


def apply():
    """Register the backend as moto's ``rbin`` service (idempotent)."""
    global _PATCHED
    if _PATCHED:
        return
    module = types.ModuleType("moto.rbin")
    module.rbin_backends = rbin_backends
    sys.modules["moto.rbin"] = module
    if not any(name == "rbin" for name, _pattern in backend_index.backend_url_patterns):
        backend_index.backend_url_patterns.append(("rbin", _URL_PATTERN))
    _PATCHED = True
