"""Crash injection for the reliability tests: SIGKILL a process group at a chosen step.

Put this directory first on PYTHONPATH and set OCI_TRASH_CRASH_PLAN to a JSON object;
every Python process started that way (ansible-playbook and its forked workers) then
installs an audit hook (PEP 578) that numbers the *steps* of the run and can kill the
whole process group, from the inside, right before one of them. A step is one of:

- a file operation under ``trash_dir``: ``open``, ``os.rename`` (which ``os.replace``
  raises), ``os.remove``, ``os.mkdir``, ``os.rmdir``;
- one ``http.client.send``: the head of a request (``"GET /v2/... HTTP/1.1"``) or a
  piece of its body (``"body <n> bytes"``).

So a crash lands exactly between two things the collection does to the trash or to the
registry, which a timer from outside only hits by luck. The plan's keys:

- ``trash_dir``: only file operations below it are steps;
- ``log``: a file each step is appended to, as ``<n> <monotonic time> <pid> <step>``;
- ``kill_at``: kill right before step number n (1-based), or
- ``kill_on`` and ``kill_on_nth``: kill right before the nth step whose text matches
  the regular expression ``kill_on`` (search);
- neither: only count and log (a calibration run).

The kill takes the run: SIGKILL to ansible-playbook (the session leader, as the tests
start it in a session of its own), then to the worker itself. Both are single kill(2)
calls made while the hook holds the GIL, so no other thread of the worker runs Python
code in between: the crash lands right before the step, not a few steps later. (A
process group is not enough: the worker leads a session of its own, see process_tree.py.)
The step counter is per process; ansible runs a task's action plugin in one forked
worker, so within a single-host play it counts the steps of one task, and a
single-host play is all the injector is made for.
"""

import itertools
import json
import os
import re
import signal
import sys
import time

_RAW_PLAN = os.environ.get("OCI_TRASH_CRASH_PLAN")
_FILE_EVENTS = frozenset(("open", "os.rename", "os.remove", "os.mkdir", "os.rmdir"))
_REQUEST_LINE = re.compile(rb"^([A-Z]+ \S+) HTTP/1\.[01]\r\n")


def _install(plan):
    # Recorded in ansible-playbook itself, before its workers fork and setsid().
    root = os.getsid(0)
    trash_dir = os.path.realpath(plan["trash_dir"]) + os.sep
    kill_at = plan.get("kill_at")
    kill_on = re.compile(plan["kill_on"]) if plan.get("kill_on") else None
    kill_on_nth = plan.get("kill_on_nth", 1)
    # Opened once, before the hook exists: writing with os.write raises no audit event,
    # so logging a step can never become a step, and forked workers share the file.
    log_fd = os.open(plan["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    steps = itertools.count(1)  # next() is atomic under the GIL: threads of a batch share it
    matches = itertools.count(1)

    def describe(event, args):
        if event in _FILE_EVENTS:
            path = args[0]
            if isinstance(path, bytes):
                path = os.fsdecode(path)
            if not isinstance(path, str) or not os.path.abspath(path).startswith(trash_dir):
                return None
            detail = os.path.relpath(os.path.abspath(path), trash_dir)
            if event == "os.rename":
                detail += " -> " + os.path.relpath(os.path.abspath(os.fsdecode(args[1])), trash_dir)
            return "%s %s" % (event, detail)
        if event == "http.client.send":
            data = args[1]
            if not isinstance(data, (bytes, bytearray)):
                return "body stream"
            head = _REQUEST_LINE.match(bytes(data[:2048]))
            return head.group(1).decode("ascii", "replace") if head else "body %d bytes" % len(data)
        return None

    def hook(event, args):
        if event not in _FILE_EVENTS and event != "http.client.send":
            return
        step = describe(event, args)
        if step is None:
            return
        number = next(steps)
        os.write(log_fd, ("%d %.6f %d %s\n" % (number, time.monotonic(), os.getpid(), step)).encode())
        if number == kill_at or (kill_on is not None and kill_on.search(step) and next(matches) == kill_on_nth):
            os.write(log_fd, ("killed before step %d\n" % number).encode())
            os.kill(root, signal.SIGKILL)
            os.kill(os.getpid(), signal.SIGKILL)

    sys.addaudithook(hook)


if _RAW_PLAN:
    _install(json.loads(_RAW_PLAN))
