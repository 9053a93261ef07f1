"""A recording HTTP proxy that gives a real distribution 2.8 registry two 3.x features.

No registry here deletes by tag or paginates ``tags/list`` (2.8 answers tag DELETE
with 400 and ignores ``n`` and ``last``), so this proxy stands in for exactly those
two branches, the way distribution 3.x implements them:

- ``DELETE /v2/<name>/manifests/<tag>`` removes the tag's directory from the
  registry's storage and answers 202 (404 MANIFEST_UNKNOWN when the tag is absent;
  the registry behind must have deletes enabled, which the proxy does not check);
- ``GET /v2/<name>/tags/list?n=..&last=..`` answers one sorted page and a ``Link``
  header to the next one.

Every other request is forwarded unchanged (method, path, query, headers including
Authorization and Host, body) and the answer streamed back with its status and
headers. Each feature can be switched off, which leaves a pure recording proxy.
Everything the proxy saw is in ``exchanges``, each with the scheme of the request's
Authorization header (``Basic``, ``Bearer`` or None), never its secret. Plain HTTP
upstreams only. Subclasses change how requests are answered through ``handler_class``.
"""

import http.client
import http.server
import json
import re
import shutil
import threading
from collections import namedtuple
from urllib.parse import parse_qs, quote, urlsplit

from support.local_server import LocalServer

# The distribution grammar, kept here so the harness does not trust the code it tests
# with the one thing that could make it delete outside the registry's storage.
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_MANIFEST_BY_TAG = re.compile(
    rf"^/v2/(?P<name>{_COMPONENT}(?:/{_COMPONENT})*)/manifests/(?P<tag>[a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}})$")
_TAG_LIST = re.compile(rf"^/v2/(?P<name>{_COMPONENT}(?:/{_COMPONENT})*)/tags/list$")
_ACCEPT_MANIFESTS = ", ".join((
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
))
_HOP_BY_HOP = frozenset(("connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                         "te", "trailers", "transfer-encoding", "upgrade"))
_CHUNK = 64 * 1024
_UPSTREAM_TIMEOUT = 30

# auth: the scheme of the request's Authorization header, or None without one.
Exchange = namedtuple("Exchange", "method path status digest auth", defaults=(None,))


class TagDeleteProxy(LocalServer):
    """``TagDeleteProxy(registry, tag_delete=True, paginate_tags=True)``; ``url`` after ``start()``."""

    handler_class = None  # a subclass of _Handler; None is _Handler itself

    def __init__(self, registry, *, tag_delete=True, paginate_tags=True):
        if registry.tls:
            raise ValueError("TagDeleteProxy forwards to plain HTTP registries only")
        self.registry = registry
        self.tag_delete = tag_delete
        self.paginate_tags = paginate_tags
        self._exchanges = []
        self._lock = threading.Lock()
        super().__init__(type("Handler", (self.handler_class or _Handler,), {"proxy": self}))

    @property
    def host(self):
        return self.address

    @property
    def url(self):
        return "http://" + self.host

    @property
    def exchanges(self):
        with self._lock:
            return list(self._exchanges)

    def seen(self, *methods):
        """The exchanges with one of these methods (all when none is given), in order."""
        return [e for e in self.exchanges if not methods or e.method in methods]

    def clear(self):
        with self._lock:
            self._exchanges.clear()

    def _record(self, exchange):
        with self._lock:
            self._exchanges.append(exchange)

    def _tag_dir(self, name, tag):
        return (self.registry.storage_root / "docker/registry/v2/repositories" / name
                / "_manifests/tags" / tag)


class _Handler(http.server.BaseHTTPRequestHandler):
    proxy = None  # set on the subclass each proxy makes
    protocol_version = "HTTP/1.1"
    timeout = _UPSTREAM_TIMEOUT  # an idle keep-alive connection frees its thread

    def do_GET(self):
        self._handle()

    do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = do_GET

    def log_message(self, format, *args):
        pass  # the exchanges list is the log

    def _handle(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True  # the unread body would be taken for the next request
            return self._answer(501, {"Content-Type": "text/plain"}, b"chunked request bodies are not supported\n")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = urlsplit(self.path)
        tag_match = _MANIFEST_BY_TAG.match(parts.path)
        list_match = _TAG_LIST.match(parts.path)
        if self.command == "DELETE" and tag_match and self.proxy.tag_delete:
            self._delete_tag(tag_match["name"], tag_match["tag"])
        elif self.command == "GET" and list_match and self.proxy.paginate_tags:
            self._tags_page(list_match["name"], parse_qs(parts.query))
        else:
            self._forward(self.command, self.path, body)

    def _upstream(self, method, path, body=None, accept=None):
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        if accept:
            headers["Accept"] = accept
        # A connection per request: a registry restarted mid-test never leaves a dead one behind.
        connection = http.client.HTTPConnection("127.0.0.1", self.proxy.registry.port, timeout=_UPSTREAM_TIMEOUT)
        connection.request(method, path, body=body or None, headers=headers)
        return connection, connection.getresponse()

    def _upstream_read(self, method, path, accept=None):
        connection, response = self._upstream(method, path, accept=accept)
        try:
            return response, response.read()
        finally:
            connection.close()

    def _forward(self, method, path, body):
        connection, response = self._upstream(method, path, body)
        self._record(response.status, response.getheader("Docker-Content-Digest"))
        try:
            self.send_response_only(response.status, response.reason)
            headers = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
            for key, value in headers:
                self.send_header(key, value)
            has_body = method != "HEAD" and response.status >= 200 and response.status not in (204, 304)
            chunked = has_body and response.getheader("Content-Length") is None
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            sent = 0
            while has_body:
                chunk = response.read(_CHUNK)
                sent += len(chunk)
                if chunked:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                elif chunk:
                    self.wfile.write(chunk)
                if not chunk:
                    break
            if has_body and not chunked and sent < int(response.getheader("Content-Length")):
                # The registry broke off mid-body (distribution does for a blob its cache claims
                # and its storage lost) and http.client says so only with an early end. Closing
                # tells the client, as the registry's own close does; kept alive, the client
                # would wait out its timeout for bytes that never come.
                self.close_connection = True
        finally:
            connection.close()

    def _relay(self, response, body):
        """Answer with an upstream response already read, as the registry gave it."""
        headers = {k: v for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        self._answer(response.status, headers, body)

    def _delete_tag(self, name, tag):
        # The registry itself decides auth and existence, so a wrong password or an
        # unknown name gets the registry's own answer.
        response, found = self._upstream_read("GET", "/v2/%s/manifests/%s" % (name, tag), accept=_ACCEPT_MANIFESTS)
        if response.status != 200:
            self._relay(response, found)
            return
        try:
            shutil.rmtree(self.proxy._tag_dir(name, tag))
        except FileNotFoundError:  # another request removed it in between
            self._registry_error(404, "MANIFEST_UNKNOWN", "manifest unknown")
        else:
            self._answer(202, {"Docker-Distribution-Api-Version": "registry/2.0"}, b"")

    def _tags_page(self, name, query):
        response, found = self._upstream_read("GET", "/v2/%s/tags/list" % name)
        if response.status != 200:
            self._relay(response, found)
        else:
            tags = sorted(json.loads(found).get("tags") or [])
            last = query.get("last", [None])[0]
            if last is not None:
                tags = [t for t in tags if t > last]
            headers = {"Content-Type": "application/json; charset=utf-8",
                       "Docker-Distribution-Api-Version": "registry/2.0"}
            size = query.get("n", [None])[0]
            if size is not None and len(tags) > int(size):
                tags = tags[:int(size)]
                headers["Link"] = '</v2/%s/tags/list?n=%s&last=%s>; rel="next"' % (name, size, quote(tags[-1]))
            self._answer(200, headers, json.dumps({"name": name, "tags": tags}).encode())

    def _registry_error(self, status, code, message):
        body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
        self._answer(status, {"Content-Type": "application/json; charset=utf-8"}, body)

    def _record(self, status, digest=None):
        # Before the first byte of the answer: once the client has it, a test may look.
        scheme = self.headers.get("Authorization", "").split(" ", 1)[0] or None
        self.proxy._record(Exchange(self.command, self.path, status, digest, scheme))

    def _answer(self, status, headers, body):
        self._record(status, headers.get("Docker-Content-Digest"))
        self.send_response_only(status)
        for key, value in headers.items():
            if key.lower() != "content-length":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
