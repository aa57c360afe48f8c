"""Fixtures the integration tests share (tests/conftest.py holds moto, ``aws`` and ``play``)."""

import pytest

from tests.harness import aws_proxy
from tests.harness.ansible_run import run_playbook


@pytest.fixture
def counting_proxy(aws):
    """The AWS-like proxy in front of moto, counting every call (no latency, no throttling)."""
    proxy = aws_proxy.start(aws.endpoint)
    yield proxy
    proxy.stop()


@pytest.fixture
def shipped_playbook(counting_proxy, tmp_path):
    """``shipped_playbook(name, extra_vars, check=False)``: run ``opsvault.aws_backup.<name>`` through the
    counting proxy with the region from the environment, as a user would; returns ``(run, stats)``
    with the proxy's counts of that run alone."""

    def run(name, extra_vars, check=False):
        counting_proxy.reset()
        playbook = run_playbook(
            "opsvault.aws_backup." + name,
            tmp_path,
            endpoint=counting_proxy.endpoint,
            extra_vars=extra_vars,
            check=check,
            env={"AWS_REGION": "us-east-1"},
        )
        assert playbook.rc == 0, playbook.stdout
        return playbook, counting_proxy.stats()

    return run
