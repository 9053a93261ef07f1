"""SIGKILL a process and every process it started, as a crash of the whole run does.

A process group is not enough for ansible-playbook: each worker calls setsid() and leads
a session of its own, so ``killpg`` of ansible-playbook's group leaves the worker that
runs the task alive, and it finishes the task alone. An OOM kill of the cgroup, a
container stop or a power cut takes every process; this does the same on Linux.

The tree is frozen first (SIGSTOP from the root down, so that no process forks while
it is listed), then every process gets SIGKILL, the caller itself last when it is part
of the tree.
"""

import os
import signal


def _parents():
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name, "rb") as stat:
                    # The command name is in parentheses and may hold anything: split after the last one.
                    fields = stat.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            parents[int(name)] = int(fields[1])
    return parents


def descendants(root):
    children = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    found, pending = [], list(children.get(root, []))
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, []))
    return found


def _signal(pids, number):
    for pid in pids:
        try:
            os.kill(pid, number)
        except ProcessLookupError:
            pass


def kill_tree(root):
    me = os.getpid()
    inside = me == root or root in _ancestors(me)
    tree = [root] if root != me else []
    _signal(tree, signal.SIGSTOP)
    for _look in range(2):  # a second look catches a child forked just before its parent stopped
        tree += [pid for pid in descendants(root) if pid != me and pid not in tree]
        _signal(tree, signal.SIGSTOP)
    _signal(tree, signal.SIGKILL)
    if inside:
        os.kill(me, signal.SIGKILL)


def _ancestors(pid):
    parents, found = _parents(), []
    while pid in parents and parents[pid] not in found and parents[pid] > 1:
        pid = parents[pid]
        found.append(pid)
    return found
