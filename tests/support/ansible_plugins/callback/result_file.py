# Test harness only: not part of the collection.
"""Write every task start and task result of a run to a JSON-lines file, with the time.

The reliability tests read what a task reported (to check it against the registry and
the trash, and to scan it for secrets) and when each task ran (to prove that two
playbooks really overlapped), without parsing the human output.
"""

from __future__ import annotations

DOCUMENTATION = """
    name: result_file
    type: notification
    short_description: Task results as JSON lines, for tests
    description:
      - Appends one JSON object per task start and per result to the file named by the
        environment variable C(RESULT_FILE); with several forks each line is written whole.
    requirements:
      - the environment variable C(RESULT_FILE)
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "result_file"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        path = os.environ.get("RESULT_FILE")
        # O_APPEND: each line is one write(2), so lines of concurrent playbooks never interleave.
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600) if path else None

    def _write(self, event, **fields):
        if self._fd is None:
            return
        record = dict(fields, event=event, time=time.monotonic(), pid=os.getpid())
        os.write(self._fd, (json.dumps(record, default=str, sort_keys=True) + "\n").encode())

    def _result(self, event, result):
        self._write(event, host=result.host.get_name(), task=result.task.get_name(), result=result.result)

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._write("task_start", task=task.get_name())

    def v2_runner_on_ok(self, result):
        self._result("ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result("failed", result)

    def v2_runner_on_unreachable(self, result):
        self._result("unreachable", result)

    def v2_runner_on_skipped(self, result):
        self._result("skipped", result)

    def v2_runner_retry(self, result):
        self._result("retry", result)

    def v2_runner_item_on_ok(self, result):
        self._result("item_ok", result)

    def v2_runner_item_on_failed(self, result):
        self._result("item_failed", result)
