# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    # The options of the modules that create backups (module_utils/options.py BACKUP).
    DOCUMENTATION = r"""
options:
  retention:
    description:
      - How long the backups are kept when the source has no valid O(retention_tag) tag.
      - A number of days (V(7)), or a count with a unit, V(30d), V(2w), V(6m), V(1y), V(+30 days), V(+6 months).
        Months and years follow the calendar.
    type: str
    default: "7"
  retention_tag:
    description: The source tag that overrides O(retention). A bad value gives a warning naming the resource, and O(retention) is used.
    type: str
    default: Retention
  copy_tags:
    description: Source tag keys copied onto the backups.
    type: list
    elements: str
    default: []
  extra_tags:
    description: More tags for the backups. The contract tags (C(CreatedBy), C(DeleteOn), C(BackupPolicy), the source ids) cannot be overridden.
    type: dict
    default: {}
  min_interval:
    description:
      - A source with a backup made by this collection (pending or ready) younger than this is left alone, so
        reruns and retries never create a second backup.
      - Seconds, or a count with a unit, V(30m), V(1h), V(2d). V(0) disables the check.
    type: str
    default: 1h
"""
