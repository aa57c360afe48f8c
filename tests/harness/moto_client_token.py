"""moto honours the RunInstances and CreateVolume ClientToken, as EC2 does.

moto 5.2.5 stores a RunInstances ClientToken but launches again when the token is repeated, and
ignores CreateVolume's. EC2 makes both calls idempotent by the token: a repeated request with the
same token returns the first result and launches or creates nothing; the same token with other
parameters fails with ``IdempotentParameterMismatch``. The token stays valid after the instance
is terminated.
https://docs.aws.amazon.com/AWSEC2/latest/APIReference/Run_Instance_Idempotency.html
https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateVolume.html ("ClientToken")
"""

from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.responses.elastic_block_store import ElasticBlockStore
from moto.ec2.responses.instances import InstanceResponse

_PATCHED = False


class IdempotentParameterMismatch(EC2ClientError):
    def __init__(self, token):
        super().__init__(
            "IdempotentParameterMismatch",
            "The client token {0} was already used with different parameters".format(token),
        )


def _first_reservation(backend, token):
    for reservation in backend.reservations.values():
        if any(getattr(instance, "client_token", None) == token for instance in reservation.instances):
            return reservation
    return None


def apply():
    global _PATCHED
    if _PATCHED:
        return
    original_run_instances = InstanceResponse.run_instances
    original_create_volume = ElasticBlockStore.create_volume

    def run_instances(self):
        token = self._get_param("ClientToken")
        first = _first_reservation(self.ec2_backend, token) if token else None
        if first is None:
            return original_run_instances(self)
        if any(instance.image_id != self._get_param("ImageId") for instance in first.instances):
            raise IdempotentParameterMismatch(token)
        return ActionResult(first)

    def create_volume(self):
        token = self._get_param("ClientToken")
        if not token:
            return original_create_volume(self)
        parameters = (self._get_param("SnapshotId"), self._get_param("AvailabilityZone"))
        for volume in list(self.ec2_backend.volumes.values()):
            if getattr(volume, "client_token", None) == token:
                if volume.client_parameters != parameters:
                    raise IdempotentParameterMismatch(token)
                return ActionResult(volume)
        answer = original_create_volume(self)
        answer.result.client_token, answer.result.client_parameters = token, parameters
        return answer

    InstanceResponse.run_instances = run_instances
    ElasticBlockStore.create_volume = create_volume
    _PATCHED = True
