"""moto conformance: EBS snapshot lock (LockSnapshot, UnlockSnapshot, DescribeLockedSnapshots).

moto 5.2.5 has none of these calls and deletes any snapshot. AWS locks a snapshot against deletion in
one of two modes, for a duration (``LockDuration`` days, 1 to 36,500) or until a date
(``ExpirationDate``), exactly one of the two:
https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_LockSnapshot.html
https://docs.aws.amazon.com/ebs/latest/userguide/ebs-snapshot-lock.html

* ``governance``: the snapshot cannot be deleted until the lock expires or a user unlocks it; the mode,
  duration and expiry may be changed at any time.
* ``compliance`` with ``CoolOffPeriod`` (hours, 1 to 72; only in compliance mode): during the cooling-off
  period the lock state is ``compliance-cooloff`` and the lock may still be changed or removed; after it,
  the state is ``compliance``: the lock cannot be removed, its mode not changed, its duration only
  increased, and a request that names a CoolOffPeriod fails. Without CoolOffPeriod, compliance starts at once.
* Lock states in the answers: ``compliance-cooloff``, ``governance``, ``compliance``, ``expired``.
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_LockedSnapshotsInfo.html
* UnlockSnapshot removes a governance lock or a compliance lock in its cooling-off period; it fails for a
  compliance lock after the cooling-off period.
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_UnlockSnapshot.html
* DescribeLockedSnapshots lists the caller's locks, filtered by ``SnapshotId.N`` and ``lock-state``.
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeLockedSnapshots.html
* DeleteSnapshot of a snapshot whose lock has not expired fails (``SnapshotLocked``, HTTP 400) and deletes
  nothing; "A locked snapshot can't be deleted" (LockSnapshot above). The code is the one this harness
  answers; the purges also recognise the lock from DescribeLockedSnapshots, whatever the code.

Tests age a lock with ``backdate(region, snapshot_id, timedelta)`` (its times move into the past, as if
that much time had passed), the only way to see a lock expire in a test run.
"""

import datetime

from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.exceptions import InvalidSnapshotIdError
from moto.ec2.responses.elastic_block_store import ElasticBlockStore

LOCKED_SNAPSHOT_CODE = "SnapshotLocked"
LOCK_MODES = ("governance", "compliance")
COOL_OFF_HOURS = (1, 72)
LOCK_DURATION_DAYS = (1, 36500)
_PATCHED = False


class InvalidParameterValue(EC2ClientError):
    def __init__(self, message):
        super().__init__("InvalidParameterValue", message)


class InvalidParameterCombination(EC2ClientError):
    def __init__(self, message):
        super().__init__("InvalidParameterCombination", message)


class SnapshotLocked(EC2ClientError):
    def __init__(self, snapshot_id, state, expires_on):
        super().__init__(
            LOCKED_SNAPSHOT_CODE,
            "The snapshot '{0}' is locked in {1} mode until {2} and can't be deleted".format(
                snapshot_id, state, _text(expires_on)
            ),
        )


class LockNotPermitted(EC2ClientError):
    def __init__(self, message):
        super().__init__("IncorrectState", message)


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _text(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _locks(backend):
    if not hasattr(backend, "snapshot_locks"):
        backend.snapshot_locks = {}
    return backend.snapshot_locks


def lock_state(lock, now=None):
    now = now or _now()
    if lock["expires_on"] <= now:
        return "expired"
    if lock["mode"] == "governance":
        return "governance"
    cool_off_ends = lock.get("cool_off_expires_on")
    return "compliance-cooloff" if cool_off_ends and cool_off_ends > now else "compliance"


def active_lock(backend, snapshot_id):
    """The snapshot's lock while it holds (not expired), else None."""
    lock = _locks(backend).get(snapshot_id)
    if lock and lock_state(lock) != "expired":
        return lock
    return None


def backdate(backend, snapshot_id, delta):
    """Move a lock's times ``delta`` into the past, as if that much time had passed."""
    lock = _locks(backend)[snapshot_id]
    for key in ("created_on", "expires_on", "cool_off_expires_on", "duration_start"):
        if lock.get(key):
            lock[key] -= delta


def _info(backend, lock):
    info = {
        "OwnerId": backend.account_id,
        "SnapshotId": lock["snapshot_id"],
        "LockState": lock_state(lock),
        "LockCreatedOn": lock["created_on"],
        "LockExpiresOn": lock["expires_on"],
        "LockDurationStartTime": lock["duration_start"],
    }
    if lock.get("duration") is not None:
        info["LockDuration"] = lock["duration"]
    if lock.get("cool_off"):
        info["CoolOffPeriod"] = lock["cool_off"]
        info["CoolOffPeriodExpiresOn"] = lock["cool_off_expires_on"]
    return info


def _parse_expiry(text):
    try:
        moment = datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidParameterValue("Invalid value '{0}' for ExpirationDate".format(text))
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def _requested_lock(snapshot_id, params, now):
    mode = params.get("LockMode")
    if mode not in LOCK_MODES:
        raise InvalidParameterValue("Invalid value '{0}' for LockMode; use governance or compliance".format(mode))
    duration, expiration = params.get("LockDuration"), params.get("ExpirationDate")
    if (duration is None) == (expiration is None):
        raise InvalidParameterCombination("Specify either LockDuration or ExpirationDate, but not both")
    cool_off = params.get("CoolOffPeriod")
    if cool_off is not None:
        cool_off = int(cool_off)
        if mode != "compliance":
            raise InvalidParameterCombination("CoolOffPeriod can be specified only for compliance mode")
        if not COOL_OFF_HOURS[0] <= cool_off <= COOL_OFF_HOURS[1]:
            raise InvalidParameterValue("CoolOffPeriod must be between 1 and 72 hours, got {0}".format(cool_off))
    if duration is not None:
        duration = int(duration)
        if not LOCK_DURATION_DAYS[0] <= duration <= LOCK_DURATION_DAYS[1]:
            raise InvalidParameterValue("LockDuration must be between 1 and 36500 days, got {0}".format(duration))
        expires_on = now + datetime.timedelta(days=duration)
    else:
        expires_on = _parse_expiry(expiration)
        if expires_on <= now:
            raise InvalidParameterValue("ExpirationDate must be in the future, got {0}".format(expiration))
    return {
        "snapshot_id": snapshot_id,
        "mode": mode,
        "duration": duration,
        "expires_on": expires_on,
        "cool_off": cool_off,
        "cool_off_expires_on": now + datetime.timedelta(hours=cool_off) if cool_off else None,
        "created_on": now,
        "duration_start": now,
    }


def _check_change(existing, requested, now):
    """A compliance lock after its cooling-off period may only be extended, in compliance mode."""
    if lock_state(existing, now) != "compliance":
        return
    if requested["mode"] != "compliance":
        raise LockNotPermitted(
            "The lock of {0} is in compliance mode; its mode can't be changed".format(existing["snapshot_id"])
        )
    if requested["cool_off"]:
        raise InvalidParameterCombination(
            "CoolOffPeriod can't be specified for a snapshot locked in compliance mode after its cooling-off period"
        )
    if requested["expires_on"] < existing["expires_on"]:
        raise LockNotPermitted(
            "The lock of {0} is in compliance mode; its duration can only be increased".format(existing["snapshot_id"])
        )


def apply():
    global _PATCHED
    if _PATCHED:
        return
    original_delete_snapshot = ElasticBlockStore.delete_snapshot

    def lock_snapshot(self):
        snapshot_id = self._get_param("SnapshotId")
        backend = self.ec2_backend
        if snapshot_id not in backend.snapshots:
            raise InvalidSnapshotIdError(snapshot_id)
        now = _now()
        params = {
            name: self._get_param(name) for name in ("LockMode", "LockDuration", "ExpirationDate", "CoolOffPeriod")
        }
        requested = _requested_lock(snapshot_id, params, now)
        existing = active_lock(backend, snapshot_id)
        if existing:
            _check_change(existing, requested, now)
            if lock_state(existing, now) == "compliance":
                requested["created_on"] = existing["created_on"]
                requested["cool_off"] = existing["cool_off"]
                requested["cool_off_expires_on"] = existing["cool_off_expires_on"]
        _locks(backend)[snapshot_id] = requested
        info = _info(backend, requested)
        info.pop("OwnerId")
        return ActionResult(info)

    def unlock_snapshot(self):
        snapshot_id = self._get_param("SnapshotId")
        backend = self.ec2_backend
        if snapshot_id not in backend.snapshots:
            raise InvalidSnapshotIdError(snapshot_id)
        lock = active_lock(backend, snapshot_id)
        if lock is None:
            raise LockNotPermitted("The snapshot {0} is not locked".format(snapshot_id))
        if lock_state(lock) == "compliance":
            raise LockNotPermitted(
                "The snapshot {0} is locked in compliance mode after its cooling-off period and can't be"
                " unlocked".format(snapshot_id)
            )
        del _locks(backend)[snapshot_id]
        return ActionResult({"SnapshotId": snapshot_id})

    def describe_locked_snapshots(self):
        backend = self.ec2_backend
        wanted_ids = self._get_param("SnapshotIds", [])
        filters = self._filters_from_querystring()
        states = filters.get("lock-state")
        found = []
        for snapshot_id, lock in sorted(_locks(backend).items()):
            if snapshot_id not in backend.snapshots or (wanted_ids and snapshot_id not in wanted_ids):
                continue
            info = _info(backend, lock)
            if states and info["LockState"] not in states:
                continue
            found.append(info)
        return ActionResult({"Snapshots": found})

    def delete_snapshot(self):
        snapshot_id = self._get_param("SnapshotId")
        lock = active_lock(self.ec2_backend, snapshot_id)
        if lock:
            raise SnapshotLocked(snapshot_id, lock_state(lock), lock["expires_on"])
        result = original_delete_snapshot(self)
        _locks(self.ec2_backend).pop(snapshot_id, None)
        return result

    ElasticBlockStore.lock_snapshot = lock_snapshot
    ElasticBlockStore.unlock_snapshot = unlock_snapshot
    ElasticBlockStore.describe_locked_snapshots = describe_locked_snapshots
    ElasticBlockStore.delete_snapshot = delete_snapshot
    _PATCHED = True
