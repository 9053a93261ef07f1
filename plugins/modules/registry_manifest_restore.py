#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) oci_registry.trash contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Documentation only: the action plugin of the same name does the work on the controller.

from __future__ import annotations

DOCUMENTATION = r'''
module: registry_manifest_restore
short_description: Restore trashed image tags and manifests to a registry, byte for byte
version_added: 0.1.0
description:
  - Puts back what M(oci_registry.trash.registry_manifest_trash) removed, by re-sending the exact manifest
    bytes from the trash on the controller, so the digest is the same as before.
  - The entry is chosen by O(entry) id, by O(digest) (the newest entry of that digest), or by O(tag)
    (for each tag, the newest entry that removed it).
  - Before anything is sent, the snapshot is checked against its digest, the tags to restore are checked to be
    absent or already at that digest, and every blob the manifest (and, for an index, each child manifest)
    references is checked to be in the registry or kept in the trash. When any check fails, nothing is changed.
  - Blobs the registry lacks are uploaded from the trash when the entry kept them. For a multi-arch index,
    missing child manifests are put back first, then the index.
  - Every blob is checked by reading it, not only by asking for it, because distribution's blob-descriptor
    cache can claim blobs that garbage collection removed while the registry ran.
  - After each PUT, the tag is read back and must resolve to the trashed digest. The entry is kept as history,
    marked restored.
  - This module always runs on the Ansible controller.
author:
  - oci_registry.trash contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - oci_registry.trash.registry
  - oci_registry.trash.registry.TRASH_DIR
  - oci_registry.trash.registry.ATTRIBUTES
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details: Runs every check and reports what would be restored; writes nothing.
  diff_mode:
    support: full
    details: Shows the restored tags and their digests before and after.
  idempotent:
    support: full
    details: Tags that already point at the trashed digest are left alone and are no change.
options:
  repository:
    description:
      - Repository to restore into; the one the entry was trashed from.
    type: str
    required: true
  tag:
    description:
      - Tags to restore; for each, the newest trash entry that removed it is used.
      - Exactly one of O(tag), O(digest) and O(entry) is required.
    type: list
    elements: str
    aliases:
      - tags
  digest:
    description:
      - Digest of a trashed manifest; the newest entry with this digest is used.
    type: str
  entry:
    description:
      - Id of a trash entry, as returned by M(oci_registry.trash.registry_manifest_trash) in RV(oci_registry.trash.registry_manifest_trash#module:entries[].id).
    type: str
  all_tags:
    description:
      - V(true) restores every tag that the trash operation removed, even those not named in O(tag).
      - V(false) restores only the tags named in O(tag); with O(digest) or O(entry), only the manifest, untagged.
    type: bool
    default: true
  force:
    description:
      - When a tag to restore now points at another digest, the task fails by default and changes nothing.
      - With V(true), the current occupant of the tag is trashed first (a new trash entry, so nothing is lost),
        then the tag is restored.
    type: bool
    default: false
  target_repository:
    description:
      - Restore into this repository of the same registry instead of the one the entry was trashed from.
      - Blobs are mounted from the original repository where the registry allows it, and uploaded from the
        trash otherwise.
    type: str
seealso:
  - module: oci_registry.trash.registry_manifest_trash
'''

EXAMPLES = r'''
- name: Bring back a tag, and every tag trashed with it
  oci_registry.trash.registry_manifest_restore:
    registry_url: https://registry.example.com
    repository: team/app
    tag: 1.4.2-rc1
  run_once: true

- name: Restore exactly the entry a trash task returned
  oci_registry.trash.registry_manifest_restore:
    registry_url: https://registry.example.com
    repository: team/app
    entry: "{{ trashed.entries[0].id }}"

- name: Restore into another repository, replacing whatever the tag holds there now (it is trashed first)
  oci_registry.trash.registry_manifest_restore:
    registry_url: https://registry.example.com
    repository: team/app
    tag: [stable]
    target_repository: team/app-rescued
    force: true

- name: Restore only one of the tags that were trashed together
  oci_registry.trash.registry_manifest_restore:
    registry_url: https://registry.example.com
    repository: team/app
    tag: [stable]
    all_tags: false
'''

RETURN = r'''
restored:
  description: Tags put back by this task (in check mode, those that would be).
  returned: always
  type: list
  elements: dict
  contains:
    repository:
      description: Repository of the tag.
      type: str
    tag:
      description: The tag.
      type: str
    digest:
      description: Digest the tag resolves to now, the same as when it was trashed.
      type: str
  sample:
    - {repository: team/app, tag: 1.4.2-rc1, digest: 'sha256:3fa2...'}
entries:
  description: Ids of the trash entries used.
  returned: always
  type: list
  elements: str
entry:
  description: Id of the trash entry used, when there was exactly one.
  returned: always
  type: str
  sample: 20261204T195012123456Z-3fa2c1d8e9b0-9f1c
replaced:
  description: Trash entries made for the tags that O(force) took over, as returned by
    M(oci_registry.trash.registry_manifest_trash) in RV(oci_registry.trash.registry_manifest_trash#module:entries).
  returned: always
  type: list
  elements: dict
failures:
  description:
    - One item for each tag or entry that failed, when some did; the others of the task went on, and the task failed.
    - A failure of the registry adds C(operation), C(url) (without credentials), C(status), C(code) and
      C(registry_message), as far as they are known.
  returned: on failure of some items
  type: list
  elements: dict
  contains:
    tag:
      description: The tag the trash had no entry for.
      type: str
    entry:
      description: Id of the trash entry whose restore failed.
      type: str
    tags:
      description: The tags of that entry the task was restoring.
      type: list
      elements: str
    damaged:
      description: Ids of entries of the repository that could not be read, one of which may hold the tag.
      type: list
      elements: str
    missing:
      description: Blobs that neither the registry nor the trash has, which a restore of the entry needs.
      type: list
      elements: str
    msg:
      description: What failed and why.
      type: str
msg:
  description: What was done, in a sentence.
  returned: always
  type: str
'''
