"""Fixtures the integration tests share (tests/conftest.py holds moto, ``aws`` and ``play``)."""

import pytest

from tests.harness import aws_proxy


@pytest.fixture
def counting_proxy(aws):
    """The AWS-like proxy in front of moto, counting every call (no latency, no throttling)."""
    proxy = aws_proxy.start(aws.endpoint)
    yield proxy
    proxy.stop()
