#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) oci_registry.trash contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Documentation only: the action plugin of the same name does the work on the controller.

from __future__ import annotations

DOCUMENTATION = r'''
module: registry_trash_purge
short_description: Empty the registry trash for good
version_added: 0.1.0
description:
  - Removes trash entries for good, chosen by O(entry) id or by filter, and every stored manifest and blob that no
    remaining entry references. A blob shared with an entry that stays is kept.
  - Stored content that no entry references at all (left by a run that was killed before it recorded its entry)
    is swept too.
  - Safe beside a running trash or restore, which hold the trash's lock while they write.
  - A purged entry can no longer be restored. Nothing on any registry is touched.
  - Refuses to run while an entry is damaged, since a damaged entry may need content that would be swept;
    M(oci_registry.trash.registry_trash_info) lists damaged entries.
  - This module always runs on the Ansible controller.
author:
  - oci_registry.trash contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - oci_registry.trash.registry.TRASH_DIR
  - oci_registry.trash.registry.UNUSED_CONNECTION
  - oci_registry.trash.registry.ATTRIBUTES
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details: Reports what would be removed and how many bytes that frees; removes nothing.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details: By filter, a second run finds nothing and changes nothing. By O(entry), an id that is no longer in
      the trash fails the task, so that a mistyped id is never taken for done.
options:
  entry:
    description:
      - Ids of the entries to purge. An unknown id fails the task, and nothing is purged.
      - Mutually exclusive with the filters, except O(registry_url), which is then ignored (so that
        C(module_defaults) of the action group can set it).
    type: list
    elements: str
  registry_url:
    description:
      - Only entries trashed from this registry.
    type: str
  repository:
    description:
      - Only entries of this repository.
    type: str
  state:
    description:
      - Only entries in this state.
    type: str
    choices: [pending, trashed, restored, aborted]
  older_than:
    description:
      - Only entries trashed longer ago than this, for example V(14d) (a number and a unit, V(w), V(d), V(h),
        V(m) or V(s)). The common retention rule.
    type: str
  newer_than:
    description:
      - Only entries trashed more recently than this; the same format as O(older_than).
    type: str
notes:
  - One of O(entry), O(repository), O(state), O(older_than) or O(newer_than) is required, so that an empty task
    never empties the trash, even when C(module_defaults) sets O(registry_url). To empty it all, use
    O(older_than=0s).
seealso:
  - module: oci_registry.trash.registry_trash_info
'''

EXAMPLES = r'''
- name: Keep two weeks of trash
  oci_registry.trash.registry_trash_purge:
    trash_dir: /srv/registry-trash
    older_than: 14d

- name: How much would emptying team/app's restored entries free?
  oci_registry.trash.registry_trash_purge:
    repository: team/app
    state: restored
  check_mode: true
  register: would

- name: Purge exactly these entries
  oci_registry.trash.registry_trash_purge:
    entry:
      - 20261204T195012123456Z-3fa2c1d8e9b0-9f1c
'''

RETURN = r'''
purged:
  description: Ids of the entries removed (in check mode, that would be).
  returned: always
  type: list
  elements: str
blobs:
  description: Number of stored manifests and blobs removed, which no remaining entry referenced.
  returned: always
  type: int
bytes_freed:
  description: Bytes freed on the controller's disk.
  returned: always
  type: int
msg:
  description: What was done, in a sentence.
  returned: always
  type: str
'''
