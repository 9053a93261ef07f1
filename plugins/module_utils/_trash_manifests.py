# -*- coding: utf-8 -*-
# Copyright (c) oci_registry.trash contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: no compatibility promise outside it.

"""Trash: take tags (or a whole manifest) out of a registry, keeping a snapshot in the trash.

The order of steps is the promise: resolve, snapshot durably, delete, verify, record.
Every check that can refuse runs before anything is written."""

from __future__ import annotations

import contextlib

from ansible_collections.oci_registry.trash.plugins.module_utils._batch import (
    DEFAULT_PARALLEL, attempt, batch_error, memo, parallel_map, public_view, unique, writing)
from ansible_collections.oci_registry.trash.plugins.module_utils._errors import RegistryError, TrashError
from ansible_collections.oci_registry.trash.plugins.module_utils._placeholder import is_placeholder, remove_tag
from ansible_collections.oci_registry.trash.plugins.module_utils._reference import (
    check_digest, check_repository, check_tag, manifest_references)


def trash(client, store, repository, tags=None, digest=None, scope='tag', reason=None,
          check_mode=False, keep_blobs=False, parallel=DEFAULT_PARALLEL, progress=None):
    """Remove tags (or a whole manifest) from the registry, keeping a snapshot in the trash.

    Each manifest is its own unit of work: one failing never hides or stops the others,
    and the TrashError raised at the end carries every outcome, good and bad.
    Returns a dict with changed, entries, tags (each named tag's outcome) and msg.
    """
    check_repository(repository)
    if (tags is None) == (digest is None):
        raise TrashError('give either tag or digest, not both and not neither')
    if scope not in ('tag', 'manifest'):
        raise TrashError('scope must be "tag" or "manifest", not %r' % (scope,))
    if digest is not None:
        references = [check_digest(digest)]
    else:
        references = unique(check_tag(t) for t in tags)
        if not references:
            raise TrashError('tag is an empty list: name at least one tag to trash')
    key = 'digest' if digest is not None else 'tag'

    resolved = parallel_map(lambda ref: attempt(client.get_manifest, repository, ref), references, parallel)
    in_trash = memo(lambda: store.entries(client.url, repository))  # read once, for both uses below
    outcomes, failures, groups, newest, finished = [], [], {}, None, []
    for reference, (manifest, error) in zip(references, resolved):
        if error:
            failures.append(dict(error, **{key: reference}))
        elif manifest is None or is_placeholder(manifest):
            newest = newest or store.newest_entries(client.url, repository, entries=in_trash())
            outcome = _absent(newest, reference)
            if manifest is not None:
                _finish_interrupted_removal(client, store, repository, newest, reference, manifest, check_mode)
                outcome['removed'] = True
                finished.append(reference)
            elif not check_mode:
                _settle_gone(store, newest, key, reference)
            outcomes.append(outcome)
        else:
            groups.setdefault(manifest.digest, (manifest, []))[1].append(reference)

    plans = []
    if groups:
        known = {} if digest is not None else {ref: m.digest for ref, (m, _e) in zip(references, resolved) if m}
        pointing = _tags_by_digest(client, repository, known, parallel)
        whole = digest is not None or scope == 'manifest'
        for found, (manifest, named) in groups.items():
            siblings = sorted(set(pointing.get(found, [])) | set(known).intersection(named))
            plans.append((manifest, siblings, siblings if whole else sorted(named), named))

    if plans and not check_mode and client.deletes_enabled(repository) is False:
        raise RegistryError('delete manifest', client.url + '/v2/%s/manifests/' % repository, 405,
                            hint='deletes are disabled on this registry (storage.delete.enabled is false) '
                                 'or it is read-only; nothing was changed')

    def carry_out(plan):
        manifest, siblings, removed, _named = plan
        children, blobs = _collect(client, repository, manifest)
        if check_mode:
            return {'id': None, 'repository': repository, 'digest': manifest.digest,
                    'media_type': manifest.media_type, 'removed_tags': removed,
                    'other_tags': sorted(set(siblings) - set(removed)), 'trashed_at': None, 'state': None,
                    'children': [{'digest': c.digest} for c in children], 'keep_blobs': keep_blobs,
                    'blob_bytes': sum(b['size'] for b in blobs) if keep_blobs else 0}, True
        if keep_blobs:
            _keep_blobs(client, store, repository, blobs, parallel)
        entry = store.create_entry(client.url, repository, manifest, siblings, removed,
                                   'manifest' if digest is not None else scope, reason,
                                   children=children, blobs=blobs, keep_blobs=keep_blobs)
        kept = _delete_and_verify(client, store, entry, manifest)
        if kept is entry:
            _settle_superseded(store, entry, stale)
        return kept, kept is entry

    # Settling them is a tidy-up: one that a purge removes meanwhile is skipped (_settle_superseded).
    stale = _pending_by_target(in_trash()) if plans and not check_mode else {}
    with writing(store, check_mode or not plans):
        done = parallel_map(lambda plan: attempt(carry_out, plan), plans, parallel, progress)
    entries = []
    for (manifest, _siblings, removed, named), (result, error) in zip(plans, done):
        if error:
            failures.extend(dict(error, digest=manifest.digest, **{key: ref}) for ref in named)
            continue
        entry, ours = result  # not ours: another run removed the same a moment earlier
        if ours:
            entries.append(public_view(entry))
        outcome = {'digest': manifest.digest, 'removed': ours, 'in_trash': not check_mode, 'entry': entry['id']}
        if digest is not None:
            outcomes.append(dict(outcome, tags=removed))
        outcomes.extend(dict(outcome, tag=t) for t in named if digest is None)

    msg = _trash_summary(entries, repository, check_mode)
    if finished:
        msg += '; finished removing %s, left on a placeholder by an interrupted run' % ', '.join(finished)
    if failures:
        raise batch_error(failures, len(references), repository, changed=bool(entries or finished),
                          entries=entries, tags=outcomes)
    return {'changed': bool(entries or finished), 'entries': entries, 'tags': outcomes, 'msg': msg}


def _trash_summary(entries, repository, check_mode):
    if not entries:
        return 'nothing to remove: already absent from %s' % repository
    tags = [t for e in entries for t in e['removed_tags']]
    deleted = sum(1 for e in entries if not e['other_tags'])
    return '%s %d tag(s) from %s: %s; %d manifest(s) deleted, %d kept for their other tags' % (
        'would remove' if check_mode else 'removed', len(tags), repository,
        ', '.join(tags[:10]) + (', ...' if len(tags) > 10 else ''), deleted, len(entries) - deleted)


def _collect(client, repository, manifest):
    """The child manifests under an index (an index may hold indexes), and every blob they all reference."""
    children, blobs, seen = [], {}, {manifest.digest}
    pending = [manifest]
    while pending:
        current = pending.pop()
        current_blobs, current_children = manifest_references(current.body, current.media_type)
        blobs.update((b['digest'], b) for b in current_blobs)
        for descriptor in current_children:
            if descriptor['digest'] in seen:
                continue
            seen.add(descriptor['digest'])
            child = client.get_manifest(repository, descriptor['digest'])
            if child is None:
                raise TrashError('index %s lists %s, which is missing from %s: a snapshot of it could not be '
                                 'restored whole, so nothing was removed' % (manifest.digest, descriptor['digest'],
                                                                             repository))
            children.append(child)
            pending.append(child)
    return children, list(blobs.values())


def _keep_blobs(client, store, repository, blobs, parallel):
    """Copy the blobs into the trash (streamed, hash-checked, each stored once) before anything is deleted."""
    def keep(blob):
        if store.has_blob(blob['digest']):
            return
        chunks = client.blob_chunks(repository, blob['digest'])
        if chunks is None:
            raise TrashError('cannot keep blob %s: the registry does not have it in %s; nothing was removed'
                             % (blob['digest'], repository))
        store.ingest_blob(blob['digest'], chunks)
    parallel_map(keep, blobs, parallel)


def _absent(newest, reference):
    """A reference already gone is not an error: say whether the trash has it."""
    key = 'digest' if ':' in reference else 'tag'
    entry = newest[key == 'digest'].get(reference)
    return {key: reference, 'digest': entry['digest'] if entry else (reference if key == 'digest' else None),
            'removed': False, 'in_trash': entry is not None, 'entry': entry['id'] if entry else None}


def _tags_by_digest(client, repository, known, parallel):
    """digest -> tags pointing at it now, over every tag of the repository."""
    tags = client.list_tags(repository)
    unknown = [t for t in tags if t not in known]
    digests = parallel_map(lambda tag: client.manifest_digest(repository, tag), unknown, parallel)
    resolved = dict(known)
    resolved.update((t, d) for t, d in zip(unknown, digests) if d)
    pointing = {}
    for tag, found in resolved.items():
        pointing.setdefault(found, []).append(tag)
    return pointing


def _targets(entry):
    """What a trash entry removes: its tags, or the manifest itself when it had none."""
    return entry['removed_tags'] or [entry['digest']]


def _still_present(client, entry):
    return [t for t in _targets(entry) if client.manifest_digest(entry['repository'], t) is not None]


def _delete_and_verify(client, store, entry, manifest):
    """Delete what the entry records; returns the entry, or the twin entry of another run that
    removed the same thing a moment earlier (this run's own entry is then dropped as a duplicate)."""
    repository, digest = entry['repository'], entry['digest']
    try:
        with store.removing(digest):
            if entry['other_tags']:
                # Checked under the lock: re-pointing a tag that another run removed meanwhile
                # would bring it back for a moment and claim its removal twice.
                present = [t for t in entry['removed_tags'] if client.manifest_digest(repository, t) == digest]
                for tag in present:
                    remove_tag(client, repository, tag, manifest)
                found_gone = not present
            else:
                found_gone = not client.delete_manifest(repository, digest)
            if found_gone:
                twin = _twin_entry(store, entry)
                if twin is not None:
                    store.discard_entry(entry)
                    return twin
                # Gone, and no other entry holds it (deleted outside the trash, or our own
                # retried DELETE): this snapshot may be the only copy, so it stays.
    except TrashError as exc:
        _settle_after_failure(client, store, entry, exc.outcome_unknown)
        raise

    still_there = _still_present(client, entry)
    moved = [t for t in entry['other_tags'] if client.manifest_digest(repository, t) != digest]
    nothing_went = len(still_there) == len(_targets(entry))
    store.set_state(entry, 'aborted' if nothing_went else 'trashed', event='trash',
                    still_present=still_there, moved=moved)
    problems = (['still present: %s' % ', '.join(still_there)] if still_there else []) + (
        ['no longer at %s: %s' % (digest, ', '.join(moved))] if moved else [])
    if problems:
        raise TrashError('after deleting %s from %s, %s' % (digest, repository, '; '.join(problems)),
                         entry=entry['id'])
    return entry


def _twin_entry(store, entry):
    """Another run's entry that snapshotted the same manifest and removes at least the same tags."""
    for other in store.entries(entry['registry'], entry['repository']):
        if (other['id'] != entry['id'] and other['digest'] == entry['digest']
                and other['state'] in ('pending', 'trashed')
                and set(entry['removed_tags']) <= set(other['removed_tags'])):
            return other
    return None


def _settle_after_failure(client, store, entry, outcome_unknown):
    """Record what a failed delete really did, so the entry never claims a removal that did not happen,
    nor that nothing went when a DELETE whose answer was lost may still land."""
    try:
        still_there = _still_present(client, entry)
    except TrashError:
        return  # the registry cannot tell now: pending stays, and restore still works from it
    nothing_went = len(still_there) == len(_targets(entry))
    if nothing_went and outcome_unknown:
        store.set_state(entry, 'pending', event='trash failed, outcome unknown', still_present=still_there)
        return
    store.set_state(entry, 'aborted' if nothing_went else 'trashed', event='trash failed',
                    still_present=still_there)


def _settle_gone(store, newest, key, reference):
    """A run that stopped between its delete and its record left its entry pending; the tag is
    gone now, so the entry is trashed, and info and retention purges can say so."""
    entry = newest[key == 'digest'].get(reference)
    if entry is not None and entry['state'] == 'pending':
        store.set_state(entry, 'trashed', only_from=('pending',), event='found removed by a later run')


def _pending_by_target(entries):
    """tag (or digest, for an untagged manifest) -> the pending entries that remove it."""
    pending = {}
    for entry in entries:
        if entry['state'] == 'pending':
            for target in _targets(entry):
                pending.setdefault(target, []).append(entry)
    return pending


def _settle_superseded(store, entry, stale):
    """Pending entries whose delete never happened (the tags were still there, at the same digest,
    for this run to remove) are aborted, so that pending keeps meaning "not known yet".

    Only those that remove nothing this entry does not: restore by tag and digest already
    prefers this newer entry for each of their tags, so nothing restorable changes.
    """
    mine = set(_targets(entry))
    candidates = {e['id']: e for target in mine for e in stale.get(target, [])}
    for old in candidates.values():
        if old['digest'] == entry['digest'] and set(_targets(old)) <= mine:
            with contextlib.suppress(TrashError):  # a tidy-up: it never fails a removal that succeeded
                store.set_state(old, 'aborted', only_from=('pending',), event='found in place by a later run',
                                superseded_by=entry['id'])


def _finish_interrupted_removal(client, store, repository, newest, tag, placeholder, check_mode):
    """A tag on a placeholder was being removed when its run stopped: the image is in the trash
    already, so finish the removal instead of trashing the placeholder as if it were the image."""
    if check_mode:
        return
    client.delete_manifest(repository, placeholder.digest)
    _settle_gone(store, newest, 'tag', tag)
