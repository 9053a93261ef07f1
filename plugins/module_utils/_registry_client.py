# -*- coding: utf-8 -*-
# Copyright (c) oci_registry.trash contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: no compatibility promise outside it.

"""The one client of the registry HTTP API v2 that every module goes through."""

from __future__ import annotations

import base64
import json
import os
import re
import ssl
import threading
import time
from collections import namedtuple
from urllib.parse import quote, urljoin, urlsplit

from ansible_collections.oci_registry.trash.plugins.module_utils._errors import RegistryError, TrashError
from ansible_collections.oci_registry.trash.plugins.module_utils._reference import (
    MANIFEST_TYPES,
    compute_digest,
    digest_matches,
    is_digest,
)

try:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.exceptions import HTTPError, MaxRetryError, ProtocolError, ReadTimeoutError, SSLError
    from urllib3.util.retry import Retry
except ImportError as exc:  # reported when a client is made, so docs and sanity still load
    requests = None
    REQUESTS_IMPORT_ERROR = exc
else:
    REQUESTS_IMPORT_ERROR = None

Manifest = namedtuple('Manifest', ['digest', 'media_type', 'body'])

ACCEPT_MANIFESTS = ', '.join(MANIFEST_TYPES)
TAG_PAGE_SIZE = 1000
# Only what is safe to send twice is retried; a DELETE that was retried and then
# answers 404 has succeeded, which delete_manifest() already treats as done.
RETRY_METHODS = frozenset(['GET', 'HEAD', 'PUT', 'DELETE'])
RETRY_STATUSES = (429, 502, 503, 504)
# A Retry-After longer than this is cut short, so that retries stay bounded in time too.
MAX_RETRY_AFTER = 30


_USERINFO = re.compile(r'^([^/]*//)?[^/]*@')


def _shown(url):
    """A registry URL fit for a message: whatever stands before an '@' may be a password."""
    return repr(_USERINFO.sub(lambda m: (m.group(1) or '') + '***@', str(url)))


def registry_base_url(registry_url):
    """Check a registry URL and return it normalised, without a trailing slash."""
    try:
        parts = urlsplit(registry_url or '')
        port_ok = parts.port != 0
    except ValueError:
        parts, port_ok = None, False
    if parts is not None and (parts.username or parts.password or '@' in parts.netloc):
        raise TrashError('registry_url must not contain credentials: use the username and password options')
    if parts is None or parts.scheme not in ('http', 'https') or not parts.hostname:
        raise TrashError('invalid registry_url %s: expected http(s)://host[:port], '
                         'for example https://registry.example.com' % _shown(registry_url))
    if parts.query or parts.fragment:
        raise TrashError('invalid registry_url %s: it must not have a query or fragment' % _shown(registry_url))
    if not port_ok:
        raise TrashError('invalid registry_url %s: the port is not a number from 1 to 65535' % _shown(registry_url))
    return '%s://%s%s' % (parts.scheme, parts.netloc.lower(), parts.path.rstrip('/'))


class RegistryClient:
    """A keep-alive session to one registry, with Basic or Bearer token auth and bounded retries.

    Methods return None or False for "not there" (404) and raise RegistryError for
    every other failure, so callers only handle the cases they mean to.
    """

    def __init__(self, registry_url, username=None, password=None, validate_certs=True,
                 ca_path=None, timeout=30, retries=3, pool_size=10):
        if requests is None:
            raise TrashError('the Python library "requests" is required on the Ansible controller '
                             '(pip install requests): %s' % REQUESTS_IMPORT_ERROR)
        self.url = registry_base_url(registry_url)
        self.timeout = timeout
        if ca_path and not os.path.exists(ca_path):
            raise TrashError('ca_path %s does not exist' % ca_path)
        self.session = requests.Session()
        # Passed with every request: requests lets REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE
        # override a session's verify, and the task's options must win.
        self.verify = (ca_path or True) if validate_certs else False
        self.auth = _Auth(self, username, password)
        self.authenticated = bool(username)
        retry = _Retry(total=retries, connect=retries, read=retries, status=retries,
                       backoff_factor=0.2, status_forcelist=RETRY_STATUSES,
                       allowed_methods=RETRY_METHODS, respect_retry_after_header=True,
                       raise_on_status=False)
        adapter = HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=pool_size)
        self.session.mount('http://', adapter)
        self.session.mount('https://', adapter)
        self.session.headers['User-Agent'] = 'oci_registry.trash'

    def close(self):
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- the API ---

    def ping(self):
        self._request('GET', '/v2/', 'check registry')

    def get_manifest(self, repository, reference):
        """The manifest as stored, with its digest checked, or None when absent."""
        path = self._manifest_path(repository, reference)
        response = self._request('GET', path, 'get manifest', headers={'Accept': ACCEPT_MANIFESTS}, missing_ok=True)
        if response is None:
            return None
        body = response.content
        digest = compute_digest(body)
        reported = response.headers.get('Docker-Content-Digest')
        expected = reference if is_digest(reference) else reported
        if expected and not digest_matches(expected, body):
            raise RegistryError('get manifest', self.url + path, message=(
                'the registry sent a manifest whose content does not hash to %s (it hashes to %s)'
                % (expected, digest)))
        if is_digest(reference):
            digest = reference
        media_type = response.headers.get('Content-Type', '').split(';')[0].strip()
        if media_type not in MANIFEST_TYPES:
            media_type = self._declared_media_type(body) or media_type
        if media_type not in MANIFEST_TYPES:
            raise RegistryError('get manifest', self.url + path, message=(
                'unsupported manifest type %r (supported: %s)' % (media_type, ', '.join(MANIFEST_TYPES))))
        return Manifest(digest, media_type, body)

    def manifest_digest(self, repository, reference):
        """The digest a tag or digest resolves to now, or None when absent (a HEAD)."""
        path = self._manifest_path(repository, reference)
        response = self._request('HEAD', path, 'check manifest', headers={'Accept': ACCEPT_MANIFESTS}, missing_ok=True)
        if response is None:
            return None
        digest = response.headers.get('Docker-Content-Digest')
        if not digest:  # a registry that omits the header on HEAD: ask for the body
            manifest = self.get_manifest(repository, reference)
            return manifest.digest if manifest else None
        return digest

    def list_tags(self, repository):
        """Every tag of a repository, following pagination; [] for an unknown repository."""
        url = '/v2/%s/tags/list?n=%d' % (repository, TAG_PAGE_SIZE)
        tags = []
        while url:
            response = self._request('GET', url, 'list tags', missing_ok=True)
            if response is None:
                return tags
            try:
                tags.extend(response.json().get('tags') or [])
            except ValueError:
                raise RegistryError('list tags', self._absolute(url), response.status_code,
                                    message='the answer is not JSON')
            next_link = response.links.get('next', {}).get('url')
            url = urljoin(self._absolute(url), next_link) if next_link else None
        return tags

    def delete_manifest(self, repository, reference):
        """DELETE a manifest by digest (or a tag, where the registry allows it); False when already gone."""
        path = self._manifest_path(repository, reference)
        return self._request('DELETE', path, 'delete manifest', missing_ok=True) is not None

    def put_manifest(self, repository, reference, body, media_type):
        path = self._manifest_path(repository, reference)
        response = self._request('PUT', path, 'put manifest', data=body, headers={'Content-Type': media_type})
        digest = response.headers.get('Docker-Content-Digest') or compute_digest(body)
        if not digest_matches(digest, body):
            raise RegistryError('put manifest', self.url + path, response.status_code, message=(
                'the registry stored the manifest under digest %s, which is not the digest of the bytes sent'
                % digest))
        return digest

    def blob_exists(self, repository, digest):
        """Whether the registry can really serve a blob.

        A HEAD alone is not enough: distribution's blob-descriptor cache still answers 200
        for blobs that garbage collection removed while it ran. Reading the first byte
        asks the storage itself.
        """
        path = '/v2/%s/blobs/%s' % (repository, digest)
        head = self._request('HEAD', path, 'check blob', missing_ok=True)
        if head is None:
            return False
        if head.headers.get('Content-Length') == '0':
            return True
        probe = self._request('GET', path, 'check blob', missing_ok=True, headers={'Range': 'bytes=0-0'},
                              stream=True)
        if probe is None:
            return False
        with probe:
            try:
                return len(probe.raw.read(1, decode_content=False)) == 1
            except (ProtocolError, requests.exceptions.RequestException):
                # It announced the byte and sent none: the cache knows the blob, the storage does not.
                return False

    def blob_chunks(self, repository, digest):
        """The bytes of a blob, streamed in chunks (never whole in memory); None when absent."""
        path = '/v2/%s/blobs/%s' % (repository, digest)
        response = self._request('GET', path, 'get blob', missing_ok=True, stream=True)
        if response is None:
            return None
        return _closing_chunks(response)

    def upload_blob(self, repository, data, digest=None):
        """A monolithic upload (POST then PUT) of bytes or an open file; returns the digest."""
        digest = digest or compute_digest(data)
        response = self._request('POST', '/v2/%s/blobs/uploads/' % repository, 'start blob upload')
        location = response.headers.get('Location')
        if not location:
            raise RegistryError('start blob upload', self.url + '/v2/%s/blobs/uploads/' % repository,
                                response.status_code, message='the registry sent no upload Location')
        location = urljoin(self.url + '/', location)
        separator = '&' if '?' in location else '?'
        self._request('PUT', location + separator + 'digest=' + quote(digest), 'upload blob', data=data,
                      headers={'Content-Type': 'application/octet-stream'})
        return digest

    def mount_blob(self, repository, digest, source_repository):
        """Link a blob from another repository of the registry, without sending it; False when refused."""
        path = '/v2/%s/blobs/uploads/?mount=%s&from=%s' % (repository, quote(digest), quote(source_repository))
        response = self._request('POST', path, 'mount blob')
        if response.status_code == 201:
            return True
        # 202: the registry opened an upload instead; leave it to expire, the caller uploads.
        return False

    def deletes_enabled(self, repository):
        """Whether this registry accepts deletes, asked without deleting anything.

        A DELETE of a digest no manifest can have answers 404 where deletes are on and
        405 where they are off or the registry is read-only. None when it cannot tell.
        """
        path = self._manifest_path(repository, 'sha256:' + '0' * 64)
        try:
            self._request('DELETE', path, 'check that deletes are enabled', missing_ok=True)
        except RegistryError as exc:
            if exc.status == 405:
                return False
            if exc.status in (401, 403):
                raise
            return None
        return True

    # --- plumbing ---

    def _manifest_path(self, repository, reference):
        return '/v2/%s/manifests/%s' % (repository, reference)

    def _absolute(self, path):
        return path if '://' in path else self.url + path

    def _request(self, method, path, operation, missing_ok=False, headers=None, data=None, stream=False):
        url = self._absolute(path)
        headers = dict(headers or {})
        response = self._send(method, url, operation, headers, data, stream)
        if response.status_code == 401 and self.auth.answer_challenge(response, operation, url):
            if hasattr(data, 'seek'):
                data.seek(0)
            response = self._send(method, url, operation, headers, data, stream)
        if response.status_code < 300:
            return response
        if response.status_code == 404 and missing_ok:
            return None
        raise self._error(operation, url, method, response)

    def _send(self, method, url, operation, headers, data, stream):
        headers.update(self.auth.header_for(method, url))
        _attempts.outcome_unknown = False
        try:
            # Always streamed, so that a whole answer, not only each read, is bounded by the timeout.
            response = self.session.request(method, url, headers=headers, data=data, timeout=self.timeout,
                                            allow_redirects=True, stream=True, verify=self.verify)
        except requests.exceptions.SSLError as exc:
            raise RegistryError(operation, url, message='TLS error: %s' % _reason(exc), hint=(
                'if the registry uses a private CA, set ca_path to its certificate'))
        except requests.exceptions.Timeout:
            raise RegistryError(operation, url, message='no answer within %s seconds' % self.timeout,
                                outcome_unknown=_attempts.outcome_unknown)
        except requests.exceptions.ConnectionError as exc:
            raise RegistryError(operation, url, message='cannot connect to the registry: %s' % _reason(exc),
                                outcome_unknown=_attempts.outcome_unknown)
        except requests.exceptions.RequestException as exc:
            raise RegistryError(operation, url, message=_reason(exc), outcome_unknown=_attempts.outcome_unknown)
        if not stream:
            self._read_whole(response, operation, url)
        return response

    def _read_whole(self, response, operation, url):
        """Read an answer's body within the timeout, counted from its headers.

        A registry (or anything on the way) that sends a byte now and then never lets a
        single read time out; this bounds the whole answer instead.
        """
        read = getattr(response.raw, 'read1', None)
        if read is None:  # an older urllib3, without read1: each read is bounded, the whole answer is not
            return response.content
        deadline = time.monotonic() + self.timeout
        chunks, message = [], None
        try:
            while True:
                chunk = read(1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    message = 'the answer did not arrive whole within %s seconds' % self.timeout
                    break
        except (HTTPError, OSError) as exc:
            message = 'the answer broke off: %s' % _reason(exc)
        if message:
            response.close()  # not consumed: the connection is dropped, never reused half-read
            raise RegistryError(operation, url, message=message, outcome_unknown=True)
        # What requests would have read itself without stream=True: .content, .json() and .text work.
        response._content = b''.join(chunks)
        response._content_consumed = True
        response.close()  # consumed: the connection goes back to the pool, kept alive
        return response._content

    def _error(self, operation, url, method, response):
        code, message = _registry_error(response)
        status = response.status_code
        hint = None
        if status == 401:
            hint = ('authentication failed: check username and password' if self.authenticated
                    else 'the registry requires authentication: set username and password')
        elif status == 403:
            hint = 'access denied: these credentials may not %s this repository' % method.lower()
        elif status == 405 and method == 'DELETE':
            hint = ('deletes are disabled on this registry (storage.delete.enabled is false) '
                    'or it is read-only')
        elif status == 405:
            hint = 'the registry refused the method: it may be read-only'
        return RegistryError(operation, url, status, code, message, hint, outcome_unknown=_attempts.outcome_unknown)

    @staticmethod
    def _declared_media_type(body):
        try:
            return json.loads(body).get('mediaType')
        except (ValueError, AttributeError):
            return None


class _Attempts(threading.local):
    """Per thread, for the request under way: whether a try of it may have acted unseen."""
    outcome_unknown = False


_attempts = _Attempts()


class _Retry(Retry if requests else object):
    """Retries that give up at once on TLS failures (a certificate does not fix itself in a second)
    and never wait longer than MAX_RETRY_AFTER for a registry that asks to."""

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        if isinstance(error, (SSLError, ssl.SSLError)):
            raise MaxRetryError(_pool, url, error)
        if isinstance(error, (ReadTimeoutError, ProtocolError)):
            # The request went out and its answer never came back whole: the registry may have acted.
            _attempts.outcome_unknown = True
        return super().increment(method, url, response, error, _pool, _stacktrace)

    def get_retry_after(self, response):
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(seconds, MAX_RETRY_AFTER)


def _closing_chunks(response, size=1 << 20):
    with response:
        try:
            yield from response.iter_content(size)
        except requests.exceptions.RequestException as exc:
            raise RegistryError('get blob', response.url, message='the download broke off: %s' % _reason(exc))


def _registry_error(response):
    """The first error code and message of a registry's JSON error body, if it has one."""
    try:
        errors = response.json().get('errors') or []
        first = errors[0]
        return first.get('code'), first.get('message')
    except (ValueError, AttributeError, IndexError, TypeError):
        return None, (response.text or '').strip()[:200] or None


def _reason(exc):
    """The innermost reason of a requests exception, without its wall of wrappers."""
    reason = exc
    while True:
        inner = getattr(reason, 'reason', None)
        if not isinstance(inner, BaseException):
            inner = reason.args[0] if reason.args and isinstance(reason.args[0], BaseException) else None
        inner = inner or reason.__cause__ or reason.__context__
        if inner is None or inner is reason:
            return str(reason)
        reason = inner


_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
_REPOSITORY_PATH = re.compile(r'/v2/(.+?)/(?:manifests|blobs|tags)/')
# Token lifetime assumed when the issuer does not say (the token spec's default).
DEFAULT_TOKEN_SECONDS = 60


class _Auth:
    """HTTP Basic, or the Bearer token flow of Docker Hub, Harbor, GitLab and Quay.

    Nothing is sent until the registry asks (a 401 with WWW-Authenticate): a registry
    that needs no credentials never sees them, and a token registry never sees the
    password, which only its token realm gets. A redirect elsewhere (say, to blob
    storage) never carries them either: the Authorization header is set per request,
    and requests drops it across hosts.
    """

    def __init__(self, client, username, password):
        self.client = client
        self.basic = None
        if username:
            raw = ('%s:%s' % (username, password or '')).encode('utf-8')
            self.basic = 'Basic ' + base64.b64encode(raw).decode('ascii')
        self.scheme = None  # learnt from the first challenge: 'basic' or 'bearer'
        self.tokens = {}  # scope -> (token, expires at)
        self.lock = threading.Lock()
        self.registry_host = urlsplit(client.url).netloc

    def header_for(self, method, url):
        if urlsplit(url).netloc != self.registry_host:
            return {}
        if self.scheme == 'bearer':
            token = self._cached(_scope_for(method, url))
            return {'Authorization': 'Bearer ' + token} if token else {}
        if self.scheme == 'basic' and self.basic:
            return {'Authorization': self.basic}
        return {}

    def answer_challenge(self, response, operation, url):
        """Meet a 401's challenge; True when the request is worth sending again."""
        challenge = response.headers.get('WWW-Authenticate', '')
        scheme = challenge.split(' ', 1)[0].lower()
        if scheme == 'basic':
            self.scheme = 'basic'
            # Worth resending when this request went without credentials; several of a batch's
            # first requests can meet the challenge at once, and each needs its second try.
            sent = response.request.headers.get('Authorization', '')
            return self.basic is not None and not sent.startswith('Basic ')
        if scheme != 'bearer':
            return False
        params = dict(_CHALLENGE_PARAM.findall(challenge))
        realm = params.get('realm')
        if not realm:
            return False
        self.scheme = 'bearer'
        scope = params.get('scope') or _scope_for(response.request.method, url)
        query = {'service': params.get('service', '')}
        if scope:
            query['scope'] = scope
        headers = {'Authorization': self.basic} if self.basic else {}
        try:
            answer = self.client.session.get(realm, params=query, headers=headers, timeout=self.client.timeout,
                                             verify=self.client.verify, stream=True)
        except requests.exceptions.RequestException as exc:
            raise RegistryError('get token', realm, message='cannot reach the token service: %s' % _reason(exc))
        self.client._read_whole(answer, 'get token', realm)  # bounded like every answer read whole
        if answer.status_code != 200:
            code, message = _registry_error(answer)
            raise RegistryError('get token', realm, answer.status_code, code, message, hint=(
                'authentication failed: check username and password' if self.basic
                else 'the registry requires authentication: set username and password'))
        try:
            body = answer.json()
            token = body.get('token') or body['access_token']
        except (ValueError, KeyError, AttributeError):
            raise RegistryError('get token', realm, answer.status_code, message='the token service sent no token')
        lifetime = body.get('expires_in') or DEFAULT_TOKEN_SECONDS
        with self.lock:
            # Ten seconds early, so a token never expires between check and use.
            self.tokens[_scope_for(response.request.method, url)] = (token, time.time() + lifetime - 10)
        return True

    def _cached(self, scope):
        with self.lock:
            token, expires = self.tokens.get(scope, (None, 0))
        return token if expires > time.time() else None


def _scope_for(method, url):
    """The token scope a request needs, as distribution asks for it."""
    match = _REPOSITORY_PATH.search(urlsplit(url).path)
    if not match:
        return ''
    actions = {'GET': 'pull', 'HEAD': 'pull', 'DELETE': 'delete'}.get(method, 'pull,push')
    return 'repository:%s:%s' % (match.group(1), actions)
