"""A faulty network between the modules and a real registry: nothing lost, no false success.

tests/support/fault_proxy.py sits between the client and the registry and, for a seeded
share of the requests, drops the connection, loses the answer after the registry acted,
delays (beyond the timeout, too), or answers 500, 502, 503 or 429. What the modules then
report is checked against the registry itself (read directly, past the proxy) and the
trash on disk:

- no lost image: every tag is at its digest or restorable, and in the end all come back;
- no false success: a tag reported trashed is gone and snapshotted, a tag reported
  restored resolves to its digest;
- every failure says what failed and why (the HTTP status or the connection problem);
- retries are bounded in count and in time: measured per call of the client, whose
  calls are labelled so the proxy can tell which attempts belong to one call.
"""

import inspect
import itertools
import re
import threading
import time

import pytest

from support.ansible_process import PlaybookRun
from support.fault_proxy import CALL_HEADER, FORWARD, Fault, FaultProxy, first_tries
from support.reliability import PLAYBOOKS, run_core
from support.trash_witness import TrashView, lost

from ansible_collections.oci_registry.trash.plugins.module_utils import _registry_client
from ansible_collections.oci_registry.trash.plugins.module_utils._errors import TrashError
from ansible_collections.oci_registry.trash.plugins.module_utils._registry_client import RegistryClient
from ansible_collections.oci_registry.trash.plugins.module_utils._restore_manifests import restore
from ansible_collections.oci_registry.trash.plugins.module_utils._trash_manifests import trash
from ansible_collections.oci_registry.trash.plugins.module_utils._trash_store import TrashStore

TAGS = 12
TIMEOUT = 1  # the modules' timeout option in these runs: short, so a lost answer costs little
SHARE = 0.25  # of the requests that get a fault
RETRY_AFTER = "1"
LATE = Fault("delay", seconds=TIMEOUT + 0.5)  # the client gives up; the registry acts afterwards
REFUSED = Fault("status", status=500)
MIX = (
    Fault("drop"),
    Fault("lose_answer"),
    Fault("delay", seconds=0.3),
    LATE,
    REFUSED,
    Fault("status", status=502),
    Fault("status", status=503, retry_after=RETRY_AFTER),
    Fault("status", status=429, retry_after=RETRY_AFTER),
)

RETRIES = inspect.signature(RegistryClient).parameters["retries"].default
# The longest one call may take: every attempt waits out the timeout, and before each retry
# urllib3 sleeps the Retry-After given or its backoff (0.2 * 2 ** (n - 1): at most 0.8 s).
CALL_BOUND = (RETRIES + 1) * TIMEOUT + RETRIES * max(0.8, float(RETRY_AFTER)) + 1
# Words by which a failure names its cause: an HTTP status, or what happened to the connection.
CAUSE = re.compile(r"HTTP (429|5\d\d)|cannot connect|no answer within|connection|broke off|aborted", re.I)


def faulty_proxy(registry, request, seed, **options):
    proxy = FaultProxy(registry, seed=seed, **options)
    request.addfinalizer(proxy.stop)
    return proxy.start()


# --- a batch trashed and restored through ansible-playbook, over a faulty network ---

RUNS = 3  # as a user would: run the task again while it fails, up to this many times


def run_until_done(proxy, playbook, batch, tags, trash_dir, workdir):
    """The playbook over ``tags()`` (the tags still to do), rerun while it fails; every run's result.

    A fault in a step that serves the whole batch (the tag listing, say) fails the task
    before any change; a rerun meets other faults, as a rerun on a flaky network does.
    """
    results = []
    for attempt in range(1, RUNS + 1):
        todo = tags()
        if not todo:  # a run that failed after doing everything it had to (a last check, say)
            break
        run = PlaybookRun(PLAYBOOKS / playbook, workdir, "%s-%d" % (playbook.split(".")[0], attempt), extra_vars={
            "registry_url": proxy.url, "repository": batch.repository, "batch_tags": todo,
            "trash_dir": str(trash_dir), "timeout": TIMEOUT}).run()
        # A request the proxy still delays reaches the registry later: let it land before looking.
        proxy.quiesce()
        [record] = run.results()
        results.append(dict(record["result"], failed=record["event"] == "failed"))
        if not results[-1]["failed"]:
            break
    return results


def failures_of(result):
    """Each failure of a result: its per-item failures, or the whole task's when it had none."""
    if not result["failed"]:
        return []
    return result.get("failures") or [{"msg": result["msg"], "task": True}]


@pytest.fixture(scope="module")
def faulted(registry, make_batch, witness, tmp_path_factory, module_seed, request):
    """The batch trashed, and what is gone restored, through a proxy that faults SHARE of the requests."""
    batch = make_batch("faults", TAGS)
    # Whatever the draw: one DELETE of the trash and one PUT of the restore fail for good (a 500 is
    # not retried), so that every seed has failures to report, and a rerun to do.
    refuse_delete = first_tries(REFUSED, methods=["DELETE"], path=re.escape(batch.digests[batch.tags[0]]) + "$")
    refuse_put = first_tries(REFUSED, methods=["PUT"], path="/manifests/%s$" % re.escape(batch.tags[1]))
    proxy = faulty_proxy(registry, request, module_seed, share=SHARE, mix=MIX,
                         rule=lambda *asked: refuse_delete(*asked) or refuse_put(*asked))
    workdir = tmp_path_factory.mktemp("faults")
    trash_dir = workdir / "trash"

    def still(present):
        return lambda: [t for t, d in witness.digests(batch.repository, batch.tags).items() if bool(d) == present]
    trashed = run_until_done(proxy, "trash.yml", batch, still(True), trash_dir, workdir)
    after_trash = TrashView(trash_dir)
    restored = run_until_done(proxy, "restore.yml", batch, still(False), trash_dir, workdir)
    print("seed %s: %d faults in %d requests; trash runs: %s failures; restore runs: %s failures" % (
        module_seed, len(proxy.faults()), len(proxy.attempts), [len(failures_of(r)) for r in trashed],
        [len(failures_of(r)) for r in restored]))
    return proxy, batch, trash_dir, trashed, after_trash, restored


def test_tags_reported_trashed_were_gone_and_snapshotted(faulted, module_seed):
    _proxy, batch, _trash_dir, trashed, after_trash, _restored = faulted
    reported = [o for result in trashed for o in result.get("tags", []) if o.get("removed")]
    assert reported, "the faults left nothing trashed: the test proved nothing (seed %s)" % module_seed
    for outcome in reported:
        [entry] = [e for e in after_trash.of(batch.repository) if e["id"] == outcome["entry"]]
        assert entry["state"] == "trashed" and outcome["tag"] in entry["removed_tags"], (outcome, entry)
        assert after_trash.restorable(batch.repository, outcome["tag"], batch.digests[outcome["tag"]]), outcome


def test_tags_reported_restored_resolve_to_their_digests_and_nothing_is_lost(faulted, witness, module_seed):
    _proxy, batch, trash_dir, _trashed, _after, restored = faulted
    reported = [item for result in restored for item in result.get("restored", [])]
    assert reported, "nothing was restored: the test proved nothing (seed %s)" % module_seed
    # Later runs never take a tag away again, so every claim still holds at the end.
    for item in reported:
        assert witness.digest(batch.repository, item["tag"]) == batch.digests[item["tag"]] == item["digest"], item
    assert lost(witness, TrashView(trash_dir), batch.repository, batch.digests) == [], "seed %s" % module_seed


def test_every_failure_names_what_failed_and_why(faulted, module_seed):
    _proxy, _batch, _trash_dir, trashed, _after, restored = faulted
    failed = [f for result in trashed + restored for f in failures_of(result)]
    assert failed, "no request failed for good: raise SHARE, the test proved nothing (seed %s)" % module_seed
    assert [f for f in failed if not CAUSE.search(f["msg"])] == []
    assert [f for f in failed if not (f.get("task") or f.get("tag") or f.get("tags") or f.get("entry"))] == []
    for result in trashed + restored:
        # The task's message carries each failure's own words, not just a count.
        assert all(f["msg"] in result["msg"] for f in failures_of(result)), result["msg"]


def test_every_tag_comes_back_once_the_network_is_sound(faulted, witness):
    proxy, batch, trash_dir, _trashed, _after, _restored = faulted
    # Through the proxy, without faults: the trash keeps entries per registry URL, and the
    # modules knew the registry by the proxy's.
    proxy.share = 0
    gone = [t for t, d in witness.digests(batch.repository, batch.tags).items() if d is None]
    if gone:
        run_core(restore, proxy.url, trash_dir, batch.repository, tags=gone)
    assert witness.digests(batch.repository, batch.tags) == batch.digests


# --- retries, measured per call of the client ---

def labelled(client):
    """Number each request of the client (X-Test-Call) and time it: {call: (seconds, method, url)}."""
    numbers, calls = itertools.count(1), {}
    send = client.session.request

    def request(method, url, headers=None, **options):
        number = str(next(numbers))
        started = time.monotonic()
        try:
            return send(method, url, headers=dict(headers or {}, **{CALL_HEADER: number}), **options)
        finally:
            calls[number] = (time.monotonic() - started, method, url)
    client.session.request = request
    return calls


def test_retries_stay_bounded_in_count_and_time(registry, request, make_batch, tmp_path, seed):
    proxy = faulty_proxy(registry, request, seed, share=SHARE, mix=MIX)
    batch = make_batch("fault-retries", TAGS // 2)
    store = TrashStore(str(tmp_path / "trash"))
    with RegistryClient(proxy.url, timeout=TIMEOUT) as client:
        calls = labelled(client)
        for operation in (trash, restore):
            for _run in range(RUNS):  # rerun while it fails, as the playbooks above are
                try:
                    operation(client, store, batch.repository, tags=batch.tags)
                    break
                except TrashError:
                    pass  # what failed is the other tests' business; here only the retries count
                finally:
                    proxy.quiesce()

    attempts = {}
    for attempt in proxy.attempts:
        attempts.setdefault(attempt.call, []).append(attempt)
    retried = {call: tries for call, tries in attempts.items() if len(tries) > 1}
    most = max(len(tries) for tries in attempts.values())
    slowest = max(seconds for seconds, _method, _url in calls.values())
    print("seed %s: %d calls, %d retried, at most %d attempts per call, slowest call %.2fs (bound %.2fs)" % (
        seed, len(calls), len(retried), most, slowest, CALL_BOUND))
    assert retried, "no call was retried: the test proved nothing"
    assert most <= RETRIES + 1
    assert slowest <= CALL_BOUND


# --- single faults, where one request is watched ---

@pytest.fixture
def one_tag(make_batch):
    return make_batch("fault-single", 1)


def test_a_retry_after_of_an_hour_is_cut_short_and_the_failure_says_503(
        registry, request, one_tag, tmp_path, monkeypatch, witness):
    # The client caps Retry-After at MAX_RETRY_AFTER (30 s); a tenth of a second keeps the test short.
    monkeypatch.setattr(_registry_client, "MAX_RETRY_AFTER", 0.1)
    busy = Fault("status", status=503, retry_after="3600")
    proxy = faulty_proxy(registry, request, 0,
                         rule=lambda method, path, headers: busy if "/manifests/" in path else FORWARD)
    [(tag, digest)] = one_tag.digests.items()

    started = time.monotonic()
    with pytest.raises(TrashError) as failure:
        run_core(trash, proxy.url, tmp_path / "trash", one_tag.repository, tags=[tag], client={"timeout": TIMEOUT})
    elapsed = time.monotonic() - started
    proxy.quiesce()  # an attempt is recorded once handled, which can be just after its answer went out

    assert "HTTP 503" in failure.value.msg and tag in failure.value.msg
    assert len(proxy.attempts) == RETRIES + 1
    assert elapsed < RETRIES * 0.1 + 2
    assert witness.digest(one_tag.repository, tag) == digest
    assert not (tmp_path / "trash" / "entries").exists()


def test_a_delete_that_lands_after_its_failure_stays_restorable(registry, request, one_tag, tmp_path, witness):
    [(tag, digest)] = one_tag.digests.items()
    tries = itertools.count(1)

    def late_then_refused(method, path, headers):
        if method != "DELETE" or not path.endswith(digest):
            return FORWARD
        # The first try outlives the client's timeout and still reaches the registry; the retry gets a 500.
        return {1: Fault("delay", seconds=TIMEOUT + 1), 2: Fault("status", status=500)}.get(next(tries), FORWARD)
    proxy = faulty_proxy(registry, request, 0, rule=late_then_refused)
    with pytest.raises(TrashError, match="HTTP 500"):
        run_core(trash, proxy.url, tmp_path / "trash", one_tag.repository, tags=[tag], client={"timeout": TIMEOUT})
    proxy.quiesce()
    assert witness.digest(one_tag.repository, tag) is None, "the late DELETE did not land: the test proved nothing"

    run_core(restore, proxy.url, tmp_path / "trash", one_tag.repository, tags=[tag])

    assert witness.digest(one_tag.repository, tag) == digest


def test_an_answer_trickling_in_cannot_hold_a_request_beyond_its_bound(registry, request, one_tag):
    # A byte every half timeout: no read ever waits long enough to time out.
    timeout = 0.5
    trickle = Fault("trickle", seconds=timeout / 2)
    proxy = faulty_proxy(registry, request, 0,
                         rule=lambda method, path, headers: trickle if "/manifests/t" in path else FORWARD)
    outcome = {}

    def get():
        with RegistryClient(proxy.url, timeout=timeout) as client:
            try:
                outcome["result"] = client.get_manifest(one_tag.repository, one_tag.tags[0])
            except TrashError as exc:
                outcome["result"] = exc
    worker = threading.Thread(target=get, daemon=True)  # stopping the proxy at teardown ends it
    worker.start()
    bound = (RETRIES + 1) * timeout + 1
    worker.join(bound)

    assert not worker.is_alive(), "a manifest GET still running after %ss" % bound
