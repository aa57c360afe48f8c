"""Shared unit-test fixtures: options built by a module's own parser, Stubber clients, a stand-in module."""

import boto3
import pytest
from botocore.stub import Stubber

from tests.harness.module_options import StandInModule
from tests.harness.module_options import options_of


@pytest.fixture
def module_options():
    """``module_options(module, check_mode=False, **params)``: options as the module's own parser reads them."""

    return options_of


@pytest.fixture
def stub_client():
    """``stub_client(service="ec2", region="eu-west-1")``: ``(client, stubber)``; every stubber is
    checked for responses left unused when the test ends."""
    stubbers = []

    def make(service="ec2", region="eu-west-1"):
        client = boto3.client(service, region_name=region, aws_access_key_id="x", aws_secret_access_key="x")
        stubber = Stubber(client)
        stubbers.append(stubber)
        return client, stubber

    yield make
    for stubber in stubbers:
        stubber.assert_no_pending_responses()


@pytest.fixture
def stand_in_module():
    return StandInModule
