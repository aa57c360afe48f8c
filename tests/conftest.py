import urllib.request

import pytest

from tests.harness import ansible_run
from tests.harness import fleet
from tests.harness import moto_server
from tests.harness import moto_ssm_agent


@pytest.fixture(scope="session")
def moto_endpoint():
    """A patched moto server on a free 127.0.0.1 port, for the whole session (one per xdist worker)."""
    server, endpoint = moto_server.start()
    yield endpoint
    server.stop()


class Aws:
    def __init__(self, endpoint):
        self.endpoint = endpoint

    def client(self, service, region="us-east-1"):
        return fleet.client(self.endpoint, service, region)

    def ec2(self, region="us-east-1"):
        return self.client("ec2", region)


@pytest.fixture
def aws(moto_endpoint):
    """moto, emptied before each test."""
    request = urllib.request.Request(moto_endpoint + "/moto-api/reset", method="POST")
    urllib.request.urlopen(request).read()
    moto_server.CREATE_IMAGE_REQUESTS.clear()
    moto_ssm_agent.reset()
    return Aws(moto_endpoint)


@pytest.fixture
def play(aws, tmp_path):
    """Run tasks in a localhost play against moto: ``play(tasks, region=..., check=...)``."""

    def run(tasks, region="us-east-1", check=False, extra_vars=None, env=None):
        return ansible_run.run_playbook(
            ansible_run.aws_play(aws.endpoint, tasks, region=region),
            tmp_path,
            endpoint=aws.endpoint,
            extra_vars=extra_vars,
            check=check,
            env=env,
        )

    return run
