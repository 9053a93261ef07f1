# -*- coding: utf-8 -*-
# Copyright (c) oci_registry.trash contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: no compatibility promise outside it.

"""The trash directory on the controller; docs/trash-format.md describes the layout.

Every file is written whole or not at all (temporary file, fsync, rename, fsync of
the directory), and every read-modify-write happens under one lock, so Ansible forks
and concurrent playbooks never see or leave a torn file.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import getpass
import hashlib
import json
import os
import re
import secrets
from urllib.parse import urlsplit

from ansible_collections.oci_registry.trash.plugins.module_utils._errors import TrashError
from ansible_collections.oci_registry.trash.plugins.module_utils._reference import (
    check_digest,
    check_repository,
    check_tag,
    digest_matches,
)

FORMAT_NAME = 'oci_registry.trash'
FORMAT_VERSION = 1
ENTRY_ID_RE = re.compile(r'^\d{8}T\d{12}Z-[a-f0-9]{12}-[a-f0-9]{4}$')
REGISTRY_KEY_RE = re.compile(r'^[a-z0-9\[][a-z0-9._\-\[\]]*$')

# pending: snapshot written, delete not yet confirmed (a crash leaves this; restore trusts it)
# trashed: deleted from the registry; restored: put back (kept as history)
# aborted: the delete never happened, the registry still has the image
STATES = ('pending', 'trashed', 'restored', 'aborted')
RESTORABLE_STATES = ('pending', 'trashed', 'restored')
REMOVAL_LOCKS = 64


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def controller_user():
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry, as in some containers
        return 'uid %d' % os.getuid()


def registry_key(registry_url):
    """The directory name of a registry: host and port, readable with ls."""
    parts = urlsplit(registry_url)
    key = (parts.netloc + parts.path).lower().replace(':', '_').replace('/', '_')
    if not REGISTRY_KEY_RE.match(key):
        raise TrashError('cannot make a trash directory name from registry_url %r' % (registry_url,))
    return key


_DURATION_RE = re.compile(r'^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$')
_DURATION_UNITS = (7 * 86400, 86400, 3600, 60, 1)


def parse_duration(text):
    """Seconds in a duration such as 14d, 12h, 1w2d or 90m."""
    match = _DURATION_RE.match(str(text).strip()) if text is not None else None
    if not match or not any(match.groups()):
        raise TrashError('invalid duration %r: use a number and a unit, w d h m or s, as in 14d, 12h or 1d6h'
                         % (text,))
    return sum(int(n or 0) * unit for n, unit in zip(match.groups(), _DURATION_UNITS))


def _before(now, duration):
    try:
        return now - datetime.timedelta(seconds=parse_duration(duration))
    except OverflowError:
        raise TrashError('invalid duration %r: it reaches back before the year 1' % (duration,))


def select_entries(entries, tag=None, digest=None, state=None, older_than=None, newer_than=None, now=None):
    """The entries that pass every filter given; durations are measured back from now."""
    now = now or utc_now()
    # "is not None", never truth: an empty duration is a mistake to report, not "no filter".
    oldest = _before(now, newer_than) if newer_than is not None else None
    newest = _before(now, older_than) if older_than is not None else None

    def keep(entry):
        trashed = datetime.datetime.strptime(entry['trashed_at'], '%Y-%m-%dT%H:%M:%SZ').replace(
            tzinfo=datetime.timezone.utc)
        return ((tag is None or tag in entry['tags']) and (digest is None or entry['digest'] == digest)
                and (state is None or entry['state'] == state)
                and (newest is None or trashed <= newest) and (oldest is None or trashed >= oldest))
    return [e for e in entries if keep(e)]


def entry_digests(entry):
    """Everything an entry needs from the content store."""
    digests = {entry['digest']}
    digests.update(c['digest'] for c in entry.get('children', []))
    if entry.get('keep_blobs'):
        digests.update(b['digest'] for b in entry.get('blobs', []))
    return digests


class TrashStore:
    def __init__(self, root):
        if not root or not isinstance(root, str):
            raise TrashError('trash_dir must be a non-empty path')
        try:
            self.root = os.path.realpath(os.path.abspath(os.path.expanduser(root)))
        except ValueError as exc:  # a NUL byte, say
            raise TrashError('invalid trash_dir %r: %s' % (root, exc))
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            raise TrashError('trash_dir %s exists and is not a directory' % self.root)
        self._prepared = False
        self._unreadable = {}  # path of an entry file that could not be read -> why
        self._rotten = {}  # what is wrong with content an entry needs (each message names the entry), in order

    @property
    def damaged(self):
        """One message for each damage met so far: entry files unreadable, content missing or rotten."""
        return list(self._unreadable.values()) + list(self._rotten)

    # --- paths: every one is built from checked names and must stay under root ---

    def _path(self, *parts):
        path = os.path.realpath(os.path.join(self.root, *parts))
        if os.path.commonpath([path, self.root]) != self.root:
            raise TrashError('refusing a trash path outside trash_dir: %s' % path)
        return path

    def blob_path(self, digest):
        algorithm, encoded = check_digest(digest).split(':', 1)
        return self._path('blobs', algorithm, encoded)

    def entries_dir(self, registry, repository):
        return self._path('entries', registry_key(registry), *check_repository(repository).split('/'))

    def entry_path(self, registry, repository, entry_id):
        if not isinstance(entry_id, str) or not ENTRY_ID_RE.match(entry_id):
            raise TrashError('invalid trash entry id %r: ids look like 20261204T195012123456Z-3fa2c1d8e9b0-9f1c'
                             % (entry_id,))
        return os.path.join(self.entries_dir(registry, repository), entry_id + '.json')

    # --- writing ---

    @contextlib.contextmanager
    def locked(self):
        """The one writer lock of this trash directory (flock: released if the process dies)."""
        with self._flock('.lock', fcntl.LOCK_EX):
            yield self

    def _prepare(self):
        # Once per store: every lock and every new entry comes through here, and the marker does not change.
        if not self._prepared:
            self._make_dirs(self.root)
            self._write_format_marker()
            self._prepared = True

    @contextlib.contextmanager
    def _flock(self, name, mode):
        self._prepare()
        fd = os.open(os.path.join(self.root, name), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)

    def removing(self, digest):
        """Held by the one run that removes this manifest from a registry at a time.

        distribution can answer 202 to two concurrent DELETEs of one manifest, and two runs
        re-pointing one tag at their placeholders both see it go: each would then record the
        removal as its own. Taken in turn, the second run finds the manifest gone and yields
        to the first's entry. A fixed set of lock files (the digest picks one) keeps the
        directory tidy; two manifests that share one merely take turns.
        """
        slot = int(hashlib.sha256(digest.encode('utf-8')).hexdigest()[:8], 16) % REMOVAL_LOCKS
        self._make_dirs(self._path('locks'))
        return self._flock(os.path.join('locks', 'remove-%02d.lock' % slot), fcntl.LOCK_EX)

    @contextlib.contextmanager
    def in_use(self):
        """Held (shared) by every trash and restore while it writes or reads blobs.

        A trash stores blobs before the entry that references them exists; purge takes
        this lock exclusively, so it never sweeps a blob that an entry is about to claim.
        """
        with self._flock('.sweep.lock', fcntl.LOCK_SH):
            yield self

    def save_blob(self, digest, data):
        """Store content under its digest, once; the bytes must match the digest."""
        if not digest_matches(digest, data):
            raise TrashError('refusing to store content under %s: it does not hash to that digest' % digest)
        path = self.blob_path(digest)
        if not os.path.exists(path):
            self._atomic_write(path, data)
        return path

    def has_blob(self, digest):
        return os.path.exists(self.blob_path(digest))

    def ingest_blob(self, digest, chunks):
        """Store streamed content under its digest, hashing while writing; returns its size.

        The content lands under its name only once its hash is proven, so a torn
        download or a lying registry never leaves a wrong blob in the trash.
        """
        algorithm = check_digest(digest).split(':', 1)[0]
        path = self.blob_path(digest)
        hasher = hashlib.new(algorithm)
        size = 0

        def hashed():
            nonlocal size
            for chunk in chunks:
                hasher.update(chunk)
                size += len(chunk)
                yield chunk

        def proven():
            if '%s:%s' % (algorithm, hasher.hexdigest()) != digest:
                raise TrashError('the registry sent content for %s that hashes to %s:%s; not stored'
                                 % (digest, algorithm, hasher.hexdigest()))

        self._atomic_write(path, hashed(), before_rename=proven)
        return size

    def open_blob(self, digest):
        try:
            return open(self.blob_path(digest), 'rb')
        except OSError as exc:
            raise TrashError('cannot read %s from the trash: %s' % (digest, exc.strerror))

    def create_entry(self, registry, repository, manifest, tags, removed_tags, scope, reason=None,
                     children=(), blobs=(), keep_blobs=False):
        """Snapshot a manifest durably and record what is about to be removed (state pending).

        children are the manifests under an index, stored with it; blobs are the
        config and layer descriptors, already in the store when keep_blobs.
        """
        now = utc_now()
        check_digest(manifest.digest)
        self.entries_dir(registry, repository)  # refuses a bad name before anything is written
        entry = {
            'format': FORMAT_VERSION,
            'id': '%s-%s-%s' % (now.strftime('%Y%m%dT%H%M%S%fZ'), manifest.digest.split(':', 1)[1][:12],
                                secrets.token_hex(2)),
            'registry': registry,
            'repository': check_repository(repository),
            'digest': check_digest(manifest.digest),
            'media_type': manifest.media_type,
            'manifest_size': len(manifest.body),
            'children': [{'digest': c.digest, 'media_type': c.media_type, 'size': len(c.body)} for c in children],
            'blobs': [{'digest': b['digest'], 'size': b['size']} for b in blobs],
            'keep_blobs': keep_blobs,
            'blob_bytes': sum(b['size'] for b in blobs) if keep_blobs else 0,
            'tags': sorted(check_tag(t) for t in tags),
            'removed_tags': sorted(check_tag(t) for t in removed_tags),
            'other_tags': sorted(set(tags) - set(removed_tags)),
            'scope': scope,
            'trashed_at': now.strftime('%Y-%m-%dT%H:%M:%SZ'),
            'reason': reason,
            'user': controller_user(),
            'state': 'pending',
            'history': [],
        }
        if keep_blobs:
            missing = [b['digest'] for b in blobs if not self.has_blob(b['digest'])]
            if missing:
                raise TrashError('refusing to record an entry whose kept blobs are not in the trash: %s'
                                 % ', '.join(missing))
        # No lock: content-addressed blobs and a new, uniquely named entry cannot collide,
        # so many entries are made at once, and their fsyncs share the journal's commits.
        self._prepare()
        for item in (manifest,) + tuple(children):
            self.save_blob(item.digest, item.body)
        self._write_entry(entry)
        return entry

    def set_state(self, entry, state, only_from=STATES, **event):
        """Move an entry to a new state, keeping what happened in its history.

        only_from: the states it may move from, as it is on disk now (another run may have moved it
        since it was read); from any other, it stays as it is.
        """
        if state not in STATES:
            raise TrashError('unknown trash entry state %r' % state)
        with self.locked():
            path = self.entry_path(entry['registry'], entry['repository'], entry['id'])
            current = self._read_entry(path)
            if current['state'] not in only_from:
                entry.clear()
                entry.update(current)
                return entry
            event.update(state=state, at=utc_now().strftime('%Y-%m-%dT%H:%M:%SZ'))
            current['history'].append(event)
            current['state'] = state
            # Atomic but not synced to the directory: a state change lost to a crash leaves the
            # entry pending, which restore still trusts, and the next run settles it.
            self._write_entry(current, durable=False)
        entry.clear()
        entry.update(current)
        return entry

    def discard_entry(self, entry):
        """Drop an entry that duplicates another (its content stays until purge finds it unreferenced)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.entry_path(entry['registry'], entry['repository'], entry['id']))

    # --- reading ---

    def read_manifest(self, entry, digest=None):
        """A snapshot's bytes (the entry's manifest, or one of its children), refused when
        they no longer hash to the recorded digest."""
        digest = digest or entry['digest']
        try:
            with open(self.blob_path(digest), 'rb') as f:
                body = f.read()
        except OSError as exc:
            raise TrashError('trash entry %s: cannot read the snapshot of %s: %s'
                             % (entry['id'], digest, exc.strerror))
        if not digest_matches(digest, body):
            raise TrashError('trash entry %s: the stored manifest no longer hashes to %s; the snapshot is '
                             'damaged and was not sent to the registry' % (entry['id'], digest))
        return body

    def check_content(self, entry):
        """What is wrong with the content an entry needs, as messages naming it; [] when sound.

        Snapshots are read and hashed (they are small); kept blobs, which can be gigabytes,
        are checked for presence and size, and the registry checks their hash when they
        are uploaded back.
        """
        problems = []
        for digest in [entry['digest']] + [c['digest'] for c in entry.get('children', [])]:
            try:
                self.read_manifest(entry, digest)
            except TrashError as exc:
                problems.append(exc.msg)
        for blob in entry.get('blobs', []) if entry.get('keep_blobs') else []:
            try:
                size = os.stat(self.blob_path(blob['digest'])).st_size
            except OSError as exc:
                problems.append('trash entry %s: cannot read kept blob %s: %s'
                                % (entry['id'], blob['digest'], exc.strerror))
                continue
            if size != blob['size']:
                problems.append('trash entry %s: kept blob %s has %d bytes, not %d'
                                % (entry['id'], blob['digest'], size, blob['size']))
        self._rotten.update(dict.fromkeys(problems))
        return problems

    def get_entry(self, registry, repository, entry_id):
        path = self.entry_path(registry, repository, entry_id)
        if not os.path.exists(path):
            raise TrashError('no trash entry %s for repository %s of %s' % (entry_id, repository, registry))
        return self._read_entry(path)

    def entries(self, registry, repository):
        """Entries of one repository, newest first; damaged ones are listed in self.damaged."""
        directory = self.entries_dir(registry, repository)
        try:
            # A repository may have a path component named like a file, "app.json": a directory.
            names = sorted((n for n in os.listdir(directory)
                            if n.endswith('.json') and os.path.isfile(os.path.join(directory, n))), reverse=True)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return []
            raise TrashError('cannot list trash entries in %s: %s' % (directory, exc.strerror))
        return self._read_entries(directory, names)

    def damaged_entries(self, registry, repository):
        """Ids of the entries of one repository that entries() could not read."""
        directory = self.entries_dir(registry, repository)
        return [os.path.basename(path)[:-len('.json')] for path in self._unreadable
                if os.path.dirname(path) == directory]

    def newest_entries(self, registry, repository, states=RESTORABLE_STATES, entries=None):
        """The newest entry in one of states for each removed tag and for each digest, of one repository.

        One pass over the repository's entries (entries, when the caller has read them already),
        however many tags a batch names.
        """
        by_tag, by_digest = {}, {}
        for entry in self.entries(registry, repository) if entries is None else entries:  # newest first: first wins
            if entry['state'] in states:
                by_digest.setdefault(entry['digest'], entry)
                for tag in entry['removed_tags']:
                    by_tag.setdefault(tag, entry)
        return by_tag, by_digest

    def all_entries(self, registry=None, repository=None):
        """Entries of the whole trash, or of one registry and/or repository, newest first."""
        top = self._path('entries')
        if registry is not None:
            top = os.path.join(top, registry_key(registry))
        found = []
        for directory, _dirs, names in os.walk(top):
            relative = os.path.relpath(directory, top).split(os.sep)
            if repository is not None and '/'.join(relative[0 if registry else 1:]) != repository:
                continue
            found.extend(self._read_entries(directory, [n for n in names if n.endswith('.json')]))
        return sorted(found, key=lambda e: e['id'], reverse=True)

    def disk_bytes(self):
        total = 0
        for directory, _dirs, names in os.walk(self.root):
            total += sum(os.lstat(os.path.join(directory, n)).st_size for n in names)
        return total

    def purge(self, doomed, check_mode=False):
        """Remove entries for good, with every stored manifest and blob no remaining entry needs.

        Returns what went (or would go): entry ids, blob digests and the bytes freed.
        """
        if not os.path.isdir(self.root):
            return {'entries': [], 'blobs': [], 'bytes': 0}
        with self._flock('.sweep.lock', fcntl.LOCK_EX), self.locked():
            doomed_ids = set(e['id'] for e in doomed)
            entries = self.all_entries()
            if self._unreadable:
                # An unreadable entry may reference anything: sweeping now could take what it needs.
                raise TrashError('refusing to purge while entries are damaged: %s'
                                 % '; '.join(self._unreadable.values()))
            gone = [e for e in entries if e['id'] in doomed_ids]
            kept = set()
            for entry in entries:
                if entry['id'] not in doomed_ids:
                    kept.update(entry_digests(entry))
            blobs = [d for d in self._stored_digests() if d not in kept]
            paths = [self.entry_path(e['registry'], e['repository'], e['id']) for e in gone]
            paths += [self.blob_path(d) for d in blobs]
            freed = sum(os.lstat(p).st_size for p in paths if os.path.exists(p))
            if not check_mode:
                for path in paths:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
                self._prune_empty_dirs(self._path('entries'))
        return {'entries': [e['id'] for e in gone], 'blobs': blobs, 'bytes': freed}

    def _stored_digests(self):
        top = self._path('blobs')
        digests = []
        for algorithm in sorted(os.listdir(top)) if os.path.isdir(top) else []:
            for name in os.listdir(os.path.join(top, algorithm)):
                if '.tmp-' not in name:
                    digests.append('%s:%s' % (algorithm, name))
        return digests

    def _prune_empty_dirs(self, top):
        for directory, _dirs, _names in sorted(os.walk(top, topdown=False), key=lambda w: -len(w[0])):
            if directory != top:
                with contextlib.suppress(OSError):
                    os.rmdir(directory)  # only succeeds when empty

    # --- plumbing ---

    def _read_entries(self, directory, names):
        """The entries of these files; one that cannot be read is left out and kept in self.damaged."""
        found = []
        for name in names:
            path = os.path.join(directory, name)
            try:
                found.append(self._read_entry(path))
            except TrashError as exc:
                self._unreadable.setdefault(path, exc.msg)
        return found

    def _read_entry(self, path):
        try:
            with open(path, 'rb') as f:
                entry = json.loads(f.read())
            if not isinstance(entry, dict) or entry.get('format') != FORMAT_VERSION or 'id' not in entry:
                raise ValueError('not a format %d entry' % FORMAT_VERSION)
        except (OSError, ValueError) as exc:
            raise TrashError('trash entry %s is damaged or unreadable: %s' % (path, getattr(exc, 'strerror', None) or exc))
        return entry

    def _write_entry(self, entry, durable=True):
        path = self.entry_path(entry['registry'], entry['repository'], entry['id'])
        self._atomic_write(path, json.dumps(entry, indent=2, sort_keys=True).encode() + b'\n', durable=durable)

    def _write_format_marker(self):
        path = os.path.join(self.root, 'trash.json')
        if os.path.exists(path):
            with open(path, 'rb') as f:
                try:
                    marker = json.loads(f.read())
                except ValueError:
                    marker = {}
            if not isinstance(marker, dict) or marker.get('format') != FORMAT_NAME or marker.get('version') != FORMAT_VERSION:
                raise TrashError('%s is not a version %d %s trash directory (%s says %r)'
                                 % (self.root, FORMAT_VERSION, FORMAT_NAME, path, marker))
            return
        self._atomic_write(path, json.dumps({'format': FORMAT_NAME, 'version': FORMAT_VERSION}).encode() + b'\n')

    def _make_dirs(self, directory):
        if os.path.isdir(directory):
            return
        parent = os.path.dirname(directory)
        self._make_dirs(parent)
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            return
        except OSError as exc:
            raise TrashError('cannot create trash directory %s: %s' % (directory, exc.strerror))
        # A new directory is durable only once its parent is synced; the first entry of a
        # new repository depends on it.
        parent_fd = os.open(parent, os.O_RDONLY)
        try:
            os.fsync(parent_fd)
        finally:
            os.close(parent_fd)

    def _atomic_write(self, path, data, before_rename=None, durable=True):
        directory = os.path.dirname(path)
        self._make_dirs(directory)
        tmp = '%s.tmp-%d-%s' % (path, os.getpid(), secrets.token_hex(4))
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                for chunk in ([data] if isinstance(data, bytes) else data):
                    _write_all(fd, chunk)
                os.fsync(fd)
                if before_rename:
                    before_rename()
            finally:
                os.close(fd)
            os.replace(tmp, path)
            if durable:
                dir_fd = os.open(directory, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise TrashError('cannot write %s: %s' % (path, exc.strerror or exc))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
