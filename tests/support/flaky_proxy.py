"""A recording proxy that makes a real registry flaky, the ways real ones are.

Load balancers answer 503 while a backend restarts, and connections drop under a
client mid-request. ``FlakyProxy`` puts those faults in front of a real registry:

- ``"503"``: answer 503 UNAVAILABLE with ``Retry-After`` without asking the registry;
- ``"drop"``: close the connection without an answer, the request never forwarded;
- ``"lose_answer"``: forward the request (the registry acts on it), then close the
  connection without passing the answer on, as when a reply is lost in transit.

Each distinct request (method and full path) that matches fails its first ``times``
tries, or every try with ``times=None``; then it is forwarded like any other.
Everything else is the recording proxy of ``TagDeleteProxy`` with both of its
features off, so the registry keeps its own behaviour. A fault is recorded in
``exchanges`` too, with status 503 or None (no answer), and listed in ``faults``.
"""

import json
import re
import threading
from collections import Counter

from support.tag_delete_proxy import TagDeleteProxy, _Handler

FAULTS = ("503", "drop", "lose_answer")
# What the registry API lets a client send again without changing the outcome.
IDEMPOTENT = ("GET", "HEAD", "PUT", "DELETE")


class _FlakyHandler(_Handler):
    def _handle(self):
        how = self.proxy._fault_for(self.command, self.path)
        if how is None:
            return super()._handle()
        # Read the body first: the client has sent it whole either way, and the socket
        # then closes cleanly instead of with a reset.
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if how == "503":
            self.close_connection = True
            payload = json.dumps({"errors": [{"code": "UNAVAILABLE", "message": "injected fault: try again"}]})
            # Said, not only done: a client that is not told would reuse the closed connection,
            # and the stale connection would spend one of its retries.
            return self._answer(503, {"Content-Type": "application/json; charset=utf-8", "Connection": "close",
                                      "Retry-After": self.proxy.retry_after}, payload.encode())
        if how == "lose_answer":
            connection, response = self._upstream(self.command, self.path, body)
            try:
                response.read()
            finally:
                connection.close()
        self._record(None)
        self.close_connection = True  # no answer at all: the client sees the connection drop


class FlakyProxy(TagDeleteProxy):
    """``FlakyProxy(registry, how="503", times=1, methods=IDEMPOTENT, path=None, retry_after="0")``.

    ``path``: a regular expression the request path must match (search) to be faulted.
    """

    handler_class = _FlakyHandler

    def __init__(self, registry, *, how="503", times=1, methods=IDEMPOTENT, path=None, retry_after="0"):
        if how not in FAULTS:
            raise ValueError(f"how must be one of {FAULTS}, not {how!r}")
        super().__init__(registry, tag_delete=False, paginate_tags=False)
        self.how = how
        self.times = times
        self.methods = frozenset(methods)
        self.path = re.compile(path) if path else None
        self.retry_after = retry_after
        self._tries = Counter()
        self._faults = []
        self._fault_lock = threading.Lock()

    @property
    def faults(self):
        """(method, path) of every request that was given a fault, in order."""
        with self._fault_lock:
            return list(self._faults)

    def attempts(self, method, path_pattern):
        """How many times the registry was asked ``method`` on a path matching ``path_pattern``."""
        pattern = re.compile(path_pattern)
        return sum(1 for e in self.exchanges if e.method == method and pattern.search(e.path))

    def _fault_for(self, method, path):
        """The fault this request gets, or None to forward it."""
        if method not in self.methods or (self.path and not self.path.search(path)):
            return None
        with self._fault_lock:
            self._tries[method, path] += 1
            if self.times is not None and self._tries[method, path] > self.times:
                return None
            self._faults.append((method, path))
        return self.how
