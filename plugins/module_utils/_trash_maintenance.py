# -*- coding: utf-8 -*-
# Copyright (c) oci_registry.trash contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: no compatibility promise outside it.

"""What the trash holds, and removing entries from it for good; no registry is contacted."""

from __future__ import annotations

import os

from ansible_collections.oci_registry.trash.plugins.module_utils._batch import public_view
from ansible_collections.oci_registry.trash.plugins.module_utils._errors import TrashError
from ansible_collections.oci_registry.trash.plugins.module_utils._reference import (
    check_digest, check_repository, check_tag)
from ansible_collections.oci_registry.trash.plugins.module_utils._registry_client import registry_base_url
from ansible_collections.oci_registry.trash.plugins.module_utils._trash_store import select_entries


INFO_KEYS = ('id', 'registry', 'repository', 'digest', 'media_type', 'tags', 'removed_tags', 'other_tags',
             'trashed_at', 'reason', 'user', 'state', 'manifest_size', 'keep_blobs', 'blob_bytes')


def find_entries(store, registry_url=None, repository=None, **filters):
    """Entries matching every filter given (see select_entries), newest first, without touching a registry."""
    registry = registry_base_url(registry_url) if registry_url else None
    if repository is not None:
        check_repository(repository)
    if filters.get('tag') is not None:
        check_tag(filters['tag'])
    if filters.get('digest') is not None:
        check_digest(filters['digest'])
    return select_entries(store.all_entries(registry, repository), **filters)


def trash_info(store, **filters):
    entries = find_entries(store, **filters)
    listed = []
    for entry in entries:
        listed.append(dict(public_view(entry, INFO_KEYS), damaged=bool(store.check_content(entry))))
    return {'changed': False, 'entries': listed, 'damaged': list(store.damaged), 'totals': {
        'entries': len(listed),
        'manifest_bytes': sum(e['manifest_size'] for e in entries),
        'blob_bytes': sum(e.get('blob_bytes', 0) for e in entries),
        'disk_bytes': store.disk_bytes() if os.path.isdir(store.root) else 0,
    }}


PURGE_SELECTORS = ('repository', 'tag', 'digest', 'state', 'older_than', 'newer_than')


def purge(store, entry_ids=None, check_mode=False, **filters):
    """Remove entries for good, by id or by filter, with the content only they referenced.

    registry_url alone selects nothing: it is often a default, and a purge must never
    empty a whole trash because every other filter happened to be unset.
    """
    if entry_ids is not None:
        wanted = set(entry_ids)
        doomed = [e for e in store.all_entries() if e['id'] in wanted]
        unknown = sorted(wanted - set(e['id'] for e in doomed))
        if unknown:
            raise TrashError('no trash entry with id %s in %s; nothing was purged' % (', '.join(unknown), store.root))
    else:
        doomed = find_entries(store, **filters)  # checks every filter value first
        if all(filters.get(name) is None for name in PURGE_SELECTORS):
            raise TrashError('purge needs entry ids or a filter (%s); to empty the whole trash, use older_than 0s'
                             % ', '.join(PURGE_SELECTORS))
    gone = store.purge(doomed, check_mode=check_mode)
    verb = 'would purge' if check_mode else 'purged'
    return {'changed': bool(gone['entries'] or gone['blobs']), 'purged': gone['entries'],
            'blobs': len(gone['blobs']), 'bytes_freed': gone['bytes'],
            'msg': '%s %d entries and %d stored manifests or blobs, %d bytes'
                   % (verb, len(gone['entries']), len(gone['blobs']), gone['bytes'])}
