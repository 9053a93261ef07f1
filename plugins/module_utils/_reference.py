# -*- coding: utf-8 -*-
# Copyright (c) oci_registry.trash contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: no compatibility promise outside it.

"""Names, digests and manifest media types, as the distribution spec defines them.

Every name is checked here before it reaches a URL or a path on disk: the grammar
admits no '/' at either end, no '..' and no empty component, so a checked name can
never leave the trash directory.
"""

from __future__ import annotations

import hashlib
import json
import re

from ansible_collections.oci_registry.trash.plugins.module_utils._errors import TrashError

DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json'
DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json'
OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
OCI_INDEX = 'application/vnd.oci.image.index.v1+json'

# Without every type listed, a registry may convert the manifest (schema 1 on 2.x,
# one platform's child on 3.x) and report the digest of something else.
MANIFEST_TYPES = (DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX)
INDEX_TYPES = (DOCKER_MANIFEST_LIST, OCI_INDEX)

_COMPONENT = r'[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*'
REPOSITORY_RE = re.compile(r'^%s(?:/%s)*$' % (_COMPONENT, _COMPONENT))
TAG_RE = re.compile(r'^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$')
# The registered algorithms of the OCI image spec, with their encoded lengths.
DIGEST_RES = {
    'sha256': re.compile(r'^[a-f0-9]{64}$'),
    'sha512': re.compile(r'^[a-f0-9]{128}$'),
}
# distribution's limit on a whole repository name (ErrNameTooLong).
REPOSITORY_MAX = 255


def check_repository(name):
    if not isinstance(name, str) or not REPOSITORY_RE.match(name) or len(name) > REPOSITORY_MAX:
        raise TrashError(
            'invalid repository name %r: a repository is lowercase components of letters and digits, '
            'separated by ".", "_", "__" or "-" and joined by "/", at most %d characters'
            % (name, REPOSITORY_MAX))
    return name


def check_tag(tag):
    if not isinstance(tag, str) or not TAG_RE.match(tag):
        raise TrashError(
            'invalid tag %r: a tag is 1 to 128 letters, digits, "_", "." or "-", '
            'and does not start with "." or "-"' % (tag,))
    return tag


def check_digest(digest):
    algorithm, sep, encoded = digest.partition(':') if isinstance(digest, str) else ('', '', '')
    pattern = DIGEST_RES.get(algorithm)
    if not sep or pattern is None or not pattern.match(encoded):
        raise TrashError(
            'invalid digest %r: expected "sha256:" followed by 64 lowercase hex digits '
            '(or "sha512:" and 128)' % (digest,))
    return digest


def is_digest(reference):
    return ':' in reference


def compute_digest(data, algorithm='sha256'):
    return '%s:%s' % (algorithm, hashlib.new(algorithm, data).hexdigest())


def digest_matches(digest, data):
    algorithm = digest.partition(':')[0]
    return algorithm in DIGEST_RES and compute_digest(data, algorithm) == digest


def manifest_references(body, media_type):
    """What a manifest needs to exist before a registry accepts it.

    Returns (blobs, children), lists of descriptors ({'digest', 'size'}): the config
    and layers of an image manifest, or the child manifests of an index.
    """
    try:
        doc = json.loads(body)
        if media_type in INDEX_TYPES:
            return [], [_descriptor(m) for m in doc.get('manifests', [])]
        blobs = [_descriptor(doc['config'])] if 'config' in doc else []
        blobs.extend(_descriptor(layer) for layer in doc.get('layers', []))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise TrashError('manifest of type %s is malformed: %s' % (media_type, exc))
    return blobs, []


def _descriptor(doc):
    return {'digest': check_digest(doc['digest']), 'size': int(doc.get('size', 0)),
            'media_type': doc.get('mediaType')}
