# -*- coding: utf-8 -*-
# Copyright (c) oci_registry.trash contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: no compatibility promise outside it.

"""Trash and restore: the registry client and the trash store, put together safely.

The order of steps is the promise. Trash: resolve, snapshot durably, delete, verify,
record. Restore: check the snapshot, check the registry can take it back, put,
verify, record. Every check that can refuse runs before anything is written.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.oci_registry.trash.plugins.module_utils._errors import RegistryError, TrashError
from ansible_collections.oci_registry.trash.plugins.module_utils._registry_client import registry_base_url
from ansible_collections.oci_registry.trash.plugins.module_utils._reference import (
    OCI_MANIFEST,
    check_digest,
    check_repository,
    check_tag,
    manifest_references,
)
from ansible_collections.oci_registry.trash.plugins.module_utils._trash_store import select_entries

DEFAULT_PARALLEL = 8


def _unique(items):
    return list(dict.fromkeys(items))


def _parallel_map(function, items, parallel, progress=None):
    """function over items, with up to parallel at once; results in the order of items."""
    items = list(items)
    counter = itertools.count(1)
    lock = threading.Lock()

    def run(item):
        result = function(item)
        if progress:
            with lock:  # so the reports arrive in order, and the last one says all are done
                progress(next(counter), len(items))
        return result
    if len(items) < 2 or parallel < 2:
        return [run(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(parallel, len(items))) as pool:
        return list(pool.map(run, items))


PUBLIC_KEYS = ('id', 'repository', 'digest', 'media_type', 'removed_tags', 'other_tags', 'trashed_at', 'state',
               'keep_blobs', 'blob_bytes')


def _public(entry, keys=PUBLIC_KEYS):
    """What a result shows of an entry: the keys asked for, and the children by digest."""
    public = {k: entry.get(k) for k in keys}
    public['children'] = [c['digest'] for c in entry.get('children', [])]
    return public


# --- trash ---

def _writing(store, nothing_to_write):
    """The trash's shared lock, which purge takes exclusively, around every write of a trash or restore.

    Check mode, or a run with nothing to do, writes nothing, not even a lock file.
    """
    return contextlib.nullcontext() if nothing_to_write else store.in_use()


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
        references = _unique(check_tag(t) for t in tags)
        if not references:
            raise TrashError('tag is an empty list: name at least one tag to trash')
    key = 'digest' if digest is not None else 'tag'

    resolved = _parallel_map(lambda ref: _attempt(client.get_manifest, repository, ref), references, parallel)
    outcomes, failures, groups, newest, finished = [], [], {}, None, []
    for reference, (manifest, error) in zip(references, resolved):
        if error:
            failures.append(dict(error, **{key: reference}))
        elif manifest is None or _is_placeholder(manifest):
            newest = newest or store.newest_entries(client.url, repository)
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
        return kept, kept is entry

    with _writing(store, check_mode or not plans):
        done = _parallel_map(lambda plan: _attempt(carry_out, plan), plans, parallel, progress)
    entries = []
    for (manifest, _siblings, removed, named), (result, error) in zip(plans, done):
        if error:
            failures.extend(dict(error, digest=manifest.digest, **{key: ref}) for ref in named)
            continue
        entry, ours = result  # not ours: another run removed the same a moment earlier
        if ours:
            entries.append(_public(entry))
        outcome = {'digest': manifest.digest, 'removed': ours, 'in_trash': not check_mode, 'entry': entry['id']}
        if digest is not None:
            outcomes.append(dict(outcome, tags=removed))
        outcomes.extend(dict(outcome, tag=t) for t in named if digest is None)

    msg = _trash_summary(entries, repository, check_mode)
    if finished:
        msg += '; finished removing %s, left on a placeholder by an interrupted run' % ', '.join(finished)
    if failures:
        raise _batch_error(failures, len(references), repository, changed=bool(entries or finished),
                           entries=entries, tags=outcomes)
    return {'changed': bool(entries or finished), 'entries': entries, 'tags': outcomes, 'msg': msg}


def _memo(function):
    """function with its answers kept for the rest of one operation."""
    answers = {}

    def remembered(*args):
        if args not in answers:
            answers[args] = function(*args)
        return answers[args]
    return remembered


def _attempt(function, *args):
    """(result, None), or (None, the failure) for a TrashError: one item's failure stays its own."""
    try:
        return function(*args), None
    except TrashError as exc:
        return None, dict(exc.details, msg=exc.msg)


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
    _parallel_map(keep, blobs, parallel)


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
    digests = _parallel_map(lambda tag: client.manifest_digest(repository, tag), unknown, parallel)
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
        if entry['other_tags']:
            for tag in entry['removed_tags']:
                _remove_tag(client, repository, tag, manifest)
        elif not client.delete_manifest(repository, digest):
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


def _remove_tag(client, repository, tag, manifest):
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


PLACEHOLDER_ANNOTATION = 'oci_registry.trash.placeholder'


def _is_placeholder(manifest):
    """Whether a manifest is one of our placeholders, left on a tag by a run that stopped mid-removal."""
    if manifest.media_type != OCI_MANIFEST:
        return False
    try:
        return PLACEHOLDER_ANNOTATION in (json.loads(manifest.body).get('annotations') or {})
    except (ValueError, AttributeError):
        return False


def _settle_gone(store, newest, key, reference):
    """A run that stopped between its delete and its record left its entry pending; the tag is
    gone now, so the entry is trashed, and info and retention purges can say so."""
    entry = newest[key == 'digest'].get(reference)
    if entry is not None and entry['state'] == 'pending':
        store.set_state(entry, 'trashed', event='found removed by a later run')


def _finish_interrupted_removal(client, store, repository, newest, tag, placeholder, check_mode):
    """A tag on a placeholder was being removed when its run stopped: the image is in the trash
    already, so finish the removal instead of trashing the placeholder as if it were the image."""
    if check_mode:
        return
    client.delete_manifest(repository, placeholder.digest)
    _settle_gone(store, newest, 'tag', tag)


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


# --- restore ---

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
        for tag in _unique(check_tag(t) for t in tags):
            entry = newest_by_tag.get(tag)
            if entry is None:
                failures.append(_not_in_trash(store, registry, repository, 'tag', tag))
            else:
                picks.setdefault(entry['id'], (entry, []))[1].append(tag)
    picked = list(picks.values())
    present = _memo(client.blob_exists)  # images of a batch share most of their layers

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

    prepared = _parallel_map(lambda pick: _attempt(prepare, pick), picked, parallel)
    ready = [plan for plan, _error in prepared if plan]
    with _writing(store, check_mode or not ready):
        done = dict(zip((p['entry']['id'] for p in ready),
                        _parallel_map(lambda plan: _attempt(carry_out, plan), ready, parallel, progress)))
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
        raise _batch_error(failures, len(picked) + sum(1 for f in failures if 'entry' not in f), repository,
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


def _batch_error(failures, total, repository, **result):
    """One failure of one item keeps its own words; in a batch, each failure names its item."""
    if total == 1:
        msg = failures[0]['msg']
    else:
        msg = '%d of %d failed in %s: %s' % (len(failures), total, repository, '; '.join(
            '%s: %s' % (f.get('tag') or f.get('entry') or f.get('digest'), f['msg']) for f in failures))
    return TrashError(msg, failures=failures, **result)


def _plan_restore(client, store, entry, named, all_tags, target, force):
    digest = entry['digest']
    body = store.read_manifest(entry)  # refuses a damaged snapshot before anything is sent
    wanted = entry['removed_tags'] if all_tags else named
    current = dict((tag, client.manifest_digest(target, tag)) for tag in wanted)
    placeholders = []
    for tag, found in current.items():
        if found is not None and found != digest:
            occupant = client.get_manifest(target, found)
            if occupant is not None and _is_placeholder(occupant):
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
                                    _parallel_map(source_of, plan['blobs'], parallel)))
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
    _parallel_map(send, [b for b in plan['blobs'] if plan['blob_sources'][b['digest']] != 'present'], parallel)
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


# --- the trash itself ---

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
        listed.append(dict(_public(entry, INFO_KEYS), damaged=bool(store.check_content(entry))))
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
