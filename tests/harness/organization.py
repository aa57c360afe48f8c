"""An AWS Organization in moto: member accounts (some closed), OUs, and the backup role in each account.

moto keeps one backend per account; credentials from sts:AssumeRole act in the role's account
(MOTO-NOTES.md), so a module that assumes a member account's role sees that account's EC2.
Roles are created on moto's IAM backend of the member account directly (this process runs the
server): the management account's credentials cannot reach a member's IAM before a role exists.
"""

import json

import boto3

from moto.backends import get_backend

from tests.harness import fleet
from tests.harness.moto_server import ACCOUNT_ID

ROLE_NAME = "OpsvaultBackup"


def trust_policy(principal=ACCOUNT_ID, external_id=None):
    """The member role's trust policy: the backup host's account (or a role ARN) may assume it."""
    statement = {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}
    if external_id:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return {"Version": "2012-10-17", "Statement": [statement]}


def create_role(account_id, name=ROLE_NAME, trust=None):
    """The role ``name`` in ``account_id``, assumable as ``trust`` (default: the management account)."""
    iam = get_backend("iam")[account_id]["aws"]
    role = iam.create_role(
        role_name=name,
        assume_role_policy_document=json.dumps(trust or trust_policy()),
        path="/",
        permissions_boundary=None,
        description="",
        tags=[],
        max_session_duration=None,
    )
    return role.arn


class Organization:
    """``Organization(endpoint, {"prod": "ACTIVE", "old": "SUSPENDED"}, ous={"Workloads": ["prod"]})``."""

    def __init__(self, endpoint, accounts, ous=None):
        self.client = fleet.client(endpoint, "organizations", "us-east-1")
        self.client.create_organization(FeatureSet="ALL")
        self.root_id = self.client.list_roots()["Roots"][0]["Id"]
        self.accounts = {}
        for name, status in accounts.items():
            created = self.client.create_account(AccountName=name, Email="{0}@example.com".format(name))
            account_id = created["CreateAccountStatus"]["AccountId"]
            self.accounts[name] = account_id
            if status == "SUSPENDED":
                self.client.close_account(AccountId=account_id)
        self.ous = {}
        for ou_name, members in (ous or {}).items():
            ou_id = self.client.create_organizational_unit(ParentId=self.root_id, Name=ou_name)["OrganizationalUnit"][
                "Id"
            ]
            self.ous[ou_name] = ou_id
            for member in members:
                self.client.move_account(
                    AccountId=self.accounts[member], SourceParentId=self.root_id, DestinationParentId=ou_id
                )

    def role_arn(self, name, role=ROLE_NAME):
        return "arn:aws:iam::{0}:role/{1}".format(self.accounts[name], role)


def ec2_in(endpoint, role_arn, region, external_id=None):
    """An EC2 client acting in the role's account (through sts:AssumeRole, as the modules do)."""
    sts = fleet.client(endpoint, "sts", region)
    params = dict(RoleArn=role_arn, RoleSessionName="test")
    if external_id:
        params["ExternalId"] = external_id
    credentials = sts.assume_role(**params)["Credentials"]

    return boto3.client(
        "ec2",
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
