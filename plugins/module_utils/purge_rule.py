# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The one purge rule, for AMIs and EBS snapshots alike.

For the backups of one source (an instance's AMIs, a volume's snapshots):

* if the newest backup is not ready (pending or failed), nothing of the source goes;
* the newest ``keep_min`` ready backups always stay (``keep_min`` is at least 1: never the
  newest available backup);
* a pending backup, or one whose DeleteOn is not a date, stays;
* a backup goes once its DeleteOn is on or before ``as_of``, or, with ``keep_last``, when it
  is a ready backup beyond the newest ``keep_last``.
"""

import collections

READY = "ready"
PENDING = "pending"
FAILED = "failed"

# One backup as the rule sees it.  ``state``: READY, PENDING or FAILED; ``aws_state``: the state
# as AWS words it (``available``, ``completed``, ``error``...); ``created``: sortable (ISO 8601 text
# or an aware datetime); ``expiry``: the DeleteOn date or None; ``bad_expiry``: the DeleteOn text
# when it is not a date; ``item``: the caller's own data, passed through.
Backup = collections.namedtuple(
    "Backup", ["resource_id", "state", "aws_state", "created", "expiry", "bad_expiry", "item"]
)


def state_of(aws_state, ready_word):
    """READY, PENDING or FAILED for a backup's state as AWS words it (``available``/``completed`` is ready)."""
    if aws_state == ready_word:
        return READY
    return PENDING if aws_state == "pending" else FAILED


def check_counts(keep_min, keep_last=None):
    """Raise ValueError naming the value when keep_min or keep_last is below 1."""
    if keep_min is None or keep_min < 1:
        raise ValueError(
            "keep_min must be at least 1 (the newest available backup is never purged), got {0}".format(keep_min)
        )
    if keep_last is not None and keep_last < 1:
        raise ValueError("keep_last must be at least 1, got {0}".format(keep_last))


def _newest_first(backup):
    # Creation times have one-second resolution: of two backups made in the same second, the one
    # that expires later counts as newer, so keep_min never keeps the shorter-lived copy.
    expiry = backup.expiry.isoformat() if backup.expiry else ""
    return (str(backup.created or ""), expiry, backup.resource_id)


def newest_first(backups):
    """The backups of one source, newest first (the order ``decide`` and the restores read them in)."""
    return sorted(backups, key=_newest_first, reverse=True)


def decide(backups, as_of, keep_min=1, keep_last=None, label="this source", noun="backup", ready_word="ready"):
    """``[(backup, purge, reason)]`` for the backups of one source, newest first.

    ``label`` names the source and ``noun``/``ready_word`` the backups in the reasons
    (``AMI``/``available``, ``snapshot``/``completed``).
    """
    check_counts(keep_min, keep_last)
    ordered = newest_first(backups)
    if not ordered:
        return []
    newest = ordered[0]
    if newest.state != READY:
        reason = (
            "the newest {0} of {1}, {2}, is {3}: nothing of this source is purged until its latest {0} is {4}".format(
                noun, label, newest.resource_id, newest.aws_state, ready_word
            )
        )
        return [(backup, False, reason) for backup in ordered]
    decisions, rank = [], 0
    for backup in ordered:
        if backup.state == READY:
            rank += 1
        decisions.append((backup,) + _decide_one(backup, rank, as_of, keep_min, keep_last, label, noun, ready_word))
    return decisions


def _decide_one(backup, rank, as_of, keep_min, keep_last, label, noun, ready_word):
    if backup.state == READY and rank <= keep_min:
        return False, "one of the newest {0} {1} {2}(s) of {3} (keep_min)".format(keep_min, ready_word, noun, label)
    if backup.bad_expiry is not None:
        return False, "DeleteOn tag {0!r} is not a date".format(backup.bad_expiry)
    if backup.state == PENDING:
        return False, "{0} is pending".format(noun)
    if backup.expiry is not None and backup.expiry <= as_of:
        return True, "expired on {0}".format(backup.expiry.isoformat())
    if keep_last is not None and backup.state == READY and rank > keep_last:
        return True, "beyond keep_last {0}: {1} {2} number {3} of {4}".format(keep_last, ready_word, noun, rank, label)
    if backup.expiry is None:
        return False, "has no DeleteOn tag"
    return False, "expires on {0}".format(backup.expiry.isoformat())
