import datetime

import boto3
import botocore.credentials
import pytest
from botocore.stub import Stubber

from ansible_collections.opsvault.aws_backup.plugins.module_utils import clients
from ansible_collections.opsvault.aws_backup.plugins.module_utils import options

ROLE = "arn:aws:iam::111122223333:role/OpsvaultBackup"


def test_role_options_are_checked_naming_the_option_and_value():
    assert options.assume_role({"assume_role_arn": None, "external_id": None}) is None
    assert options.assume_role({"assume_role_arn": ROLE, "external_id": "x", "role_session_name": None}) == {
        "role_arn": ROLE,
        "external_id": "x",
        "session_name": "opsvault-aws-backup",
    }
    for params, named in (
        ({"assume_role_arn": "arn:aws:iam::1111:role/x"}, "assume_role_arn"),
        ({"assume_role_arn": "OpsvaultBackup"}, "'OpsvaultBackup'"),
        ({"assume_role_arn": None, "external_id": "lonely"}, "'lonely' needs assume_role_arn"),
        ({"assume_role_arn": ROLE, "role_session_name": "has space"}, "'has space'"),
    ):
        with pytest.raises(ValueError) as error:
            options.assume_role(params)
        assert named in str(error.value)


class _Source:
    """A source session whose STS client is stubbed: what AssumeRoleCredentialFetcher calls."""

    def __init__(self, stubber_client):
        self.sts = stubber_client
        self.created_with = []

    def get_credentials(self):
        return botocore.credentials.Credentials("source-key", "source-secret")

    def client(self, service, **kwargs):
        self.created_with.append((service, kwargs))
        return self.sts


def _assumed(stubber, key, expires_in, external_id="ext-1"):
    expiration = datetime.datetime.now(datetime.timezone.utc) + expires_in
    stubber.add_response(
        "assume_role",
        {
            "Credentials": {
                "AccessKeyId": key,
                "SecretAccessKey": "secret-" + key,
                "SessionToken": "token-" + key,
                "Expiration": expiration,
            }
        },
        {"RoleArn": ROLE, "RoleSessionName": "opsvault-aws-backup", "ExternalId": external_id},
    )


def test_assumed_credentials_renew_themselves_before_they_expire():
    sts = boto3.client("sts", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(sts)
    # The first session ends within botocore's 15-minute refresh window, as a chained session nears its hour.
    _assumed(stubber, "ASIAFIRST0000000", datetime.timedelta(minutes=10))
    _assumed(stubber, "ASIASECOND000000", datetime.timedelta(hours=1))
    stubber.activate()
    source = _Source(sts)
    role = options.assume_role({"assume_role_arn": ROLE, "external_id": "ext-1"})

    credentials = clients.assumed_role_credentials(role, source, {"region_name": "us-east-1", "endpoint_url": None})

    assert credentials.method == "assume-role"
    assert credentials.get_frozen_credentials().access_key == "ASIASECOND000000"  # renewed on use
    assert credentials.get_frozen_credentials().access_key == "ASIASECOND000000"  # and then kept until near expiry
    stubber.assert_no_pending_responses()
    assert source.created_with[0] == (
        "sts",
        {
            "region_name": "us-east-1",
            "endpoint_url": None,
            "aws_access_key_id": "source-key",
            "aws_secret_access_key": "source-secret",
            "aws_session_token": None,
        },
    )
