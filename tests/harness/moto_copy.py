"""moto's CopyImage and CopySnapshot made to do what EC2 does, across regions and accounts.

moto 5.2.5 copies only within the caller's own account, ignores CopyImage's ``ClientToken``,
``TagSpecifications``, ``Encrypted`` and ``KmsKeyId``, gives a copied snapshot its source's volume id,
and has no limit on copies in flight. EC2:

* CopyImage is idempotent by ``ClientToken``: the same token returns the first copy; the same token
  with another source fails with ``IdempotentParameterMismatch``.
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/Run_Instance_Idempotency.html
* CopyImage and CopySnapshot tag the new AMI, its snapshots (CopyImage) or the new snapshot in the call
  (``TagSpecifications``), and encrypt the copy with ``KmsKeyId`` when ``Encrypted`` is set.
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CopyImage.html
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CopySnapshot.html
* The copy is made in the caller's account and region from a source of any account that the caller may
  read: an AMI with a launch permission for the caller whose snapshots give it create-volume permission,
  a snapshot with create-volume permission for it. Otherwise the source is not found. An AMI with AWS
  Marketplace product codes is not copied to another account.
  https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/CopyingAMIs.html ("Cross-account copying")
* A copied snapshot has the volume id ``vol-ffffffff``, and an account may have at most 20 snapshot
  copies in flight per destination region: one more fails with ``ResourceLimitExceeded``.
  https://docs.aws.amazon.com/ebs/latest/userguide/ebs-copy-snapshot.html
* DescribeImages lists an AMI's ``ProductCodes`` (moto leaves them out).
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_Image.html
* KMS keys behind the reserved ``alias/aws/...`` aliases (``aws/ebs``) are AWS managed keys:
  DescribeKey says ``KeyManager: AWS`` (moto says ``CUSTOMER``), and a snapshot encrypted with one
  cannot be shared with another account (ModifySnapshotAttribute refuses).
  https://docs.aws.amazon.com/kms/latest/developerguide/concepts.html (AWS managed keys, alias/aws/service-name)
  https://docs.aws.amazon.com/ebs/latest/userguide/ebs-modifying-snapshot-permissions.html
"""

from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.exceptions import InvalidAMIIdError
from moto.ec2.exceptions import InvalidSnapshotIdError
from moto.ec2.models import ec2_backends
from moto.ec2.models.amis import Ami
from moto.ec2.models.elastic_block_store import Snapshot
from moto.ec2.responses.amis import AmisResponse
from moto.ec2.responses.elastic_block_store import ElasticBlockStore
from moto.ec2.utils import random_ami_id
from moto.ec2.utils import random_snapshot_id
from moto.kms.models import KmsBackend
from moto.kms.models import kms_backends

from tests.harness.moto_client_token import IdempotentParameterMismatch

COPIED_VOLUME_ID = "vol-ffffffff"
SNAPSHOT_COPY_LIMIT = 20
_PATCHED = False


class _CopiedVolume:
    """What a copied snapshot says of its volume: AWS gives every copy the id vol-ffffffff."""

    def __init__(self, size):
        self.id = COPIED_VOLUME_ID
        self.size = size


class ResourceLimitExceeded(EC2ClientError):
    def __init__(self):
        super().__init__(
            "ResourceLimitExceeded",
            "You have reached the limit of {0} concurrent snapshot copies to this Region.".format(SNAPSHOT_COPY_LIMIT),
        )


class CannotShareAwsManagedKey(EC2ClientError):
    def __init__(self, snapshot_id):
        super().__init__(
            "InvalidParameter",
            "Snapshot {0} is encrypted with an AWS managed key and cannot be shared.".format(snapshot_id),
        )


def _find(region, collection, resource_id):
    """The resource of any account in ``region`` (moto keeps one backend per account)."""
    for account_id in list(ec2_backends.keys()):
        backend = ec2_backends[account_id][region]
        found = getattr(backend, collection).get(resource_id)
        if found is not None:
            return found
    return None


def _can_read_snapshot(snapshot, caller):
    return (
        snapshot.owner_id == caller
        or caller in snapshot.create_volume_permission_userids
        or "all" in snapshot.create_volume_permission_groups
    )


def _can_launch(ami, caller):
    return ami.owner_id == caller or ami.is_public or {"UserId": caller} in ami.launch_permissions


def _aws_managed(key_arn, account_id, region):
    if not key_arn:
        return False
    try:
        key = kms_backends[account_id][region].describe_key(key_arn)
    except Exception:  # an unknown key is not an AWS managed one
        return False
    return key.key_manager == "AWS"


def _encryption(response, source_snapshot, caller):
    """``(encrypted, key)`` of a copy: Encrypted/KmsKeyId, else the source's key within its account, else
    the destination's default EBS key for an encrypted source."""
    key_id = response._get_param("KmsKeyId")
    encrypted = bool(response._get_bool_param("Encrypted", False)) or bool(source_snapshot.encrypted)
    if not encrypted:
        return False, None
    if key_id:
        return True, key_id
    if source_snapshot.owner_id == caller and source_snapshot.kms_key_id:
        return True, source_snapshot.kms_key_id
    return True, response.ec2_backend._create_default_encryption_key()


def apply():
    global _PATCHED
    if _PATCHED:
        return

    def copy_image(self):
        token = self._get_param("ClientToken")
        source_id, source_region = self._get_param("SourceImageId"), self._get_param("SourceRegion")
        backend, caller = self.ec2_backend, self.current_account
        self.error_on_dryrun()
        if token:
            for ami in list(backend.amis.values()):
                if getattr(ami, "client_token", None) == token:
                    if ami.copy_source != (source_id, source_region):
                        raise IdempotentParameterMismatch(token)
                    return ActionResult({"ImageId": ami.id})
        source = _find(source_region, "amis", source_id)
        if source is None or not _can_launch(source, caller):
            raise InvalidAMIIdError(source_id)
        if source.owner_id != caller:
            if source.product_codes:
                raise EC2ClientError(
                    "InvalidRequest",
                    "AMI {0} has AWS Marketplace product codes and cannot be copied.".format(source_id),
                )
            if not _can_read_snapshot(source.ebs_snapshot, caller):
                raise InvalidSnapshotIdError()
        tags = self._parse_tag_specification()
        encrypted, key_id = _encryption(self, source.ebs_snapshot, caller)
        ami = Ami(
            backend,
            random_ami_id(),
            source_ami=source,
            name=self._get_param("Name"),
            description=self._get_param("Description"),
        )
        ami.client_token, ami.copy_source = token, (source_id, source_region)
        ami.ebs_snapshot.encrypted, ami.ebs_snapshot.kms_key_id = encrypted, key_id
        ami.add_tags(tags.get("image", {}))
        ami.ebs_snapshot.add_tags(tags.get("snapshot", {}))
        backend.amis[ami.id] = ami
        return ActionResult({"ImageId": ami.id})

    def copy_snapshot(self):
        source_id, source_region = self._get_param("SourceSnapshotId"), self._get_param("SourceRegion")
        backend, caller = self.ec2_backend, self.current_account
        self.error_on_dryrun()
        source = _find(source_region, "snapshots", source_id)
        if source is None or not _can_read_snapshot(source, caller):
            raise InvalidSnapshotIdError()
        in_flight = [
            snapshot
            for snapshot in list(backend.snapshots.values())
            if snapshot.status == "pending" and snapshot.volume.id == COPIED_VOLUME_ID
        ]
        if len(in_flight) >= SNAPSHOT_COPY_LIMIT:
            raise ResourceLimitExceeded()
        encrypted, key_id = _encryption(self, source, caller)
        snapshot = Snapshot(
            backend,
            random_snapshot_id(),
            volume=_CopiedVolume(source.volume.size),
            description=self._get_param("Description"),
            encrypted=encrypted,
            kms_key_id=key_id,
        )
        snapshot.add_tags(self._parse_tag_specification().get("snapshot", {}))
        backend.snapshots[snapshot.id] = snapshot
        return ActionResult({"SnapshotId": snapshot.id, "Tags": snapshot.tag_set})

    original_modify_snapshot_attribute = ElasticBlockStore.modify_snapshot_attribute

    def modify_snapshot_attribute(self):
        if self._get_param("OperationType") == "add" and self._get_param("UserIds", []):
            snapshot = self.ec2_backend.get_snapshot(self._get_param("SnapshotId"))
            if snapshot.encrypted and _aws_managed(snapshot.kms_key_id, snapshot.owner_id, self.region):
                raise CannotShareAwsManagedKey(snapshot.id)
        return original_modify_snapshot_attribute(self)

    original_create_alias = KmsBackend.create_alias

    def create_alias(self, target_key_id, alias_name):
        alias = original_create_alias(self, target_key_id, alias_name)
        if alias_name.startswith("alias/aws/"):
            self.keys[self.get_key_id(target_key_id)].key_manager = "AWS"
        return alias

    AmisResponse.copy_image = copy_image
    Ami.ProductCodes = property(
        lambda ami: [{"ProductCodeId": code, "ProductCodeType": "marketplace"} for code in sorted(ami.product_codes)]
    )
    ElasticBlockStore.copy_snapshot = copy_snapshot
    ElasticBlockStore.modify_snapshot_attribute = modify_snapshot_attribute
    KmsBackend.create_alias = create_alias
    _PATCHED = True
