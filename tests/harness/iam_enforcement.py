"""IAM enforcement in moto, made to evaluate what AWS evaluates for the collection's EC2 calls.

moto 5.2.5 enforces action-level Allow/Deny once ``POST /moto-api/reset-auth`` sets the count of
unauthenticated requests (``enforce_iam``), but for EC2 it differs from AWS in three ways that
would make a least-privilege proof pass where AWS denies or deny where AWS allows. The patch
below (active only while enforcement is on) makes it evaluate as AWS documents:

* Every EC2 request is checked against ``Resource: "*"``, so a statement scoped to
  ``arn:aws:ec2:*::image/*`` never matches. For the calls that act on one image or snapshot
  (DeregisterImage, DeleteSnapshot, ModifySnapshotTier, LockSnapshot, Enable/DisableImageDeregistrationProtection,
  and the shares ModifyImageAttribute and ModifySnapshotAttribute) the request is checked against that
  resource's ARN, with its tags as ``aws:ResourceTag/<key>`` condition values.
  https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html
* The restore calls are checked against every resource AWS authorises them on: RunInstances on
  the new instance, volume and network interface (with the tags of the call as
  ``aws:RequestTag/<key>``) and on the AMI, subnet, security groups and key pair it uses (with
  their tags as ``aws:ResourceTag/<key>``); CreateVolume on the new volume and its snapshot;
  AttachVolume on the volume and the instance; TerminateInstances on each instance.
  https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ExamplePolicies_EC2.html#iam-example-runinstances
* A create call with ``TagSpecifications`` is not checked for ``ec2:CreateTags``. AWS requires
  ``ec2:CreateTags`` on the new resource, with the condition key ``ec2:CreateAction`` naming the
  create call. https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/supported-iam-actions-tagging.html
* An Allow statement whose condition does not match counts as an explicit deny, even for
  another resource; in AWS a statement whose condition does not match does not apply.
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
* The restore drill's calls are checked against the resources they act on, with those resources' tags:
  DeleteVolume, DeleteSecurityGroup, DeleteSubnet, DeleteVpc, DeleteVpcEndpoints, ModifyVpcAttribute,
  AuthorizeSecurityGroupIngress, and CreateTags on existing resources (with ``aws:RequestTag/<key>`` and
  ``aws:TagKeys`` from the call); ssm:SendCommand on its document and on each instance.
  https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html
  https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssystemsmanager.html
* moto evaluates only ``StringEquals`` and counts a condition on a key the request does not have
  as met. The conditions here are evaluated as IAM does: ``StringEquals``, ``StringLike``, ``Null``
  and the ``ForAllValues:``/``ForAnyValue:`` set operators; a key the request lacks fails every
  operator but ``Null``, and an operator not listed here fails loudly instead of being ignored.
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
* The denial is ``AccessDenied``; EC2 answers ``UnauthorizedOperation`` (HTTP 403) naming the action.
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html
* moto authorises S3 HeadBucket as an action ``s3:HeadBucket``, which IAM does not have; S3 authorises
  it as ``s3:ListBucket`` on the bucket. https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadBucket.html
* S3's ``AccessDenied`` says only "Access Denied"; S3 names the user, the action and the resource
  for requests within one account.
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/troubleshoot-403-errors.html

"""

import fnmatch
import json
import urllib.request

from moto.backends import get_backend
from moto.core.exceptions import _RESTError
from moto.iam.access_control import IAMPolicy
from moto.iam.access_control import IAMRequest
from moto.iam.access_control import IAMPolicyStatement
from moto.iam.access_control import S3IAMRequest
from moto.s3.exceptions import BucketAccessDeniedError
from moto.s3.exceptions import S3AccessDeniedError

from tests.harness.moto_server import ACCOUNT_ID

RESOURCE_SCOPED = {
    "DeregisterImage": ("ImageId", "image"),
    "DeleteSnapshot": ("SnapshotId", "snapshot"),
    "ModifySnapshotTier": ("SnapshotId", "snapshot"),
    "ModifyImageAttribute": ("ImageId", "image"),
    "ModifySnapshotAttribute": ("SnapshotId", "snapshot"),
    "LockSnapshot": ("SnapshotId", "snapshot"),
    "EnableImageDeregistrationProtection": ("ImageId", "image"),
    "DisableImageDeregistrationProtection": ("ImageId", "image"),
}
_PATCHED = False


class UnauthorizedOperation(_RESTError):
    code = 403

    def __init__(self, user_arn, action, resource):
        super().__init__(
            "UnauthorizedOperation",
            "You are not authorized to perform this operation. User: {0} is not authorized to perform: {1}"
            " on resource: {2} because no identity-based policy allows the {1} action".format(
                user_arn, action, resource
            ),
        )


class S3AccessDenied(BucketAccessDeniedError):
    def __init__(self, bucket, user_arn, action, resource):
        super().__init__(bucket)
        self.message = (
            'User: {0} is not authorized to perform: {1} on resource: "{2}"'
            " because no identity-based policy allows the {1} action".format(user_arn, action, resource)
        )


def _param(data, name):
    value = data.get(name)
    return value[0] if isinstance(value, list) else value


def _tagged_resource_types(data):
    return sorted(
        {_param(data, key) for key in data if key.startswith("TagSpecification.") and key.endswith(".ResourceType")}
    )


def _resource_tags(region, resource_id):
    backend = get_backend("ec2")[ACCOUNT_ID][region]
    return backend.tags.get(resource_id, {})


def _numbered(data, prefix, suffix=""):
    """The values of ``Prefix.1Suffix``, ``Prefix.2Suffix``, ... in a query request."""
    found, number = [], 1
    while _param(data, "{0}.{1}{2}".format(prefix, number, suffix)) is not None:
        found.append(_param(data, "{0}.{1}{2}".format(prefix, number, suffix)))
        number += 1
    return found


def _request_tags(data, resource_type):
    """The tags a create call's TagSpecifications give resources of ``resource_type``."""
    tags, number = {}, 1
    while _param(data, "TagSpecification.{0}.ResourceType".format(number)) is not None:
        prefix = "TagSpecification.{0}".format(number)
        if _param(data, prefix + ".ResourceType") == resource_type:
            keys = _numbered(data, prefix + ".Tag", ".Key")
            values = _numbered(data, prefix + ".Tag", ".Value")
            tags.update(zip(keys, values))
        number += 1
    return tags


def _arn(region, resource_type, resource_id):
    account = "" if resource_type in ("image", "snapshot") else ACCOUNT_ID
    return "arn:aws:ec2:{0}:{1}:{2}/{3}".format(region, account, resource_type, resource_id)


def _tag_context(kind, tags):
    """``aws:<kind>/<key>`` condition keys of ``tags`` (only the keys present, as IAM sees them)."""
    return {"aws:{0}/{1}".format(kind, key): value for key, value in tags.items()}


def _existing(region, resource_type, resource_id):
    return _arn(region, resource_type, resource_id), _tag_context("ResourceTag", _resource_tags(region, resource_id))


def _new(region, data, resource_type):
    return _arn(region, resource_type, "*"), _tag_context("RequestTag", _request_tags(data, resource_type))


def _run_instances_resources(region, data):
    resources = [_new(region, data, kind) for kind in ("instance", "volume", "network-interface")]
    resources.append(_existing(region, "image", _param(data, "ImageId")))
    subnet = _param(data, "NetworkInterface.1.SubnetId") or _param(data, "SubnetId")
    if subnet:
        resources.append(_existing(region, "subnet", subnet))
    groups = _numbered(data, "NetworkInterface.1.SecurityGroupId") + _numbered(data, "SecurityGroupId")
    resources += [_existing(region, "security-group", group) for group in groups]
    if _param(data, "KeyName"):
        resources.append((_arn(region, "key-pair", _param(data, "KeyName")), {"ResourceTag": {}}))
    return resources


def _create_volume_resources(region, data):
    resources = [_new(region, data, "volume")]
    if _param(data, "SnapshotId"):
        resources.append(_existing(region, "snapshot", _param(data, "SnapshotId")))
    return resources


def _attach_volume_resources(region, data):
    return [
        _existing(region, "volume", _param(data, "VolumeId")),
        _existing(region, "instance", _param(data, "InstanceId")),
    ]


def _terminate_instances_resources(region, data):
    return [_existing(region, "instance", instance_id) for instance_id in _numbered(data, "InstanceId")]


RESOURCE_TYPES = {
    "ami": "image",
    "snap": "snapshot",
    "i": "instance",
    "vol": "volume",
    "sg": "security-group",
    "subnet": "subnet",
    "vpc": "vpc",
    "vpce": "vpc-endpoint",
    "eni": "network-interface",
}


def _one(parameter, resource_type):
    def resources(region, data):
        return [_existing(region, resource_type, _param(data, parameter))]

    return resources


def _create_tags_resources(region, data):
    keys = _numbered(data, "Tag", ".Key")
    request = dict(zip(keys, _numbered(data, "Tag", ".Value")))
    found = []
    for resource_id in _numbered(data, "ResourceId"):
        arn, context = _existing(region, RESOURCE_TYPES.get(resource_id.split("-", 1)[0], "unknown"), resource_id)
        found.append((arn, dict(context, **_tag_context("RequestTag", request), **{"aws:TagKeys": keys})))
    return found


MULTI_RESOURCE = {
    "RunInstances": _run_instances_resources,
    "CreateVolume": _create_volume_resources,
    "AttachVolume": _attach_volume_resources,
    "TerminateInstances": _terminate_instances_resources,
    "DeleteVolume": _one("VolumeId", "volume"),
    "DeleteSecurityGroup": _one("GroupId", "security-group"),
    "AuthorizeSecurityGroupIngress": _one("GroupId", "security-group"),
    "DeleteSubnet": _one("SubnetId", "subnet"),
    "DeleteVpc": _one("VpcId", "vpc"),
    "ModifyVpcAttribute": _one("VpcId", "vpc"),
    "DeleteVpcEndpoints": lambda region, data: [
        _existing(region, "vpc-endpoint", endpoint) for endpoint in _numbered(data, "VpcEndpointId")
    ],
    "CreateTags": _create_tags_resources,
}


def _send_command_resources(region, body):
    request = json.loads(body or b"{}")
    resources = [("arn:aws:ssm:{0}::document/{1}".format(region, request.get("DocumentName")), {})]
    resources += [_existing(region, "instance", instance_id) for instance_id in request.get("InstanceIds", [])]
    return resources


def _statements(policy):
    document = IAMPolicy(policy)._policy_json
    return document["Statement"] if isinstance(document["Statement"], list) else [document["Statement"]]


def _values(value):
    return value if isinstance(value, list) else [value]


def _operator_holds(operator, key, expected, context):
    """One condition ``operator`` on ``key``, as IAM evaluates it against the request's ``context``."""
    quantifier, _sep, base = operator.rpartition(":")
    if base == "Null":
        return (key not in context) == (str(_values(expected)[0]).lower() == "true")
    if base not in ("StringEquals", "StringLike") or quantifier not in ("", "ForAllValues", "ForAnyValue"):
        raise NotImplementedError("iam_enforcement does not evaluate the condition operator " + operator)
    if key not in context:
        return quantifier == "ForAllValues"  # IAM: ForAllValues over no values is true

    def matches(actual):
        if base == "StringEquals":
            return actual in _values(expected)
        return any(fnmatch.fnmatchcase(actual, pattern) for pattern in _values(expected))

    actual = _values(context[key])
    if quantifier == "ForAllValues":
        return all(matches(value) for value in actual)
    return any(matches(value) for value in actual)


def _conditions_hold(conditions, context):
    return all(
        _operator_holds(operator, key, expected, context or {})
        for operator, keys in (conditions or {}).items()
        for key, expected in keys.items()
    )


def _applies(statement, action, resource, context):
    """Whether a statement applies to the request: its action, its resource and its conditions match."""
    checked = IAMPolicyStatement(statement)
    if "NotAction" in statement:
        if checked._check_element_matches("NotAction", action):
            return False
    elif not checked._check_element_matches("Action", action):
        return False
    if statement.get("Resource") and not checked._check_element_matches("Resource", resource):
        return False
    return _conditions_hold(statement.get("Condition"), context)


def _evaluate(request, action, resource, condition_values):
    permitted = False
    for policy in request._access_key.collect_policies():
        for statement in _statements(policy):
            if _applies(statement, action, resource, condition_values):
                if statement["Effect"] != "Allow":
                    return False
                permitted = True
    return permitted


def _deny(request, action, resource):
    raise UnauthorizedOperation(request._access_key.arn, action, resource)


def apply():
    """Patch moto's IAM checks for EC2 and S3 (idempotent; inert while enforcement is off)."""
    global _PATCHED
    if _PATCHED:
        return
    original = IAMRequest.check_action_permitted

    def check_action_permitted(self, resource):
        if self._service == "ssm" and self._action == "ssm:SendCommand":
            for arn, context in _send_command_resources(self._region, self._body):
                if not _evaluate(self, self._action, arn, context):
                    _deny(self, self._action, arn)
            return
        if self._service != "ec2":
            return original(self, resource)
        operation = self._action.split(":", 1)[1]
        if operation in RESOURCE_SCOPED:
            parameter, resource_type = RESOURCE_SCOPED[operation]
            resource_id = _param(self._data, parameter)
            resource = "arn:aws:ec2:{0}::{1}/{2}".format(self._region, resource_type, resource_id)
            context = _tag_context("ResourceTag", _resource_tags(self._region, resource_id))
            if not _evaluate(self, self._action, resource, context):
                _deny(self, self._action, resource)
        elif operation in MULTI_RESOURCE:
            for resource, context in MULTI_RESOURCE[operation](self._region, self._data):
                if not _evaluate(self, self._action, resource, context):
                    _deny(self, self._action, resource)
        elif not _evaluate(self, self._action, resource, None):
            _deny(self, self._action, resource)
        for resource_type in _tagged_resource_types(self._data):
            new_resource = "arn:aws:ec2:{0}::{1}/*".format(self._region, resource_type)
            context = dict(_tag_context("RequestTag", _request_tags(self._data, resource_type)))
            context["ec2:CreateAction"] = operation
            if not _evaluate(self, "ec2:CreateTags", new_resource, context):
                _deny(self, "ec2:CreateTags", new_resource)

    original_s3 = S3IAMRequest.check_action_permitted

    def check_s3_action_permitted(self, resource):
        if self._action == "s3:HeadBucket":
            self._action = "s3:ListBucket"
        try:
            original_s3(self, resource)
        except S3AccessDeniedError:
            bucket = resource.split(":::", 1)[1].split("/", 1)[0]
            raise S3AccessDenied(bucket, self._access_key.arn, self._action, resource)

    IAMRequest.check_action_permitted = check_action_permitted
    S3IAMRequest.check_action_permitted = check_s3_action_permitted
    _PATCHED = True


def _reset_auth(endpoint, count):
    request = urllib.request.Request(
        endpoint + "/moto-api/reset-auth",
        data=str(count).encode(),
        headers={"Content-Type": "text/plain"},
        method="POST",
    )
    return json.loads(urllib.request.urlopen(request).read())


class enforce_iam:
    """``with enforce_iam(endpoint):`` every request must be signed by an IAM user's key and allowed."""

    def __init__(self, endpoint):
        self.endpoint = endpoint

    def __enter__(self):
        apply()
        _reset_auth(self.endpoint, 0)
        return self

    def __exit__(self, *exc_info):
        _reset_auth(self.endpoint, "inf")
        return False
