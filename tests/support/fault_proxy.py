"""A proxy that puts faults between the modules and a real registry.

Real registries sit behind load balancers and networks that fail in a handful of ways;
``FaultProxy`` plays each of them, for a seeded share of the requests it sees or for
the requests a rule picks:

- ``drop``: close the connection without an answer, the request never forwarded;
- ``lose_answer``: forward the request (the registry acts on it), then close the
  connection without passing the answer on, as when a reply is lost in transit;
- ``delay``: wait ``seconds`` and then forward; longer than the client's timeout, the
  client gives up while the registry still acts on the request afterwards;
- ``status``: answer ``status`` (500, 502, 503, 429...) with a registry-style JSON error
  and, when given, a ``Retry-After``, without asking the registry; with ``close``, it then
  closes the connection, saying ``Connection: close`` as a load balancer that sheds load
  does, and otherwise keeps it alive for the next request;
- ``trickle``: forward, then send the answer one byte every ``seconds``: a connection
  that never goes quiet long enough for a read timeout;
- ``redirect``: answer 307 to ``location`` (a rule computes it from the request);
- ``hold``: wait until ``gate`` (a threading.Event or Barrier) lets go, then forward.

Which request gets which fault is drawn from a generator seeded with the seed, the
method, the path and how many times that method and path came before, so a seed replays
the same faults for the same requests whatever order parallel requests arrive in.
``rule(method, path, headers)`` may decide first: a Fault, ``FORWARD`` (no fault) or
None (let the draw decide); ``never(method, fault)`` may veto a drawn fault (the request
is then forwarded). ``first_tries(fault, times=1, methods=IDEMPOTENT, path=None)`` makes
the rule of a registry that is flaky the plain way: each distinct request (method and
full path) of those methods, its path matching the regular expression ``path`` when
given, gets ``fault`` on its first ``times`` tries, or on every try with ``times=None``.

Every request handled is kept in ``attempts``: start and end time, method, path, the
fault given (None when forwarded), the status answered (None when none was), the
``X-Test-Call`` header (a test that labels the calls of its client sees which attempts
one call made) and the scheme of the Authorization header, never its secret. An attempt
is kept once its request is handled, which can be just after the client has the answer:
``quiesce()`` before counting them. ``exchanges`` (of ``TagDeleteProxy``) leaves out the
requests that got no answer (``drop``, ``lose_answer``).
"""

import json
import random
import re
import threading
import time
from collections import Counter, namedtuple
from dataclasses import dataclass
from typing import Any

from support.tag_delete_proxy import TagDeleteProxy, _Handler

ERROR_CODES = {429: "TOOMANYREQUESTS", 500: "UNKNOWN", 502: "UNAVAILABLE", 503: "UNAVAILABLE",
               504: "UNAVAILABLE"}
CALL_HEADER = "X-Test-Call"
QUIESCE_TIMEOUT = 30


@dataclass(frozen=True)
class Fault:
    kind: str
    status: int = None
    retry_after: str = None
    seconds: float = 0.0
    location: str = None
    gate: Any = None
    close: bool = False


FORWARD = Fault("forward")
# What a client may resend with no change in outcome; the others are never faulted by the draw.
IDEMPOTENT = frozenset(("GET", "HEAD", "PUT", "DELETE"))

Attempt = namedtuple("Attempt", "start end method path fault status call auth")


def first_tries(fault, times=1, methods=IDEMPOTENT, path=None):
    """A rule: ``fault`` for the first ``times`` tries (every try with None) of each distinct request.

    A request is its method and full path; only those with a method in ``methods`` and, with
    ``path`` (a regular expression, searched), a matching path count. The rest is left to the draw.
    """
    methods = frozenset(methods)
    pattern = re.compile(path) if path else None
    tries = Counter()
    lock = threading.Lock()

    def rule(method, request_path, headers):
        if method not in methods or (pattern and not pattern.search(request_path)):
            return None
        with lock:
            tries[method, request_path] += 1
            return fault if times is None or tries[method, request_path] <= times else None
    return rule


class _FaultHandler(_Handler):
    def _handle(self):
        start = time.monotonic()
        self.proxy._active(+1)
        self._status = None
        fault = self.proxy._decide(self.command, self.path, self.headers)
        try:
            if fault is None:
                super()._handle()
            else:
                getattr(self, "_fault_" + fault.kind)(fault)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up first, as clients that time out do
        finally:
            scheme = self.headers.get("Authorization", "").split(" ", 1)[0] or None
            self.proxy._attempt(Attempt(start, time.monotonic(), self.command, self.path, fault, self._status,
                                        self.headers.get(CALL_HEADER), scheme))
            self.proxy._active(-1)

    def _record(self, status, digest=None):
        self._status = status
        super()._record(status, digest)

    def _body(self):
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _fault_status(self, fault):
        self._body()
        body = json.dumps({"errors": [{"code": ERROR_CODES.get(fault.status, "UNKNOWN"),
                                       "message": "injected fault"}]}).encode()
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if fault.retry_after is not None:
            headers["Retry-After"] = fault.retry_after
        if fault.close:
            # Said, not only done: a client that is not told would reuse the closed connection,
            # and the stale connection would spend one of its retries.
            headers["Connection"] = "close"
            self.close_connection = True
        self._answer(fault.status, headers, body)

    def _fault_drop(self, fault):
        # Read the body first: the client has sent it whole, and the socket then closes cleanly.
        self._body()
        self.close_connection = True

    def _fault_lose_answer(self, fault):
        connection, response = self._upstream(self.command, self.path, self._body())
        try:
            response.read()
        finally:
            connection.close()
        self.close_connection = True

    def _fault_delay(self, fault):
        time.sleep(fault.seconds)
        super()._handle()

    def _fault_hold(self, fault):
        fault.gate.wait(QUIESCE_TIMEOUT)
        super()._handle()

    def _fault_redirect(self, fault):
        self._body()
        self._answer(307, {"Location": fault.location}, b"")

    def _fault_trickle(self, fault):
        response, body = self._upstream_read(self.command, self.path)
        self._record(response.status, response.getheader("Docker-Content-Digest"))
        self.send_response_only(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.flush()
        for byte in body if self.command != "HEAD" else b"":
            if self.proxy.stopped.wait(fault.seconds):
                break
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
        self.close_connection = True


class FaultProxy(TagDeleteProxy):
    """``FaultProxy(registry, seed=0, share=0.0, mix=(Fault, ...), methods=IDEMPOTENT, rule=None, never=None)``."""

    handler_class = _FaultHandler

    def __init__(self, registry, *, seed=0, share=0.0, mix=(), methods=IDEMPOTENT, rule=None, never=None):
        super().__init__(registry, tag_delete=False, paginate_tags=False)
        self.seed = seed
        self.share = share
        self.mix = tuple(mix)
        self.methods = frozenset(methods)
        self.rule = rule
        self.never = never
        self.stopped = threading.Event()
        self._seen = Counter()
        self._attempts = []
        self._busy = 0
        self._state = threading.Condition()
        # A client that gave up is not an error worth a traceback on stderr.
        self._server.handle_error = lambda request, address: None

    @property
    def attempts(self):
        with self._state:
            return list(self._attempts)

    def faults(self):
        return [a for a in self.attempts if a.fault is not None]

    def quiesce(self, timeout=QUIESCE_TIMEOUT):
        """Wait until no request is being handled: a delayed request still acts on the registry."""
        with self._state:
            if not self._state.wait_for(lambda: self._busy == 0, timeout):
                raise AssertionError("the proxy still handles %d requests after %ss" % (self._busy, timeout))

    def stop(self):
        self.stopped.set()
        super().stop()

    def _decide(self, method, path, headers):
        if self.rule is not None:
            fault = self.rule(method, path, headers)
            if fault is not None:
                return None if fault is FORWARD else fault
        if method not in self.methods or not self.mix:
            return None
        with self._state:
            self._seen[method, path] += 1
            draw = random.Random("%s %s %s %d" % (self.seed, method, path, self._seen[method, path]))
        fault = draw.choice(self.mix) if draw.random() < self.share else None
        return None if fault is not None and self.never and self.never(method, fault) else fault

    def _active(self, change):
        with self._state:
            self._busy += change
            self._state.notify_all()

    def _attempt(self, attempt):
        with self._state:
            self._attempts.append(attempt)
