# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Option pieces the modules share: argument-spec entries (documented once, in the doc fragments of
the same names), the choices of modes and actions, and validators that name the option and value."""

import copy
import re

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

# doc_fragments/assume_role.py: every module, regional or not
ASSUME_ROLE = dict(
    assume_role_arn=dict(type="str"),
    external_id=dict(type="str", no_log=False),
    role_session_name=dict(type="str", default="opsvault-aws-backup"),
)

# An IAM role ARN in any partition: arn:aws:iam::123456789012:role/path/Name
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
# AWS's constraint on RoleSessionName (2 to 64 characters).
ROLE_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")

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


def role_arn(option, value):
    """Raise ValueError naming the option unless ``value`` is an IAM role ARN (or unset)."""
    if value is not None and not ROLE_ARN.match(value):
        raise ValueError(
            "{0} must be an IAM role ARN such as arn:aws:iam::123456789012:role/OpsvaultBackup, got {1!r}".format(
                option, value
            )
        )
    return value


def assume_role(params):
    """The role options read and checked: None without ``assume_role_arn``, else role_arn, external_id, session_name."""
    arn = role_arn("assume_role_arn", params.get("assume_role_arn") or None)
    if not arn:
        if params.get("external_id"):
            raise ValueError("external_id {0!r} needs assume_role_arn".format(params["external_id"]))
        return None
    session_name = params.get("role_session_name") or ASSUME_ROLE["role_session_name"]["default"]
    if not ROLE_SESSION_NAME.match(session_name):
        raise ValueError("role_session_name must be 2 to 64 letters, digits or +=,.@_-, got {0!r}".format(session_name))
    return dict(role_arn=arn, external_id=params.get("external_id") or None, session_name=session_name)
