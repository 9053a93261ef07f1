"""The trash directory: content-addressed snapshots, atomic JSON entries, checked names, one lock."""

import datetime
import getpass
import json
import multiprocessing
import os
import re
import stat
import threading
from pathlib import Path

import pytest

from ansible_collections.oci_registry.trash.plugins.module_utils._errors import TrashError
from ansible_collections.oci_registry.trash.plugins.module_utils._reference import OCI_MANIFEST, compute_digest
from ansible_collections.oci_registry.trash.plugins.module_utils._registry_client import Manifest
from ansible_collections.oci_registry.trash.plugins.module_utils._trash_store import ENTRY_ID_RE, TrashStore

# Only a name for directories: the store never contacts a registry.
REGISTRY = "http://127.0.0.1:5000"
REGISTRY_KEY = "127.0.0.1_5000"
REPOSITORY = "team/app"
WRITERS, ENTRIES_PER_WRITER = 4, 25


def make_manifest(seed):
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": [],
                       "annotations": {"seed": seed}}, sort_keys=True).encode()
    return Manifest(compute_digest(body), OCI_MANIFEST, body)


def record(store, seed="image", repository=REPOSITORY, tags=("v1", "v2"), removed=("v1",), **options):
    return store.create_entry(REGISTRY, repository, make_manifest(seed), list(tags), list(removed), "tag",
                              **options)


def entry_file(root, entry):
    return Path(root, "entries", REGISTRY_KEY, *entry["repository"].split("/"), entry["id"] + ".json")


def blob_file(root, digest):
    return Path(root, "blobs", *digest.split(":"))


def newest_for_tag(store, tag, repository=REPOSITORY):
    """The entry restore by tag would pick."""
    return store.newest_entries(REGISTRY, repository)[0].get(tag)


def snapshot(root):
    """Every path under root with its bytes (None for a directory): a change anywhere shows."""
    root = Path(root)
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes()) for p in root.rglob("*")}


# --- writing entries ---

def test_same_manifest_bytes_are_stored_once_for_two_entries(store, trash_dir):
    manifest = make_manifest("shared")

    first = store.create_entry(REGISTRY, REPOSITORY, manifest, ["v1"], ["v1"], "tag")
    second = store.create_entry(REGISTRY, REPOSITORY, manifest, ["v2"], ["v2"], "tag")

    blobs = list((trash_dir / "blobs" / "sha256").iterdir())
    assert [b.name for b in blobs] == [manifest.digest.split(":")[1]]
    assert blobs[0].read_bytes() == manifest.body
    assert first["id"] != second["id"]
    assert sorted(p.name for p in entry_file(trash_dir, first).parent.iterdir()) == sorted(
        [first["id"] + ".json", second["id"] + ".json"])


def test_entry_json_records_the_snapshot_the_tags_the_time_the_reason_and_the_user(store, trash_dir):
    manifest = make_manifest("documented")

    entry = store.create_entry(REGISTRY, REPOSITORY, manifest, ["v2", "latest", "v1"], ["v1"], "tag",
                               reason="cleanup of old releases")

    on_disk = json.loads(entry_file(trash_dir, entry).read_text())
    assert on_disk == entry
    assert ENTRY_ID_RE.match(on_disk["id"]) and manifest.digest[7:19] in on_disk["id"]
    expected = {
        "format": 1, "registry": REGISTRY, "repository": REPOSITORY, "digest": manifest.digest,
        "media_type": OCI_MANIFEST, "manifest_size": len(manifest.body), "tags": ["latest", "v1", "v2"],
        "removed_tags": ["v1"], "other_tags": ["latest", "v2"], "scope": "tag",
        "reason": "cleanup of old releases", "user": getpass.getuser(), "state": "pending", "history": [],
    }
    assert {key: on_disk[key] for key in expected} == expected
    trashed_at = datetime.datetime.strptime(on_disk["trashed_at"], "%Y-%m-%dT%H:%M:%SZ")
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    assert abs(now - trashed_at) < datetime.timedelta(hours=1), "trashed_at is not UTC"


def test_store_makes_directories_0700_and_files_0600_even_under_umask_0(tmp_path):
    root = tmp_path / "new-trash"
    previous = os.umask(0)
    try:
        store = TrashStore(str(root))
        store.set_state(record(store), "trashed", event="trash")
    finally:
        os.umask(previous)

    modes = {str(p): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}
    assert {p for p in modes if p.endswith(".lock")}, "the lock file should have been checked too"
    assert {p: m for p, m in modes.items() if m != (0o700 if Path(p).is_dir() else 0o600)} == {}


def test_set_state_moves_the_entry_and_keeps_every_event_in_history(store):
    entry = record(store)

    store.set_state(entry, "trashed", event="trash", still_present=[])
    store.set_state(entry, "restored", event="restore", tags=["v1"])

    reread = store.get_entry(REGISTRY, REPOSITORY, entry["id"])
    assert reread == entry
    assert reread["state"] == "restored"
    assert [(h["state"], h["event"]) for h in reread["history"]] == [("trashed", "trash"), ("restored", "restore")]
    assert reread["history"][1]["tags"] == ["v1"]
    assert all(h["at"].endswith("Z") for h in reread["history"])


def test_unknown_state_is_refused_and_the_entry_keeps_its_state(store):
    entry = record(store)

    with pytest.raises(TrashError, match="unknown trash entry state"):
        store.set_state(entry, "deleted")

    assert store.get_entry(REGISTRY, REPOSITORY, entry["id"])["state"] == "pending"


def test_save_blob_refuses_bytes_that_do_not_hash_to_the_digest(store, trash_dir):
    digest = compute_digest(b"the real bytes")

    with pytest.raises(TrashError, match="does not hash"):
        store.save_blob(digest, b"other bytes")

    assert not blob_file(trash_dir, digest).exists()


# --- reading entries ---

def test_read_manifest_returns_the_snapshot_bytes(store):
    entry = record(store, seed="readable")

    assert store.read_manifest(entry) == make_manifest("readable").body


def test_read_manifest_refuses_tampered_bytes_and_names_the_entry(store, trash_dir):
    entry = record(store)
    blob = blob_file(trash_dir, entry["digest"])
    blob.write_bytes(blob.read_bytes().replace(b"image", b"imagf"))

    with pytest.raises(TrashError, match="%s.*damaged" % entry["id"]):
        store.read_manifest(entry)


def test_read_manifest_of_a_missing_snapshot_names_the_entry(store, trash_dir):
    entry = record(store)
    blob_file(trash_dir, entry["digest"]).unlink()

    with pytest.raises(TrashError, match=entry["id"]):
        store.read_manifest(entry)


@pytest.mark.parametrize("damage", [
    lambda data: data[:len(data) // 2],
    lambda data: b"",
    lambda data: data.replace(b'"format": 1', b'"format": 99'),
    lambda data: b"[]",
], ids=["truncated", "empty", "unknown-format", "not-an-object"])
def test_damaged_entry_is_skipped_and_reported_while_the_others_still_list(store, trash_dir, damage):
    entries = [record(store, seed="image-%d" % n) for n in range(3)]
    damaged = entries.pop(1)
    path = entry_file(trash_dir, damaged)
    path.write_bytes(damage(path.read_bytes()))

    listed = store.entries(REGISTRY, REPOSITORY)

    assert [e["id"] for e in listed] == [e["id"] for e in reversed(entries)], "newest first, damaged left out"
    assert len(store.damaged) == 1 and str(path) in store.damaged[0]
    assert newest_for_tag(store, "v1")["id"] == entries[-1]["id"]
    assert store.damaged_entries(REGISTRY, REPOSITORY) == [damaged["id"]]
    assert store.damaged_entries(REGISTRY, "team/other") == []


def kept(store, seed, size):
    """An entry whose one layer, of size bytes, was kept in the trash."""
    layer = (seed * size).encode()[:size]
    digest = compute_digest(layer)
    store.save_blob(digest, layer)
    return record(store, seed=seed, blobs=[{"digest": digest, "size": size}], keep_blobs=True)


@pytest.mark.parametrize("damage, words", [
    (lambda path: path.write_bytes(b"{}"), "has 2 bytes, not 64"),
    (lambda path: path.unlink(), "cannot read kept blob"),
], ids=["wrong-size", "missing"])
def test_check_content_names_the_entry_and_the_kept_blob_that_is_damaged(store, trash_dir, damage, words):
    sound, victim = kept(store, "a", 64), kept(store, "b", 64)
    blob = victim["blobs"][0]["digest"]
    damage(blob_file(trash_dir, blob))

    assert store.check_content(sound) == []
    [problem] = store.check_content(victim)
    assert victim["id"] in problem and blob in problem and words in problem
    assert store.damaged == [problem]


def test_check_content_names_a_snapshot_that_no_longer_hashes_to_its_digest(store, trash_dir):
    entry = record(store)
    blob_file(trash_dir, entry["digest"]).write_bytes(b"rotten")

    [problem] = store.check_content(entry)

    assert entry["id"] in problem and "no longer hashes" in problem


def test_unknown_repository_has_no_entries_and_an_unknown_id_is_an_error(store):
    record(store)

    assert store.entries(REGISTRY, "team/other") == []
    assert newest_for_tag(store, "v1", repository="team/other") is None
    with pytest.raises(TrashError, match="no trash entry"):
        store.get_entry(REGISTRY, REPOSITORY, "20200101T000000000000Z-000000000000-0000")


def test_the_entry_picked_by_tag_is_never_an_aborted_one(store):
    restorable = record(store, seed="first")
    store.set_state(record(store, seed="second"), "aborted", event="trash failed")

    assert newest_for_tag(store, "v1")["id"] == restorable["id"]


# --- names: nothing invalid reaches the disk ---

BAD_REPOSITORIES = ["../../etc", "/etc", "a/../b", "Team/App", "", "a//b", "team/app/", None]
BAD_TAGS = ["../../etc", "a/b", "", ".hidden", "/abs", "UP/../x"]
BAD_DIGESTS = ["sha256:../../etc/passwd", "sha256:" + "A" * 64, "md5:" + "0" * 32, "sha256:" + "0" * 63]
BAD_ENTRY_IDS = ["../../etc/passwd", "/etc/passwd", "a/../b", "", "20261204T195012123456Z-3FA2C1D8E9B0-9F1C",
                 "20261204T195012123456Z-3fa2c1d8e9b0-9f1c/../../x", None]


def _create(registry=REGISTRY, repository=REPOSITORY, digest=None, tags=("v1",), removed=("v1",)):
    def call(store):
        manifest = make_manifest("named")
        if digest is not None:
            manifest = manifest._replace(digest=digest)
        store.create_entry(registry, repository, manifest, list(tags), list(removed), "tag")
    return call


def _bad_entry(entry_id):
    return {"id": entry_id, "registry": REGISTRY, "repository": REPOSITORY, "digest": make_manifest("x").digest}


INVALID_CALLS = (
    [pytest.param(_create(repository=r), id="create-repository-%r" % r) for r in BAD_REPOSITORIES]
    + [pytest.param(_create(tags=[t, "v1"]), id="create-tag-%r" % t) for t in BAD_TAGS]
    + [pytest.param(_create(tags=["v1"], removed=[t]), id="create-removed-tag-%r" % t) for t in BAD_TAGS[:2]]
    + [pytest.param(_create(digest=d), id="create-digest-%r" % d) for d in BAD_DIGESTS]
    + [pytest.param(_create(digest=""), id="create-digest-''")]
    + [pytest.param(_create(registry=r), id="create-registry-%r" % r) for r in ["", "http://../", "http://.."]]
    + [pytest.param(lambda s, i=i: s.get_entry(REGISTRY, REPOSITORY, i), id="get-entry-%r" % i)
       for i in BAD_ENTRY_IDS]
    + [pytest.param(lambda s, i=i: s.set_state(_bad_entry(i), "trashed"), id="set-state-%r" % i)
       for i in BAD_ENTRY_IDS]
    + [pytest.param(lambda s, r=r: s.entries(REGISTRY, r), id="entries-%r" % r) for r in BAD_REPOSITORIES]
    + [pytest.param(lambda s, d=d: s.read_manifest(dict(_bad_entry("x"), digest=d)), id="read-manifest-%r" % d)
       for d in BAD_DIGESTS]
)


@pytest.mark.parametrize("call", INVALID_CALLS)
def test_invalid_names_raise_and_change_nothing_on_disk(tmp_path, call):
    store = TrashStore(str(tmp_path / "trash"))
    store.set_state(record(store), "trashed")  # a used trash: its lock file exists already
    before = snapshot(tmp_path)

    with pytest.raises(TrashError):
        call(store)

    assert snapshot(tmp_path) == before


def test_refused_create_entry_does_not_create_the_trash_dir(tmp_path):
    root = tmp_path / "never-made"

    with pytest.raises(TrashError, match="invalid repository"):
        _create(repository="../../etc")(TrashStore(str(root)))

    assert list(tmp_path.iterdir()) == []


# --- the format marker ---

def test_first_write_marks_the_directory_as_a_version_1_trash(store, trash_dir):
    record(store)

    assert json.loads((trash_dir / "trash.json").read_text()) == {"format": "oci_registry.trash", "version": 1}


@pytest.mark.parametrize("marker", [
    b'{"format": "some-other-tool", "version": 1}',
    b'{"format": "oci_registry.trash", "version": 2}',
    b"not json",
    b"[]",
], ids=["foreign-format", "future-version", "not-json", "json-list"])
def test_directory_with_a_foreign_trash_json_is_refused_and_left_alone(trash_dir, marker):
    (trash_dir / "trash.json").write_bytes(marker)
    before = snapshot(trash_dir)

    with pytest.raises(TrashError, match="trash.json"):
        record(TrashStore(str(trash_dir)))

    assert snapshot(trash_dir) == before


def test_trash_dir_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "a-file"
    path.write_text("not a directory")

    with pytest.raises(TrashError, match="not a directory"):
        TrashStore(str(path))


# --- concurrent writers ---

def _write_entries(root, writer, shared, barrier):
    store = TrashStore(root)
    barrier.wait()
    for n in range(ENTRIES_PER_WRITER):
        # Every fifth snapshot has the same bytes in every writer: they race to store one blob.
        seed = "shared" if n % 5 == 0 else "w%d-%d" % (writer, n)
        tag = "w%d-%d" % (writer, n)
        entry = record(store, seed=seed, tags=[tag], removed=[tag])
        store.set_state(entry, "trashed", event="trash")
        # All writers append to one entry's history: a read-modify-write that only a lock keeps whole.
        store.set_state(dict(shared), "trashed", event="append", writer=writer, n=n)


def test_concurrent_writers_lose_and_corrupt_nothing(tmp_path):
    root = str(tmp_path / "trash")
    shared = record(TrashStore(root), seed="shared-history", repository="team/shared")
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(WRITERS)
    writers = [context.Process(target=_write_entries, args=(root, w, shared, barrier)) for w in range(WRITERS)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(120)
    assert [p.exitcode for p in writers] == [0] * WRITERS

    store = TrashStore(root)
    entries = store.entries(REGISTRY, REPOSITORY)
    assert store.damaged == []
    expected_tags = sorted("w%d-%d" % (w, n) for w in range(WRITERS) for n in range(ENTRIES_PER_WRITER))
    assert sorted(e["removed_tags"][0] for e in entries) == expected_tags
    assert len({e["id"] for e in entries}) == len(expected_tags)
    assert {e["state"] for e in entries} == {"trashed"}
    for entry in entries:
        store.read_manifest(entry)  # raises on a torn or mixed-up snapshot
    history = store.get_entry(REGISTRY, "team/shared", shared["id"])["history"]
    assert sorted((h["writer"], h["n"]) for h in history) == [
        (w, n) for w in range(WRITERS) for n in range(ENTRIES_PER_WRITER)]
    assert list(Path(root).rglob("*.tmp-*")) == [], "a temporary file was left behind"


def test_an_entry_with_rotten_content_can_still_be_purged(store, trash_dir):
    # Unlike an unreadable entry file, rotten content says what the entry needs: purging it is safe.
    entry = record(store)
    blob_file(trash_dir, entry["digest"]).write_bytes(b"rotten")
    assert store.check_content(entry)

    gone = store.purge([entry])

    assert gone["entries"] == [entry["id"]] and not entry_file(trash_dir, entry).exists()


def test_one_run_at_a_time_removes_a_given_manifest(store, trash_dir):
    # Two runs (threads here, each with a store of its own, as two playbooks have) take turns.
    digest = make_manifest("contended").digest
    other = TrashStore(str(trash_dir))
    order = []
    first_in = threading.Event()

    def second():
        first_in.wait(5)
        with other.removing(digest):
            order.append("second")
    worker = threading.Thread(target=second)
    worker.start()
    with store.removing(digest):
        first_in.set()
        worker.join(0.3)  # it cannot get in while the first holds the lock
        order.append("first")
    worker.join(5)

    assert order == ["first", "second"]
    # One lock file for the digest, from a fixed set, in a private directory.
    [lock] = Path(trash_dir, "locks").iterdir()
    assert re.fullmatch(r"remove-\d\d\.lock", lock.name)
    assert stat.S_IMODE(lock.parent.stat().st_mode) == 0o700 and stat.S_IMODE(lock.stat().st_mode) == 0o600
