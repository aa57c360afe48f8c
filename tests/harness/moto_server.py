"""moto as our AWS: a server on 127.0.0.1, with a small conformance patch.

moto 5.2.5 differs from AWS in ways the product must not bend to (see MOTO-NOTES.md).
Where AWS's behaviour is documented, the patch below makes moto do the same, so the tests
check what AWS does and the modules never carry a moto workaround:

* CreateImage accepts TagSpecifications for ``snapshot`` and tags the AMI's snapshots.
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateImage.html
  ("You can tag the AMI, the snapshots, or both")
* CreateImage with a name the account already uses in the region fails with
  ``InvalidAMIName.Duplicate``.
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html
* EC2 describe calls cost what they cost on AWS: a resource's tags are a dict lookup instead of a
  scan of every tag of the region, and DescribeImages and DescribeSnapshots page by ``MaxResults``
  and ``NextToken`` (``tests/harness/moto_ec2_describe.py``, with the AWS references).
* RunInstances and CreateVolume honour ``ClientToken``: a repeated token returns the first launch
  or volume (``tests/harness/moto_client_token.py``).
* CompleteMultipartUpload honours ``If-Match``, as S3 documents
  (``tests/harness/moto_s3_conditional.py``).
* ListObjectsV2 serves a page from a sorted key index at the cost of the page, not of the bucket
  (``tests/harness/moto_s3_listing.py``, with the AWS references).
* sts:AssumeRole refuses a role that does not exist, a trust policy that does not allow the caller and
  a wrong external id, with ``AccessDenied`` (``tests/harness/moto_sts.py``).
* CopyImage and CopySnapshot copy across regions and accounts as EC2 does: CopyImage's ``ClientToken``,
  tags and encryption in the call, read permission on the source, at most 20 snapshot copies in flight
  per destination region; an AWS managed KMS key is one (``tests/harness/moto_copy.py``).
* DescribeSnapshots honours ``RestorableByUserIds`` (``all`` lists the public snapshots):
  ``moto_snapshot_permissions.py``.
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeSnapshots.html
* SSM Run Command reaches only managed instances, and each invocation answers with its status,
  exit code and output (a simulated SSM Agent per AMI): ``moto_ssm_agent.py``.
* EBS snapshot lock: LockSnapshot, UnlockSnapshot, DescribeLockedSnapshots, and DeleteSnapshot refused
  for a locked snapshot (``moto_snapshot_lock.py``, with the AWS references).
* AMI deregistration protection: Enable/DisableImageDeregistrationProtection, ``DeregistrationProtection``
  in DescribeImages, DeregisterImage refused for a protected AMI (``moto_image_protection.py``).
* Recycle Bin retention rules, a service moto lacks, as a backend of our own on the same server
  (``moto_rbin.py``).
* moto's fixed costs per request (finding the service of a request, putting the request id into a body
  that has none) and per listed key (formatting its LastModified again) are paid once, with the same
  answers (``moto_request_cost.py``).

It also records the parameters of each CreateImage request (``CREATE_IMAGE_REQUESTS``), so tests
can see what moto ignores (``NoReboot``); recording changes no answer.

Run as ``python -m tests.harness.moto_server --port N`` for the demo and the benchmarks;
tests start it in-process (``start``) so they can also set states moto never shows
(``pending`` images) directly on its backend.
"""

import argparse
import os
import socket
import time

os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")

from moto.ec2.exceptions import EC2ClientError  # noqa: E402
from moto.ec2.models.amis import AmiBackend  # noqa: E402
from moto.ec2.responses.amis import AmisResponse  # noqa: E402
from moto.moto_server.threaded_moto_server import ThreadedMotoServer  # noqa: E402

from tests.harness import moto_client_token  # noqa: E402
from tests.harness import moto_copy  # noqa: E402
from tests.harness import moto_ec2_describe  # noqa: E402
from tests.harness import moto_image_protection  # noqa: E402
from tests.harness import moto_rbin  # noqa: E402
from tests.harness import moto_request_cost  # noqa: E402
from tests.harness import moto_s3_conditional  # noqa: E402
from tests.harness import moto_s3_listing  # noqa: E402
from tests.harness import moto_snapshot_lock  # noqa: E402
from tests.harness import moto_snapshot_permissions  # noqa: E402
from tests.harness import moto_ssm_agent  # noqa: E402
from tests.harness import moto_sts  # noqa: E402

ACCOUNT_ID = "123456789012"
CREATE_IMAGE_REQUESTS = []
_PATCHED = False


class InvalidAMINameDuplicate(EC2ClientError):
    def __init__(self, name):
        super().__init__("InvalidAMIName.Duplicate", "AMI name {0} is already in use by AMI".format(name))


def apply_conformance_patches():
    global _PATCHED
    if _PATCHED:
        return
    original_create_image = AmiBackend.create_image

    def create_image(self, instance_id, name, description, tag_specifications):
        if any(ami.name == name for ami in list(self.amis.values()) if ami.owner_id == self.account_id):
            raise InvalidAMINameDuplicate(name)
        image_specs = [spec for spec in tag_specifications if spec["ResourceType"] != "snapshot"]
        snapshot_tags = [
            tag for spec in tag_specifications if spec["ResourceType"] == "snapshot" for tag in spec.get("Tags", [])
        ]
        ami = original_create_image(self, instance_id, name, description, tag_specifications=image_specs)
        if snapshot_tags:
            self.create_tags([ami.ebs_snapshot.id], {tag["Key"]: tag["Value"] for tag in snapshot_tags})
        return ami

    original_create_image_response = AmisResponse.create_image

    def record_create_image(self):
        CREATE_IMAGE_REQUESTS.append(
            {
                "InstanceId": self._get_param("InstanceId"),
                "Name": self._get_param("Name"),
                "NoReboot": self._get_param("NoReboot"),
            }
        )
        return original_create_image_response(self)

    AmiBackend.create_image = create_image
    AmisResponse.create_image = record_create_image
    moto_sts.apply()
    moto_ec2_describe.apply()
    moto_client_token.apply()
    moto_s3_conditional.apply()
    moto_s3_listing.apply()
    moto_snapshot_permissions.apply()
    moto_copy.apply()
    moto_ssm_agent.apply()
    moto_snapshot_lock.apply()
    moto_image_protection.apply()
    moto_rbin.apply()
    moto_request_cost.apply()
    _PATCHED = True


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(port=None):
    """Start a patched moto server in this process; returns (server, endpoint_url)."""
    apply_conformance_patches()
    port = port or free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, "http://127.0.0.1:{0}".format(port)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", help="write the chosen port here once listening")
    args = parser.parse_args()
    server, endpoint = start(args.port or None)
    if args.port_file:
        with open(args.port_file, "w") as handle:
            handle.write(endpoint.rsplit(":", 1)[1])
    print("moto listening on {0}".format(endpoint), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
