"""moto conformance: DescribeSnapshots honours ``RestorableByUserIds``.

moto 5.2.5 ignores the parameter and returns every snapshot. AWS returns only the snapshots with
create-volume permission for the ids given: account ids, ``self`` (snapshots the caller owns or
may restore), or ``all`` for public snapshots.
https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeSnapshots.html
"""

from moto.core.responses import ActionResult
from moto.ec2.responses.elastic_block_store import ElasticBlockStore


def _restorable(snapshot, user_ids, caller):
    for user_id in user_ids:
        if user_id == "all" and "all" in snapshot.create_volume_permission_groups:
            return True
        if user_id == "self" and (snapshot.owner_id == caller or caller in snapshot.create_volume_permission_userids):
            return True
        if user_id in snapshot.create_volume_permission_userids:
            return True
    return False


def apply():
    def describe_snapshots(self):
        snapshots = self.ec2_backend.describe_snapshots(
            snapshot_ids=self._get_param("SnapshotIds", []), filters=self._filters_from_querystring()
        )
        user_ids = self._get_param("RestorableByUserIds", [])
        if user_ids:
            snapshots = [snapshot for snapshot in snapshots if _restorable(snapshot, user_ids, self.current_account)]
        return ActionResult({"Snapshots": snapshots})

    ElasticBlockStore.describe_snapshots = describe_snapshots
