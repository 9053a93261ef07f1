# -*- coding: utf-8 -*-
# Copyright (c) oci_registry.trash contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: no compatibility promise outside it.

"""Removing one tag of a digest that other tags share, where the registry cannot delete a tag.

distribution 2.8 answers a tag DELETE with 400, and a DELETE by digest takes every tag
with it; the tag is re-pointed at a placeholder manifest of its own, which is then
deleted by its digest. A run that stops in between leaves the placeholder on the tag,
and trash and restore both know it for what it is."""

from __future__ import annotations

import json
import secrets

from ansible_collections.oci_registry.trash.plugins.module_utils._errors import RegistryError, TrashError
from ansible_collections.oci_registry.trash.plugins.module_utils._reference import OCI_MANIFEST


PLACEHOLDER_ANNOTATION = 'oci_registry.trash.placeholder'


def remove_tag(client, repository, tag, manifest):
    """Remove one tag while its digest and sibling tags stay."""
    try:
        client.delete_manifest(repository, tag)
        return
    except RegistryError as exc:
        # Tag deletion is optional in the OCI distribution spec: 400 or 405 means "not here".
        if exc.status not in (400, 405):
            raise
    # Re-point the tag at a placeholder of its own, then delete the placeholder by digest:
    # only the tag goes, and the siblings never move.
    body = _placeholder_manifest(client, repository, tag)
    placeholder = client.put_manifest(repository, tag, body, OCI_MANIFEST)
    try:
        client.delete_manifest(repository, placeholder)
    except TrashError:
        client.put_manifest(repository, tag, manifest.body, manifest.media_type)
        raise


def is_placeholder(manifest):
    """Whether a manifest is one of our placeholders, left on a tag by a run that stopped mid-removal."""
    if manifest.media_type != OCI_MANIFEST:
        return False
    try:
        return PLACEHOLDER_ANNOTATION in (json.loads(manifest.body).get('annotations') or {})
    except (ValueError, AttributeError):
        return False


def _placeholder_manifest(client, repository, tag):
    config = json.dumps({'oci_registry.trash': 'placeholder', 'tag': tag}).encode()
    config_digest = client.upload_blob(repository, config)
    return json.dumps({
        'schemaVersion': 2,
        'mediaType': OCI_MANIFEST,
        'config': {'mediaType': 'application/vnd.oci.image.config.v1+json', 'digest': config_digest,
                   'size': len(config)},
        'layers': [],
        # A digest of its own: deleting it can never take a tag that points elsewhere.
        'annotations': {PLACEHOLDER_ANNOTATION: secrets.token_hex(16)},
    }, sort_keys=True).encode()
