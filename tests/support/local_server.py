"""An HTTP server of the tests, on a free port of a loopback address, served from a thread."""

import threading
from http.server import ThreadingHTTPServer


class LocalServer:
    """``LocalServer(handler_class, host="127.0.0.1")``: serves once started; a context manager too."""

    def __init__(self, handler_class, host="127.0.0.1"):
        self._server = ThreadingHTTPServer((host, 0), handler_class)
        self._server.daemon_threads = True
        self._thread = None

    @property
    def address(self):
        """``host:port``."""
        return "%s:%d" % self._server.server_address[:2]

    def start(self):
        # A short poll keeps stop() from costing half a second per test.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()
