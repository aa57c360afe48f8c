# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Option pieces the modules share: argument-spec entries (documented once, in the doc fragments of
the same names), the choices of modes and actions, and validators that name the option and value."""

import copy

# The choices of the snapshot modules, used by their argument specs and by iam_actions.
EBS_SNAPSHOT_MODES = ("volume", "instance")
SNAPSHOT_PURGE_ACTIONS = ("delete", "archive", "report")
STALE_MODES = ("none", "volume_gone", "unattached")
INSTANCE_STATES = ("pending", "running", "stopping", "stopped")
VOLUME_STATES = ("in-use", "available")

# doc_fragments/regional.py
REGIONAL = dict(
    regions=dict(type="list", elements="str"),
    max_concurrency=dict(type="int", default=16),
)

# doc_fragments/backup.py
BACKUP = dict(
    retention=dict(type="str", default="7"),
    retention_tag=dict(type="str", default="Retention"),
    copy_tags=dict(type="list", elements="str", default=[]),
    extra_tags=dict(type="dict", default={}),
    min_interval=dict(type="str", default="1h"),
)

# doc_fragments/purge.py
PURGE = dict(
    as_of=dict(type="str"),
    allow_future_as_of=dict(type="bool", default=False),
    keep_min=dict(type="int", default=1),
    keep_last=dict(type="int"),
    adopt_legacy=dict(type="bool", default=False),
)


def argument_spec(*pieces, **own):
    """One argument spec from shared pieces and the module's own options (which win)."""
    spec = {}
    for piece in pieces:
        spec.update(copy.deepcopy(piece))
    spec.update(own)
    return spec


def at_least(option, value, minimum):
    """Raise ValueError naming the option unless ``value >= minimum``."""
    if value is None or value < minimum:
        raise ValueError("{0} must be at least {1}, got {2}".format(option, minimum, value))
    return value


def not_empty(option, value):
    """Raise ValueError naming the option when a given text option is empty or blank."""
    if value is not None and not str(value).strip():
        raise ValueError("{0} must not be empty".format(option))
    return value
