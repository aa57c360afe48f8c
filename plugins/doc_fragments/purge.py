# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    # The options of the purges, and the one purge rule they share (module_utils/options.py PURGE).
    DOCUMENTATION = r"""
options:
  as_of:
    description:
      - The date (V(YYYY-MM-DD), UTC) whose expired backups go. Defaults to today.
      - A future date previews a purge in check mode. Outside check mode a future date is refused unless
        O(allow_future_as_of=true), since it deletes backups before their C(DeleteOn).
    type: str
  allow_future_as_of:
    description: Allow a future O(as_of) outside check mode, deleting backups before their C(DeleteOn).
    type: bool
    default: false
  keep_min:
    description: The newest ready backups of each source that are never purged, at least 1.
    type: int
    default: 1
  keep_last:
    description:
      - When set, keep only this many newest ready backups of each source; older ones go even before they expire.
    type: int
  adopt_legacy:
    description:
      - Also purge backups that carry a C(DeleteOn) tag but not the C(CreatedBy=opsvault.aws_backup) marker,
        made by older scripts. Without it, only the collection's own backups are purged.
    type: bool
    default: false
notes:
  - "The purge rule: only backups owned by this account; if the newest backup of a source is pending or failed,
    nothing of that source is purged; the newest O(keep_min) ready backups always stay; the rest go once their
    C(DeleteOn) is on or before O(as_of), or when beyond O(keep_last)."
"""
