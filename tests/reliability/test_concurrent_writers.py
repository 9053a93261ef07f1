"""Many writers on one trash directory at once: nothing corrupted, lost or duplicated.

Writers here are what meets in real life: several ansible-playbook processes started
together (a cleanup job and a retention purge from cron, two people at once), and one
playbook whose forks run the same task on many hosts. Afterwards the trash is read from
disk (tests/support/trash_witness.py) and every tag is accounted for exactly once.
"""

import threading
import time
from collections import Counter

import pytest

from support.ansible_process import PlaybookRun, write_inventory
from support.fault_proxy import FORWARD, Fault, FaultProxy
from support.images import skopeo_push
from support.registry import Registry
from support.reliability import PLAYBOOKS, run_core
from support.trash_witness import TrashView

from ansible_collections.oci_registry.trash.plugins.module_utils._errors import TrashError
from ansible_collections.oci_registry.trash.plugins.module_utils._restore_manifests import restore
from ansible_collections.oci_registry.trash.plugins.module_utils._trash_manifests import trash

PLAYBOOKS_AT_ONCE = 3
TAGS_EACH = 8
HOSTS = 8
# The deletes-enabled probe asks about a digest no manifest can have; it is not a trash's delete.
PROBE = "sha256:" + "0" * 64


def accounting_problems(view, repository, tags, state):
    """Each tag in exactly one intact entry, in ``state``; no damage and no temporary file anywhere."""
    entries = view.of(repository)
    removals = Counter(t for e in entries for t in e["removed_tags"])
    problems = view.problems() + ["temporary file %s" % p for p in view.temp_files()]
    problems += ["%s is in %d entries" % (t, n) for t, n in removals.items() if n != 1]
    problems += ["%s is in no entry" % t for t in tags if t not in removals]
    problems += ["entry %s is %s" % (e["id"], e["state"]) for e in entries if e["state"] != state]
    return problems


def sweeps(purger):
    """When each purge of the purge playbook ended (every try of its until loop)."""
    return [r["time"] for r in purger.records() if r["event"] in ("retry", "ok")]


def wait_for(condition, timeout=120):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "still waiting after %ss" % timeout
        time.sleep(0.05)


def task_window(run, task):
    """(start, end) of a task in a run, from the result_file callback's clock."""
    records = run.records()
    start = min(r["time"] for r in records if r["event"] == "task_start" and r["task"] == task)
    end = max(r["time"] for r in records if r["event"] in ("ok", "failed") and r["task"] == task)
    return start, end


@pytest.fixture(scope="module")
def playbooks_at_once(registry, make_batch, tmp_path_factory):
    """Trash playbooks, each on its share of one repository's tags, keeping blobs, started together
    while a purge playbook sweeps the same trash over and over."""
    batch = make_batch("concurrent", PLAYBOOKS_AT_ONCE * TAGS_EACH)
    old = make_batch("concurrent-old", 2)
    tmp_path = tmp_path_factory.mktemp("playbooks-at-once")
    trash_dir = tmp_path / "trash"
    # Entries for the purge to take, whose kept blobs are the same the trash runs store.
    run_core(trash, registry.url, trash_dir, old.repository, tags=old.tags, keep_blobs=True)
    common = {"registry_url": registry.url, "trash_dir": str(trash_dir), "repository": batch.repository,
              "keep_blobs": True}
    runs = [PlaybookRun(PLAYBOOKS / "trash.yml", tmp_path, "trash-%d" % n, extra_vars=dict(
        common, batch_tags=batch.tags[n * TAGS_EACH:(n + 1) * TAGS_EACH])) for n in range(PLAYBOOKS_AT_ONCE)]
    stop = tmp_path / "stop-purging"
    purger = PlaybookRun(PLAYBOOKS / "purge.yml", tmp_path, "purge", extra_vars={
        "trash_dir": str(trash_dir), "purge_repository": old.repository, "purge_until": str(stop)}).start()
    # The purge sweeps again and again from before the first trash starts until after the last ends.
    wait_for(lambda: sweeps(purger) or purger.process.poll() is not None)
    for run in runs:
        run.start()
    for run in runs:
        run.wait().assert_succeeded()
    stop.touch()
    purger.wait().assert_succeeded()
    return batch, old, trash_dir, runs, purger


def test_playbooks_at_once_record_every_tag_once_and_intact(playbooks_at_once, registry, witness):
    batch, _old, trash_dir, _runs, _purger = playbooks_at_once

    assert set(witness.digests(batch.repository, batch.tags).values()) == {None}
    assert accounting_problems(TrashView(trash_dir), batch.repository, batch.tags, "trashed") == []
    run_core(restore, registry.url, trash_dir, batch.repository, tags=batch.tags)
    assert witness.digests(batch.repository, batch.tags) == batch.digests


def test_purge_beside_running_trashes_takes_only_what_it_was_asked_to(playbooks_at_once):
    batch, old, trash_dir, runs, purger = playbooks_at_once
    windows = [task_window(run, "Trash the batch") for run in runs]
    overlapping = [t for t in sweeps(purger) if any(start <= t <= end for start, end in windows)]
    assert overlapping, "no purge finished while a trash ran: the test proved nothing"

    view = TrashView(trash_dir)
    assert view.of(old.repository) == []
    # Every entry a trash wrote still has its manifest and every kept blob (TrashView checks the bytes).
    assert view.problems() == []
    assert len(view.of(batch.repository)) == len(batch.tags)


def test_forks_over_many_hosts_trash_and_restore_their_own_tags(registry, make_batch, witness, tmp_path):
    batch = make_batch("forks", HOSTS)
    trash_dir = tmp_path / "trash"
    inventory = write_inventory(tmp_path / "hosts.ini", {"host%d" % n: {"host_tag": tag}
                                                         for n, tag in enumerate(batch.tags)})
    run = PlaybookRun(PLAYBOOKS / "per_host.yml", tmp_path, "forks", inventory=inventory, forks=HOSTS, extra_vars={
        "registry_url": registry.url, "repository": batch.repository, "trash_dir": str(trash_dir)})

    run.run().assert_succeeded()

    trashed = run.results("Trash this host's tag")
    assert sorted(r["host"] for r in trashed if r["result"]["changed"]) == sorted("host%d" % n for n in range(HOSTS))
    assert accounting_problems(TrashView(trash_dir), batch.repository, batch.tags, "restored") == []
    for entry in TrashView(trash_dir).of(batch.repository):
        assert [event["event"] for event in entry["history"]] == ["trash", "restore"], entry
    assert witness.digests(batch.repository, batch.tags) == batch.digests


# --- two runs trashing the same tag at the same moment ---

@pytest.fixture
def same_tag_twice(registry, make_batch, tmp_path, request):
    """Two trash runs of one tag, each with a client and a store of its own, whose deletes the
    proxy holds until both runs have written their entries: both have snapshotted the tag
    before either deletes. (Their deletes then take turns: one run at a time removes a manifest.)"""
    batch = make_batch("same-tag", 1)
    trash_dir = tmp_path / "trash"
    both_snapshotted = threading.Event()

    def watch():
        deadline = time.monotonic() + 60
        while not both_snapshotted.is_set() and time.monotonic() < deadline:
            if len(list((trash_dir / "entries").rglob("*.json"))) >= 2:
                both_snapshotted.set()
            time.sleep(0.01)
    threading.Thread(target=watch, daemon=True).start()
    hold = Fault("hold", gate=both_snapshotted)
    proxy = FaultProxy(registry, rule=lambda method, path, headers: (
        hold if method == "DELETE" and not path.endswith(PROBE) else FORWARD))
    request.addfinalizer(proxy.stop)
    proxy.start()
    outcomes = [None, None]

    def run(slot):
        try:
            outcomes[slot] = run_core(trash, proxy.url, trash_dir, batch.repository, tags=batch.tags)
        except TrashError as exc:
            outcomes[slot] = exc
    workers = [threading.Thread(target=run, args=(slot,)) for slot in (0, 1)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert not any(isinstance(o, TrashError) for o in outcomes), outcomes
    assert both_snapshotted.is_set(), "the runs never both snapshotted: the test proved nothing"
    return batch, trash_dir, outcomes


def test_the_same_tag_trashed_twice_at_once_is_gone_and_restorable(same_tag_twice, witness):
    batch, trash_dir, _outcomes = same_tag_twice
    [(tag, digest)] = batch.digests.items()
    assert witness.digest(batch.repository, tag) is None
    assert TrashView(trash_dir).restorable(batch.repository, tag, digest)


def test_the_same_tag_trashed_twice_at_once_is_recorded_once_and_reported_removed_once(same_tag_twice):
    batch, trash_dir, outcomes = same_tag_twice
    reported = [o for outcome in outcomes for o in outcome["tags"] if o["removed"]]
    assert accounting_problems(TrashView(trash_dir), batch.repository, batch.tags, "trashed") == []
    assert len(reported) == 1, reported


# --- the first requests of a batch, at once, against a registry that wants Basic credentials ---

class StaggeredGate:
    """Lets requests through once ``parties`` have arrived, each ``stagger`` seconds after the one
    before it: answers that come back in a known order, however the threads are scheduled."""

    def __init__(self, parties, stagger=0.3):
        self.barrier, self.stagger = threading.Barrier(parties), stagger

    def wait(self, timeout):
        time.sleep(self.stagger * self.barrier.wait(timeout))


def test_a_batch_whose_first_requests_meet_a_basic_challenge_at_once_authenticates_them_all(
        make_batch, image, tmp_path, request):
    password = "pw-concurrent"
    basic = Registry(tmp_path / "registry", htpasswd_users={"batch": password})
    request.addfinalizer(basic.stop)
    basic.start()
    tags = ["one", "two"]
    for tag in tags:
        skopeo_push(image("reliability-basic-" + tag), basic, "reliability/basic:" + tag, username="batch",
                    password=password)
    # Both first GETs (sent without credentials, as the client waits to be asked) are held until
    # both have arrived; their 401 answers then come back 0.3 s apart.
    gate = StaggeredGate(2)
    hold = Fault("hold", gate=gate)
    proxy = FaultProxy(basic, rule=lambda method, path, headers: (
        hold if method == "GET" and "/manifests/" in path and "Authorization" not in headers else FORWARD))
    request.addfinalizer(proxy.stop)
    proxy.start()

    result = run_core(trash, proxy.url, tmp_path / "trash", "reliability/basic", tags=tags, check_mode=True,
                      client={"username": "batch", "password": password})

    assert sorted(o["tag"] for o in result["tags"]) == tags
