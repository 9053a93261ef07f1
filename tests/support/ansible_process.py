"""ansible-playbook run the way a user runs it, as a process tree a test can SIGKILL whole.

Every run writes its output, its task results (the result_file callback) and, when a
crash plan is given, the steps the crash injector numbered, to files of its own in the
work directory, so a test can read them after the process is gone, even killed.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from support.process_tree import kill_tree

HERE = Path(__file__).resolve().parent
# scripts/test runs the virtualenv's python; the ansible commands sit beside it.
BIN = Path(sys.executable).parent
CALLBACKS = HERE / "ansible_plugins" / "callback"
CRASH_INJECTOR = HERE / "crash_injector"
RUN_TIMEOUT = 300
# Variables of this machine that would change what a run does or trusts.
FOREIGN_VARIABLES = ("ANSIBLE_CONFIG", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR",
                     "OCI_TRASH_CRASH_PLAN", "PYTHONPATH", "RESULT_FILE")
LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}


def write_inventory(path, hosts):
    """An INI inventory of ``hosts`` ({name: {var: string}}), every host run on the controller itself."""
    lines = ["[all]"]
    for name, variables in hosts.items():
        pairs = dict(LOCAL, **variables)
        lines.append(" ".join([name] + ['%s="%s"' % pair for pair in pairs.items()]))
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


class PlaybookRun:
    """One ansible-playbook process. ``start()``, then ``wait()`` or ``kill()``.

    ``name`` prefixes its files in ``workdir``; ``crash_plan`` (a dict, see
    crash_injector/sitecustomize.py) arms the crash injector; ``umask`` is set in the
    child before ansible starts; ``env`` adds variables.
    """

    def __init__(self, playbook, workdir, name, extra_vars=None, inventory=None, env=None, verbosity=0,
                 crash_plan=None, umask=None, forks=None):
        self.playbook = Path(playbook)
        self.workdir = Path(workdir)
        self.name = name
        self.extra_vars = extra_vars or {}
        self.inventory = inventory or write_inventory(self.workdir / "localhost.ini", {"localhost": {}})
        self.env = env or {}
        self.verbosity = verbosity
        self.crash_plan = crash_plan
        self.umask = umask
        self.forks = forks
        self.process = None

    def path(self, suffix):
        return self.workdir / ("%s.%s" % (self.name, suffix))

    def environment(self):
        # HOME is the work directory: ~/.ansible and the modules' default trash land there.
        environment = {k: v for k, v in os.environ.items()
                       if not k.startswith("REGISTRY_") and k not in FOREIGN_VARIABLES}
        environment.update(HOME=str(self.workdir), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
                           ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_LOCALHOST_WARNING="0",
                           ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS), ANSIBLE_CALLBACKS_ENABLED="result_file",
                           RESULT_FILE=str(self.path("results.jsonl")))
        if self.crash_plan is not None:
            plan = dict(self.crash_plan, log=str(self.path("steps.log")))
            environment.update(PYTHONPATH=str(CRASH_INJECTOR), OCI_TRASH_CRASH_PLAN=json.dumps(plan))
        environment.update(self.env)
        return environment

    def argv(self):
        vars_file = self.path("vars.json")
        vars_file.write_text(json.dumps(self.extra_vars, indent=2))
        argv = [str(BIN / "ansible-playbook"), "-i", str(self.inventory), "-e", "@%s" % vars_file]
        if self.verbosity:
            argv.append("-" + "v" * self.verbosity)
        if self.forks:
            argv += ["--forks", str(self.forks)]
        return argv + [str(self.playbook)]

    def start(self):
        umask = self.umask
        with open(self.path("stdout"), "wb") as out, open(self.path("stderr"), "wb") as err:
            # A session of its own: the crash injector finds the root of the run by its session id.
            self.process = subprocess.Popen(
                self.argv(), cwd=self.workdir, env=self.environment(), stdin=subprocess.DEVNULL,
                stdout=out, stderr=err, start_new_session=True,
                preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)
        return self

    def kill(self):
        """SIGKILL ansible-playbook and every process under it, workers included (a no-op once it has exited)."""
        if self.process.poll() is None:
            kill_tree(self.process.pid)

    def wait(self, timeout=RUN_TIMEOUT):
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.process.wait()
            raise AssertionError("%s did not finish within %ss:\n%s" % (self.name, timeout, self.output[-4000:]))
        return self

    def run(self, timeout=RUN_TIMEOUT):
        return self.start().wait(timeout)

    # --- what the run left behind ---

    @property
    def returncode(self):
        return self.process.returncode

    @property
    def killed(self):
        return self.returncode == -signal.SIGKILL

    @property
    def output(self):
        return "".join(self.path(s).read_text(errors="replace") for s in ("stdout", "stderr") if self.path(s).exists())

    def assert_succeeded(self):
        assert self.returncode == 0, "%s exited %s (files %s.*):\n%s" % (
            self.name, self.returncode, self.workdir / self.name, self.output[-6000:])
        return self

    def records(self):
        """Every line the result_file callback wrote, in order."""
        path = self.path("results.jsonl")
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def results(self, task=None):
        """The result records (ok or failed) of one task, or of every task."""
        return [r for r in self.records() if r["event"] in ("ok", "failed") and (task is None or r["task"] == task)]

    def result(self, task):
        [record] = self.results(task)
        return record["result"]

    def steps(self):
        """[(number, monotonic time, pid, text)] of the steps the crash injector counted."""
        path = self.path("steps.log")
        if not path.exists():
            return []
        found = []
        for line in path.read_text().splitlines():
            if not line.startswith("killed"):  # the injector's note of the kill is not a step
                number, moment, pid, text = line.split(" ", 3)
                found.append((int(number), float(moment), int(pid), text))
        return found
