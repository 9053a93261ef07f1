#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) oci_registry.trash contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Documentation only: the action plugin of the same name does the work on the controller.

from __future__ import annotations

DOCUMENTATION = r'''
module: registry_trash_info
short_description: List what the registry trash holds
version_added: 0.1.0
description:
  - Lists the entries of the trash directory on the controller, newest first, without contacting any registry.
  - Every filter is optional and they combine; with none, every entry is listed.
  - Damage is reported in RV(damaged) and never hides the other entries. An entry file that cannot be read
    (truncated, unreadable) is left out of RV(entries). An entry whose manifest snapshots are missing or no
    longer hash to their digests, or whose kept blobs are missing or of the wrong size, is listed with
    RV(entries[].damaged=true).
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
    details: It changes nothing in any mode.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  registry_url:
    description:
      - Only entries trashed from this registry, for example V(https://registry.example.com).
    type: str
  repository:
    description:
      - Only entries of this repository.
    type: str
  tag:
    description:
      - Only entries whose manifest this tag pointed at when it was trashed.
    type: str
  digest:
    description:
      - Only entries of this manifest digest.
    type: str
  state:
    description:
      - Only entries in this state. V(pending) means the snapshot was written and the delete was not confirmed
        (a run that stopped half-way, or a delete whose answer was lost, which may still land); V(aborted) means
        the registry refused the delete and nothing went.
    type: str
    choices: [pending, trashed, restored, aborted]
  older_than:
    description:
      - Only entries trashed longer ago than this, as a number and a unit (V(w), V(d), V(h), V(m), V(s)),
        for example V(14d) or V(1d12h).
    type: str
  newer_than:
    description:
      - Only entries trashed more recently than this; the same format as O(older_than).
    type: str
seealso:
  - module: oci_registry.trash.registry_manifest_restore
  - module: oci_registry.trash.registry_trash_purge
'''

EXAMPLES = r'''
- name: What did we trash from team/app in the last two weeks?
  oci_registry.trash.registry_trash_info:
    repository: team/app
    newer_than: 14d
  register: recent

- name: Restore the newest of them
  oci_registry.trash.registry_manifest_restore:
    registry_url: "{{ recent.entries[0].registry }}"
    repository: "{{ recent.entries[0].repository }}"
    entry: "{{ recent.entries[0].id }}"
  when: recent.entries | length > 0

- name: List runs that stopped half-way
  oci_registry.trash.registry_trash_info:
    trash_dir: /srv/registry-trash
    state: pending
'''

RETURN = r'''
entries:
  description: The matching entries, newest first.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Entry id, as restore's O(oci_registry.trash.registry_manifest_restore#module:entry) and
        purge's O(oci_registry.trash.registry_trash_purge#module:entry) take it.
      type: str
      sample: 20261204T195012123456Z-3fa2c1d8e9b0-9f1c
    registry:
      description: URL of the registry the manifest was trashed from.
      type: str
      sample: https://registry.example.com
    repository:
      description: Repository it was trashed from.
      type: str
    digest:
      description: Manifest digest.
      type: str
    media_type:
      description: Manifest media type.
      type: str
    tags:
      description: Every tag that pointed at the digest when it was trashed.
      type: list
      elements: str
    removed_tags:
      description: Tags the trash operation removed.
      type: list
      elements: str
    other_tags:
      description: Tags that shared the digest and were kept.
      type: list
      elements: str
    children:
      description: Child manifests snapshotted with an index.
      type: list
      elements: str
    trashed_at:
      description: When, UTC, ISO 8601.
      type: str
    reason:
      description: The reason given when trashing, or null.
      type: str
    user:
      description: The controller user that trashed it.
      type: str
    state:
      description: V(pending), V(trashed), V(restored) or V(aborted).
      type: str
    manifest_size:
      description: Size of the manifest in bytes.
      type: int
    keep_blobs:
      description: Whether the config and layer blobs were saved too.
      type: bool
    blob_bytes:
      description: Size of the saved blobs (shared blobs are stored once on disk).
      type: int
    damaged:
      description: Whether content the entry needs to be restored is missing or damaged; RV(damaged) says what.
      type: bool
damaged:
  description: One message for each damage found, naming the entry, for entry files that could not be read
    (those entries are not in RV(entries)) and for entries whose content is missing or damaged.
  returned: always
  type: list
  elements: str
totals:
  description: Sums over the matching entries, and the size of the whole trash directory.
  returned: always
  type: dict
  contains:
    entries:
      description: Number of matching entries.
      type: int
    manifest_bytes:
      description: Manifest bytes of the matching entries.
      type: int
    blob_bytes:
      description: Saved blob bytes of the matching entries, counted per entry.
      type: int
    disk_bytes:
      description: Bytes the whole trash directory takes, every entry and stored file counted once.
      type: int
'''
