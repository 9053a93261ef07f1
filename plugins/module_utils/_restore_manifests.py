# -*- coding: utf-8 -*-
# Copyright (c) oci_registry.trash contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: no compatibility promise outside it.

"""Restore: put trashed manifests back from their snapshots, byte for byte.

The order of steps is the promise: check the snapshot, check the registry can take it
back, send what it lacks, put, verify, record. Every check that can refuse runs before
anything is written."""

from __future__ import annotations

from ansible_collections.oci_registry.trash.plugins.module_utils._batch import (
    DEFAULT_PARALLEL, attempt, batch_error, memo, parallel_map, unique, writing)
from ansible_collections.oci_registry.trash.plugins.module_utils._errors import TrashError
from ansible_collections.oci_registry.trash.plugins.module_utils._placeholder import is_placeholder
from ansible_collections.oci_registry.trash.plugins.module_utils._reference import (
    check_digest, check_repository, check_tag, manifest_references)
from ansible_collections.oci_registry.trash.plugins.module_utils._trash_manifests import trash


def restore(client, store, repository, tags=None, digest=None, entry_id=None, all_tags=True,
            check_mode=False, force=False, target_repository=None, parallel=DEFAULT_PARALLEL, progress=None):
    """Put trashed manifests back from their snapshots.

    Each entry is its own unit of work, checked whole before anything of it is sent.
    Returns a dict with changed, restored (repository, tag, digest each), entries (ids),
    entry (the id when there is one), replaced (entries made for tags that force moved) and msg.
    """
    check_repository(repository)
    target = check_repository(target_repository) if target_repository else repository
    if sum(x is not None for x in (tags, digest, entry_id)) != 1:
        raise TrashError('give exactly one of tag, digest or entry')
    registry = client.url
    picks, failures = {}, []
    if entry_id is not None:
        entry = store.get_entry(registry, repository, entry_id)
        picks[entry['id']] = (entry, [])
    elif digest is not None:
        entry = store.newest_entries(registry, repository)[1].get(check_digest(digest))
        if entry is None:
            failure = _not_in_trash(store, registry, repository, 'digest', digest)
            raise TrashError(failure.pop('msg'), **failure)
        picks[entry['id']] = (entry, [])
    else:
        newest_by_tag = store.newest_entries(registry, repository)[0]
        for tag in unique(check_tag(t) for t in tags):
            entry = newest_by_tag.get(tag)
            if entry is None:
                failures.append(_not_in_trash(store, registry, repository, 'tag', tag))
            else:
                picks.setdefault(entry['id'], (entry, []))[1].append(tag)
    picked = list(picks.values())
    present = memo(client.blob_exists)  # images of a batch share most of their layers

    def prepare(pick):
        entry, named = pick
        plan = _plan_restore(client, store, entry, named, all_tags, target, force)
        if plan['conflicts'] and not force:
            raise TrashError('refusing to restore: %s; nothing was overwritten (force: true trashes the current '
                             'occupant first)' % '; '.join(plan['conflicts']))
        if plan['to_put']:
            _plan_content(client, store, plan, parallel, present)
        return plan

    def carry_out(plan):
        entry = plan['entry']
        if plan['settle'] and not check_mode:
            # Everything is back already (a run that stopped after its PUTs): only the record lags.
            store.set_state(entry, 'restored', event='restore found in place', repository=target)
        if plan['to_put'] and not check_mode:
            _send_content(client, store, plan, parallel)
            if plan['occupied']:
                plan['replaced'] = trash(client, store, target, tags=plan['occupied'], parallel=parallel,
                                         reason='replaced by the restore of trash entry %s' % entry['id'])['entries']
            for reference in plan['to_put']:
                _put_verified(client, target, reference, plan['body'], entry['media_type'], entry['digest'])
            _check_pullable(client, plan)
            for placeholder in plan['placeholders']:  # untagged now: nothing else can lose by its going
                client.delete_manifest(target, placeholder)
            store.set_state(entry, 'restored', event='restore', repository=target, tags=plan['to_put'])
        return plan

    prepared = parallel_map(lambda pick: attempt(prepare, pick), picked, parallel)
    ready = [plan for plan, _error in prepared if plan]
    with writing(store, check_mode or not ready):
        done = dict(zip((p['entry']['id'] for p in ready),
                        parallel_map(lambda plan: attempt(carry_out, plan), ready, parallel, progress)))
    restored, replaced, used, put = [], [], [], []
    for (entry, named), (plan, error) in zip(picked, prepared):
        error = error or done[entry['id']][1]
        if error:
            failures.append(dict(error, entry=entry['id'], tags=named or entry['removed_tags']))
            continue
        used.append(entry['id'])
        put.extend(plan['to_put'])
        replaced.extend(plan.get('replaced', []))
        restored.extend({'repository': target, 'tag': r, 'digest': entry['digest']}
                        for r in plan['to_put'] if r != entry['digest'])
    verb = 'would restore' if check_mode else 'restored'
    msg = ('%s %s to %s' % (verb, ', '.join(put), target) if put
           else 'nothing to restore: already in place in %s' % target)
    result = {'changed': bool(put), 'restored': restored, 'entries': used, 'replaced': replaced,
              'entry': used[0] if len(used) == 1 else None, 'msg': msg}
    if failures:
        raise batch_error(failures, len(picked) + sum(1 for f in failures if 'entry' not in f), repository,
                          **dict((k, v) for k, v in result.items() if k != 'msg'))
    return result


def _not_in_trash(store, registry, repository, key, reference):
    """The failure for a reference the trash has no entry for, naming any entry it could not read."""
    failure = {key: reference, 'msg': 'the trash has no entry that removed %s %s from %s of %s'
               % (key, reference, repository, registry)}
    damaged = store.damaged_entries(registry, repository)
    if damaged:
        failure['damaged'] = damaged
        failure['msg'] += ('; the trash could not read entry %s of this repository, which may hold it '
                           '(registry_trash_info lists the damage)' % ', '.join(damaged))
    return failure


def _plan_restore(client, store, entry, named, all_tags, target, force):
    digest = entry['digest']
    body = store.read_manifest(entry)  # refuses a damaged snapshot before anything is sent
    wanted = entry['removed_tags'] if all_tags else named
    current = dict((tag, client.manifest_digest(target, tag)) for tag in wanted)
    placeholders = []
    for tag, found in current.items():
        if found is not None and found != digest:
            occupant = client.get_manifest(target, found)
            if occupant is not None and is_placeholder(occupant):
                # Left by a trash that stopped mid-removal: the tag is as good as absent.
                current[tag] = None
                placeholders.append(found)
    occupied = [t for t, d in current.items() if d is not None and d != digest]
    conflicts = ['tag %s of %s now points at %s, not the trashed %s' % (t, target, current[t], digest)
                 for t in occupied]
    to_put = [t for t in wanted if current[t] is None or (force and t in occupied)]
    if not wanted and client.manifest_digest(target, digest) is None:
        to_put = [digest]  # an untagged manifest comes back by digest
    settle = not to_put and not occupied and entry['state'] != 'restored' and target == entry['repository']
    return {'entry': entry, 'body': body, 'target': target, 'conflicts': conflicts,
            'occupied': occupied if force else [], 'to_put': to_put, 'settle': settle,
            'placeholders': placeholders}


def _plan_content(client, store, plan, parallel, present):
    """Find how each child manifest and blob will reach the target; refuse before any write if one cannot."""
    entry, target = plan['entry'], plan['target']
    source = entry['repository']
    children = [(c['digest'], c['media_type'], store.read_manifest(entry, c['digest']))
                for c in entry.get('children', [])]
    plan['children'] = [c for c in children if client.manifest_digest(target, c[0]) is None]
    manifests = [(entry['digest'], entry['media_type'], plan['body'])] + children
    blobs = {}
    for _digest, media_type, body in manifests:
        blobs.update((b['digest'], b) for b in manifest_references(body, media_type)[0])
    plan['blobs'] = list(blobs.values())

    def source_of(blob):
        # Cheapest first: a mount moves no bytes, an upload from the trash moves them all.
        if present(target, blob['digest']):
            return 'present'
        if target != source and present(source, blob['digest']):
            return 'mount'
        if entry.get('keep_blobs') and store.has_blob(blob['digest']):
            return 'trash'
        return None
    plan['blob_sources'] = dict(zip((b['digest'] for b in plan['blobs']),
                                    parallel_map(source_of, plan['blobs'], parallel)))
    missing = ['blob %s' % d for d, how in plan['blob_sources'].items() if how is None]
    if missing:
        raise TrashError('cannot restore %s to %s: the registry no longer has %s (removed by garbage '
                         'collection?) and the trash did not keep them (keep_blobs); nothing was changed'
                         % (entry['digest'], target, ', '.join(missing)), entry=entry['id'], missing=missing)


def _send_content(client, store, plan, parallel):
    """Give the registry every blob and child manifest it lacks, children before their index."""
    entry, target = plan['entry'], plan['target']

    def send(blob):
        digest = blob['digest']
        if plan['blob_sources'][digest] == 'mount' and client.mount_blob(target, digest, entry['repository']):
            return
        if store.has_blob(digest):
            with store.open_blob(digest) as data:
                client.upload_blob(target, data, digest)
        else:  # a refused mount: copy it through the controller, streamed
            client.upload_blob(target, client.blob_chunks(entry['repository'], digest), digest)
    parallel_map(send, [b for b in plan['blobs'] if plan['blob_sources'][b['digest']] != 'present'], parallel)
    # Deepest first: an index is accepted only once the manifests it lists exist.
    for digest, media_type, body in reversed(plan['children']):
        _put_verified(client, target, digest, body, media_type, digest)


def _put_verified(client, repository, reference, body, media_type, digest):
    """PUT a manifest and read it back; give the registry the bytes it lost if it claims them wrongly."""
    stored = client.put_manifest(repository, reference, body, media_type)
    back = client.get_manifest(repository, reference)
    if back is None and stored == digest:
        # distribution's blob-descriptor cache can outlive a garbage collection: the PUT is
        # accepted without rewriting the manifest's own blob, and the GET then finds nothing.
        # Uploading the bytes as a blob puts them back in storage.
        client.upload_blob(repository, body, digest)
        client.put_manifest(repository, reference, body, media_type)
        back = client.get_manifest(repository, reference)
    if stored != digest or back is None or back.digest != digest:
        raise TrashError('restored %s to %s:%s but the registry now reports %s' % (
            digest, repository, reference, back.digest if back else 'nothing'))
    if reference != digest and client.manifest_digest(repository, digest) != digest:
        raise TrashError('restored %s to %s:%s but it does not resolve by digest' % (digest, repository, reference))


def _check_pullable(client, plan):
    """Success only for an image a client can pull: every blob sent is served, not just listed.

    The blobs found present were read moments ago, when the restore was planned.
    """
    sent = [d for d, how in plan['blob_sources'].items() if how != 'present']
    lost = [d for d in sent if not client.blob_exists(plan['target'], d)]
    if lost:
        raise TrashError('restored %s to %s, but the registry does not serve %s: the image is not pullable'
                         % (plan['entry']['digest'], plan['target'], ', '.join(lost)), entry=plan['entry']['id'])
