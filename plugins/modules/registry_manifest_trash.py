#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) oci_registry.trash contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Documentation only: the action plugin of the same name does the work on the controller.

from __future__ import annotations

DOCUMENTATION = r'''
module: registry_manifest_trash
short_description: Delete image tags or manifests from a registry, keeping a snapshot to restore
version_added: 0.1.0
description:
  - Moves tags or whole manifests of a Docker/OCI registry to a trash directory on the Ansible controller,
    so that M(oci_registry.trash.registry_manifest_restore) can bring them back byte for byte.
  - Each tag is resolved with every manifest type accepted, so the registry cannot substitute another manifest.
    The exact manifest bytes, their media type and digest, every tag pointing at that digest, and the tags
    this task removes are written durably to the trash B(before) anything is deleted.
  - With O(scope=tag), only the named tags go; other tags that share the digest stay, and so does the manifest.
    When the named tags are all the tags of that digest, the manifest is deleted by digest. Otherwise each tag is
    deleted by tag where the registry allows it, or, where it does not (distribution 2.x answers 400), re-pointed
    at a small placeholder manifest of its own that is then deleted by digest.
  - A multi-arch image (OCI index or Docker manifest list) is snapshotted whole, with every child manifest under it.
  - With O(scope=manifest) or O(digest), the manifest is deleted by digest, and with it every tag that points at it;
    all of them are recorded.
  - After the delete, the module checks that the removed tags are gone and that the other tags still resolve
    to the digest.
  - Deleting frees no disk space by itself; the registry's garbage collector does. Once it has run, the trashed
    manifest can only be restored if its blobs are still in the registry.
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
    details: Reports what would be removed; writes nothing to the registry or the trash.
  diff_mode:
    support: full
    details: Shows the affected tags and their digests before and after.
  idempotent:
    support: full
    details: A tag that is already gone is neither an error nor a change.
options:
  repository:
    description:
      - Repository name in the registry, for example V(library/alpine) or V(team/app).
    type: str
    required: true
  tag:
    description:
      - Tags to remove. Tags that are already absent are reported, with whether the trash holds them.
      - Mutually exclusive with O(digest); one of them is required.
    type: list
    elements: str
    aliases:
      - tags
  digest:
    description:
      - Digest of a manifest to remove, with every tag that points at it, for example V(sha256:4c3f...).
      - Mutually exclusive with O(tag); one of them is required.
    type: str
  scope:
    description:
      - V(tag) removes only the named tags and keeps their siblings.
      - V(manifest) removes the manifest of each named tag, with every tag that points at it.
      - Ignored with O(digest), which always removes the whole manifest.
    type: str
    choices: [tag, manifest]
    default: tag
  reason:
    description:
      - Free text kept in the trash entry, for the person who later wonders why.
    type: str
  keep_blobs:
    description:
      - Also save the config and layer blobs of the image (of every child, for a multi-arch index) into the trash,
        so that the image can be restored after the registry's garbage collector has run.
      - Blobs are streamed to disk and checked against their digest, and stored once however many entries share them.
      - Without it, only manifests are kept, and a restore after garbage collection fails, naming the missing blobs.
    type: bool
    default: false
seealso:
  - module: oci_registry.trash.registry_manifest_restore
  - name: OCI distribution spec, deleting manifests
    description: Tag deletion is optional in the spec; deleting by digest removes every tag of that digest.
    link: https://github.com/opencontainers/distribution-spec/blob/main/spec.md#deleting-manifests
'''

EXAMPLES = r'''
- name: Trash one tag; other tags of the same image stay
  oci_registry.trash.registry_manifest_trash:
    registry_url: https://registry.example.com
    repository: team/app
    tag: 1.4.2-rc1
    reason: broken build, see ticket 1234
  run_once: true
  register: trashed

- name: Trash a whole image, with every tag that points at it
  oci_registry.trash.registry_manifest_trash:
    registry_url: https://registry.example.com
    repository: team/app
    tag: [nightly]
    scope: manifest

- name: Trash a manifest by digest, credentials from REGISTRY_USERNAME and REGISTRY_PASSWORD
  oci_registry.trash.registry_manifest_trash:
    registry_url: https://registry.example.com
    repository: team/app
    digest: sha256:9b2a45e3d7f5b3bbc8c1e3a5d2a0f2c4a4b1bb7c6e1f0a9d8c7b6a5f4e3d2c1b
    trash_dir: /srv/registry-trash

- name: Trash a multi-arch image with its layers, so it survives garbage collection
  oci_registry.trash.registry_manifest_trash:
    registry_url: https://registry.example.com
    repository: team/app
    tag: 2.0.0
    keep_blobs: true

- name: Show what would go, without touching anything
  oci_registry.trash.registry_manifest_trash:
    registry_url: http://127.0.0.1:5000
    repository: team/app
    tags: [old-1, old-2]
  check_mode: true
  diff: true
'''

RETURN = r'''
entries:
  description: One trash entry per manifest that lost tags (in check mode, what would be written, with a null id).
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Entry id; pass it as O(oci_registry.trash.registry_manifest_restore#module:entry) to restore.
      type: str
      sample: 20261204T195012123456Z-3fa2c1d8e9b0-9f1c
    repository:
      description: Repository the manifest was removed from.
      type: str
      sample: team/app
    digest:
      description: Digest of the manifest snapshot.
      type: str
      sample: sha256:3fa2c1d8e9b0...
    media_type:
      description: Media type of the manifest.
      type: str
      sample: application/vnd.oci.image.manifest.v1+json
    removed_tags:
      description: Tags removed from the registry.
      type: list
      elements: str
    other_tags:
      description: Tags that pointed at the same digest and were kept.
      type: list
      elements: str
    trashed_at:
      description: When the snapshot was taken, UTC, ISO 8601.
      type: str
      sample: '2026-12-04T19:50:12Z'
    state:
      description: V(trashed) once the delete is confirmed.
      type: str
      sample: trashed
    children:
      description: Digests of the child manifests snapshotted with an index.
      type: list
      elements: str
    keep_blobs:
      description: Whether the blobs were saved too.
      type: bool
    blob_bytes:
      description: Size of the blobs saved for this entry (shared blobs are stored once on disk).
      type: int
tags:
  description: The outcome for each named tag (or the digest), including those already absent.
  returned: always
  type: list
  elements: dict
  contains:
    tag:
      description: The tag, when tags were named.
      type: str
    digest:
      description: Digest the tag pointed at, or the digest the trash holds for it; null when unknown.
      type: str
    removed:
      description: Whether this task removed it.
      type: bool
    in_trash:
      description: Whether the trash holds a snapshot of it.
      type: bool
    entry:
      description: Id of the trash entry that holds it, or null.
      type: str
  sample:
    - {tag: 1.4.2-rc1, digest: 'sha256:3fa2...', removed: true, in_trash: true, entry: 20261204T195012123456Z-3fa2c1d8e9b0-9f1c}
failures:
  description:
    - One item for each tag (or digest) that failed, when some did; the others of the task went on, and the task failed.
    - A failure of the registry adds C(operation), C(url) (without credentials), C(status), C(code) and
      C(registry_message), as far as they are known.
  returned: on failure of some items
  type: list
  elements: dict
  contains:
    tag:
      description: The tag that failed, when tags were named.
      type: str
    digest:
      description: The digest that failed, or the digest of the tag when it was known.
      type: str
    msg:
      description: What failed and why.
      type: str
msg:
  description: What was done, in a sentence.
  returned: always
  type: str
  sample: removed 1 manifest(s) and 1 tag(s) from team/app
'''
