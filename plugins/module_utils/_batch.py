# -*- coding: utf-8 -*-
# Copyright (c) oci_registry.trash contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: no compatibility promise outside it.

"""How a batch runs: items at once, each failure its own, and what a result shows of an entry."""

from __future__ import annotations

import contextlib
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.oci_registry.trash.plugins.module_utils._errors import TrashError


DEFAULT_PARALLEL = 8


def unique(items):
    return list(dict.fromkeys(items))


def parallel_map(function, items, parallel, progress=None):
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


def public_view(entry, keys=PUBLIC_KEYS):
    """What a result shows of an entry: the keys asked for, and the children by digest."""
    public = {k: entry.get(k) for k in keys}
    public['children'] = [c['digest'] for c in entry.get('children', [])]
    return public


def writing(store, nothing_to_write):
    """The trash's shared lock, which purge takes exclusively, around every write of a trash or restore.

    Check mode, or a run with nothing to do, writes nothing, not even a lock file.
    """
    return contextlib.nullcontext() if nothing_to_write else store.in_use()


def memo(function):
    """function with its answers kept for the rest of one operation."""
    answers = {}

    def remembered(*args):
        if args not in answers:
            answers[args] = function(*args)
        return answers[args]
    return remembered


def attempt(function, *args):
    """(result, None), or (None, the failure) for a TrashError: one item's failure stays its own."""
    try:
        return function(*args), None
    except TrashError as exc:
        return None, dict(exc.details, msg=exc.msg)


def batch_error(failures, total, repository, **result):
    """One failure of one item keeps its own words; in a batch, each failure names its item."""
    if total == 1:
        msg = failures[0]['msg']
    else:
        msg = '%d of %d failed in %s: %s' % (len(failures), total, repository, '; '.join(
            '%s: %s' % (f.get('tag') or f.get('entry') or f.get('digest'), f['msg']) for f in failures))
    return TrashError(msg, failures=failures, **result)
