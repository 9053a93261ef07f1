"""Managing the trash (trash_info, purge) and working in batches, against a real registry.

The registry's state is read with skopeo; the trash's with plain file reads, so that
"nothing removed" and "the layer is still there" are proven on disk, not by the code
under test. The listing and purge tests share one trash, built once with entries of
different ages, states, repositories and registries; the tests that change it work on
a copy.
"""

import datetime
import getpass
import hashlib
import json
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.images import skopeo_manifest, skopeo_pullable, skopeo_push, skopeo_tags
from support.manifests import blob_descriptors, put_variants
from support.tag_delete_proxy import TagDeleteProxy

from ansible_collections.oci_registry.trash.plugins.module_utils import _trash_store
from ansible_collections.oci_registry.trash.plugins.module_utils._errors import TrashError
from ansible_collections.oci_registry.trash.plugins.module_utils._registry_client import RegistryClient
from ansible_collections.oci_registry.trash.plugins.module_utils._restore_manifests import restore
from ansible_collections.oci_registry.trash.plugins.module_utils._trash_maintenance import purge, trash_info
from ansible_collections.oci_registry.trash.plugins.module_utils._trash_manifests import trash
from ansible_collections.oci_registry.trash.plugins.module_utils._trash_store import TrashStore, entry_digests

INFO_KEYS = {"id", "registry", "repository", "digest", "media_type", "removed_tags", "trashed_at", "reason",
             "user", "state", "manifest_size", "blob_bytes"}
NOW = datetime.datetime.now(datetime.timezone.utc)
BATCH = 50
# Well formed, and never made: entry ids start with the time they were made.
UNKNOWN_ID = "20000101T000000000000Z-000000000000-0000"


# --- reading the trash directory without the store ---

def tree(root):
    """Every path under root with its bytes (None for a directory): any change anywhere shows."""
    root = Path(root)
    return {p.relative_to(root).as_posix(): None if p.is_dir() else p.read_bytes() for p in root.rglob("*")}


def blob_file(root, digest):
    return Path(root, "blobs", *digest.split(":"))


def stored_digests(root):
    directory = Path(root, "blobs", "sha256")
    return {f"sha256:{p.name}" for p in directory.iterdir()} if directory.is_dir() else set()


def entry_file(root, entry):
    key = entry["registry"].split("://", 1)[1].replace(":", "_")
    return Path(root, "entries", key, *entry["repository"].split("/"), entry["id"] + ".json")


def entries_on_disk(root):
    return [json.loads(p.read_bytes()) for p in sorted(Path(root, "entries").rglob("*.json"))]


def assert_every_entry_has_its_content(root):
    """What purge must never break: each remaining entry's files are there, with the right bytes."""
    for entry in entries_on_disk(root):
        for digest in entry_digests(entry):
            data = blob_file(root, digest).read_bytes()
            assert f"sha256:{hashlib.sha256(data).hexdigest()}" == digest, f"{digest} of {entry['id']}"


def registry_blob_data(registry, digest):
    """Where distribution 2.8's filesystem driver keeps a blob's bytes."""
    encoded = digest.split(":", 1)[1]
    return registry.storage_root / "docker/registry/v2/blobs/sha256" / encoded[:2] / encoded / "data"


# --- one trash with entries of every kind, for listing and purging ---

APP, WEB = "trash-management/app", "trash-management/web"


@dataclass(frozen=True)
class Case:
    repository: str
    tag: str
    age: datetime.timedelta
    keep_blobs: bool = False
    through_proxy: bool = False  # the proxy has a URL of its own: to the trash, another registry
    sibling: str = None  # a second tag on the same digest, which the trash leaves in place
    restored: bool = False


CASES = {
    "old": Case(APP, "v1", datetime.timedelta(days=30)),
    "restored": Case(APP, "v2", datetime.timedelta(days=3), sibling="v2-alias", restored=True),
    "web": Case(WEB, "v1", datetime.timedelta(hours=2), keep_blobs=True),
    "elsewhere": Case(APP, "v3", datetime.timedelta(hours=1), through_proxy=True),
}


@dataclass(frozen=True)
class Populated:
    root: Path
    registry_url: str
    proxy_url: str
    entries: dict  # case -> the entry as the trash wrote it, read back from disk
    raw: dict  # case -> manifest bytes, as skopeo read them before the trash

    def ids(self, *cases):
        return {self.entries[case]["id"] for case in cases}

    def copy(self, destination):
        shutil.copytree(self.root, destination)
        return TrashStore(str(destination))


@pytest.fixture(scope="module")
def populated(registry, image, tmp_path_factory):
    """A trash holding one entry per CASES item, each trashed at NOW minus its age."""
    root = tmp_path_factory.mktemp("populated") / "trash"
    store = TrashStore(str(root))
    proxy = TagDeleteProxy(registry, tag_delete=False, paginate_tags=False).start()
    clients = {False: RegistryClient(registry.url), True: RegistryClient(proxy.url)}
    entries, raw = {}, {}
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name, case in CASES.items():
                tags = [case.tag] + ([case.sibling] if case.sibling else [])
                for tag in tags:
                    skopeo_push(image(f"management-{name}"), registry, f"{case.repository}:{tag}")
                raw[name] = skopeo_manifest(registry, f"{case.repository}:{case.tag}")[1]
                client = clients[case.through_proxy]
                # The store stamps entries (id and trashed_at) with utc_now(): this is their age.
                patch.setattr(_trash_store, "utc_now", lambda age=case.age: NOW - age)
                [entry] = trash(client, store, case.repository, tags=[case.tag], keep_blobs=case.keep_blobs,
                                reason=f"case {name}")["entries"]
                if case.restored:
                    restore(client, store, case.repository, entry_id=entry["id"])
                entries[name] = store.get_entry(client.url, case.repository, entry["id"])
    finally:
        for client in clients.values():
            client.close()
        proxy.stop()
    return Populated(root, registry.url, proxy.url, entries, raw)


def listed(result):
    return [entry["id"] for entry in result["entries"]]


# --- trash_info ---

def test_info_without_filters_lists_every_entry_newest_first_with_what_it_recorded(populated, registry):
    result = trash_info(TrashStore(str(populated.root)))

    assert listed(result) == [populated.entries[c]["id"] for c in ("elsewhere", "web", "restored", "old")]
    assert result["damaged"] == [] and result["changed"] is False
    old = result["entries"][-1]
    assert INFO_KEYS <= set(old)
    assert old["digest"] == "sha256:" + hashlib.sha256(populated.raw["old"]).hexdigest()
    assert (old["registry"], old["repository"], old["removed_tags"], old["state"]) == (
        registry.url, APP, ["v1"], "trashed")
    raw = populated.raw["old"]
    assert (old["media_type"], old["manifest_size"]) == (json.loads(raw)["mediaType"], len(raw))
    assert old["trashed_at"] == (NOW - CASES["old"].age).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (old["reason"], old["user"], old["blob_bytes"]) == ("case old", getpass.getuser(), 0)


def by(filters, expected, name=None):
    """A FILTERS case: filters (or a function of the populated trash giving them) and the cases listed."""
    return pytest.param(filters, expected, id=name or "&".join("%s=%s" % item for item in filters.items()))


FILTERS = [
    by({"repository": APP}, {"old", "restored", "elsewhere"}),
    by({"repository": WEB}, {"web"}),
    by({"repository": "trash-management/never-used"}, set()),
    by({"tag": "v1"}, {"old", "web"}),
    # A tag that shared the digest and was left in place still finds the entry.
    by({"tag": "v2-alias"}, {"restored"}),
    by({"state": "restored"}, {"restored"}),
    by({"state": "trashed"}, {"old", "web", "elsewhere"}),
    by({"older_than": "7d"}, {"old"}),
    by({"newer_than": "7d"}, {"restored", "web", "elsewhere"}),
    by({"newer_than": "90m"}, {"elsewhere"}),
    by({"older_than": "1d", "newer_than": "1w"}, {"restored"}),
    by({"older_than": "0s"}, set(CASES)),
    by({"repository": APP, "tag": "v1"}, {"old"}),
    by({"repository": APP, "state": "trashed", "newer_than": "1d"}, {"elsewhere"}),
    by(lambda t: {"registry_url": t.registry_url}, {"old", "restored", "web"}, "registry_url=direct"),
    by(lambda t: {"registry_url": t.proxy_url}, {"elsewhere"}, "registry_url=proxy"),
    # The URL is normalised as the modules normalise registry_url.
    by(lambda t: {"registry_url": t.proxy_url + "/"}, {"elsewhere"}, "registry_url=proxy-with-slash"),
    by(lambda t: {"registry_url": t.registry_url, "repository": APP, "state": "trashed"}, {"old"},
       "registry_url=direct&repository&state"),
    by(lambda t: {"digest": t.entries["web"]["digest"]}, {"web"}, "digest"),
    by(lambda t: {"digest": t.entries["web"]["digest"], "repository": APP}, set(), "digest&other-repository"),
]


@pytest.mark.parametrize("filters, expected", FILTERS)
def test_info_lists_exactly_the_entries_that_pass_every_filter(populated, filters, expected):
    filters = filters(populated) if callable(filters) else filters

    result = trash_info(TrashStore(str(populated.root)), **filters)

    assert set(listed(result)) == populated.ids(*expected)
    assert result["totals"]["entries"] == len(expected)


def test_info_totals_sum_the_matching_entries_and_measure_the_whole_directory(populated):
    files = sum(len(data) for data in tree(populated.root).values() if data is not None)
    store = TrashStore(str(populated.root))

    app = trash_info(store, repository=APP)["totals"]
    web = trash_info(store, repository=WEB)["totals"]

    assert app == {"entries": 3, "blob_bytes": 0, "disk_bytes": files,
                   "manifest_bytes": sum(len(populated.raw[c]) for c in ("old", "restored", "elsewhere"))}
    assert web == {"entries": 1, "manifest_bytes": len(populated.raw["web"]), "disk_bytes": files,
                   "blob_bytes": sum(d["size"] for d in blob_descriptors(populated.raw["web"]))}


def test_info_of_a_trash_dir_that_does_not_exist_lists_nothing_and_creates_nothing(tmp_path):
    result = trash_info(TrashStore(str(tmp_path / "never-written")))

    assert (result["entries"], result["damaged"]) == ([], [])
    assert result["totals"] == {"entries": 0, "manifest_bytes": 0, "blob_bytes": 0, "disk_bytes": 0}
    assert list(tmp_path.iterdir()) == []


def test_damaged_entry_is_reported_by_info_and_stops_purge_while_the_others_still_list(populated, tmp_path):
    store = populated.copy(tmp_path / "trash")
    damaged = entry_file(store.root, populated.entries["old"])
    damaged.write_bytes(damaged.read_bytes()[:40])
    before = tree(store.root)

    result = trash_info(store)

    assert set(listed(result)) == populated.ids("restored", "web", "elsewhere")
    assert len(result["damaged"]) == 1 and str(damaged) in result["damaged"][0]
    # A fresh store, as a separate purge task would open it.
    with pytest.raises(TrashError, match="damaged") as caught:
        purge(TrashStore(str(store.root)), older_than="0s")
    assert str(damaged) in caught.value.msg
    assert tree(store.root) == before


INVALID_FILTERS = [
    {"older_than": "14x"},
    {"newer_than": "14x"},
    {"older_than": "d14"},
    {"digest": "sha256:xyz"},
    {"digest": "md5:" + "0" * 32},
    {"repository": "../../etc"},
    {"repository": "Team/App"},
    {"tag": "not a tag"},
    {"registry_url": "ftp://127.0.0.1:5000"},
]


@pytest.mark.parametrize("operation", [trash_info, purge])
@pytest.mark.parametrize("filters", INVALID_FILTERS, ids=lambda f: "%s=%r" % next(iter(f.items())))
def test_an_invalid_filter_value_is_an_error_that_names_it_and_changes_nothing(
        populated, tmp_path, operation, filters):
    store = populated.copy(tmp_path / "trash")
    before = tree(store.root)
    [value] = filters.values()

    with pytest.raises(TrashError) as caught:
        operation(store, **filters)

    assert repr(value) in caught.value.msg or value in caught.value.msg
    assert tree(store.root) == before


@pytest.mark.parametrize("name", ["older_than", "newer_than"])
def test_an_empty_duration_is_refused_and_never_purges_the_whole_trash(populated, tmp_path, name):
    # What a playbook passes for an unset variable: older_than: "{{ retention | default('') }}".
    store = populated.copy(tmp_path / "trash")
    before = tree(store.root)

    with pytest.raises(TrashError, match="invalid duration"):
        purge(store, **{name: ""})

    assert tree(store.root) == before


# --- purge ---

def assert_purged_exactly(root, before, purged_files):
    """The tree lost exactly these files (and directories emptied by that), nothing else."""
    after = tree(root)
    lost = {path for path in before if path not in after}
    assert {p for p in lost if before[p] is not None} == purged_files
    assert all(after[p] == before[p] for p in after)


def own_files(populated, case):
    """The files only this case's entry needs: its entry file, its manifest, its kept blobs."""
    entry = populated.entries[case]
    others = set().union(*(entry_digests(e) for c, e in populated.entries.items() if c != case))
    return {entry_file(Path("."), entry).as_posix()} | {
        blob_file(Path("."), d).as_posix() for d in entry_digests(entry) - others}


def test_purge_by_entry_ids_removes_those_entries_and_only_what_they_alone_needed(populated, tmp_path):
    store = populated.copy(tmp_path / "trash")
    before = tree(store.root)
    gone = own_files(populated, "old") | own_files(populated, "web")

    result = purge(store, entry_ids=sorted(populated.ids("old", "web")))

    assert result["changed"] is True
    assert set(result["purged"]) == populated.ids("old", "web")
    # Kept blobs of web: its config and layer, besides the two manifests.
    assert result["blobs"] == 2 + len(blob_descriptors(populated.raw["web"]))
    assert result["bytes_freed"] == sum(len(before[p]) for p in gone)
    assert_purged_exactly(store.root, before, gone)
    assert_every_entry_has_its_content(store.root)
    assert set(listed(trash_info(store))) == populated.ids("restored", "elsewhere")


@pytest.mark.parametrize("ids", [[UNKNOWN_ID], ["old", UNKNOWN_ID], ["not-an-id"]], ids=[
    "unknown", "known-and-unknown", "malformed"])
def test_purge_of_an_unknown_entry_id_names_it_and_purges_nothing(populated, tmp_path, ids):
    store = populated.copy(tmp_path / "trash")
    before = tree(store.root)
    ids = [populated.entries[i]["id"] if i in populated.entries else i for i in ids]

    with pytest.raises(TrashError, match="no trash entry") as caught:
        purge(store, entry_ids=ids)

    assert ids[-1] in caught.value.msg
    assert tree(store.root) == before


def test_purge_check_mode_then_real_then_again_reports_then_removes_then_finds_nothing(populated, tmp_path):
    store = populated.copy(tmp_path / "trash")
    before = tree(store.root)
    gone = own_files(populated, "old")

    checked = purge(store, older_than="7d", check_mode=True)

    assert (checked["changed"], checked["purged"]) == (True, [populated.entries["old"]["id"]])
    assert checked["bytes_freed"] == sum(len(before[p]) for p in gone)
    assert tree(store.root) == before

    real = purge(store, older_than="7d")

    assert {k: real[k] for k in ("changed", "purged", "blobs", "bytes_freed")} == {
        k: checked[k] for k in ("changed", "purged", "blobs", "bytes_freed")}
    assert_purged_exactly(store.root, before, gone)
    assert_every_entry_has_its_content(store.root)

    after = tree(store.root)
    for check_mode in (False, True):
        again = purge(store, older_than="7d", check_mode=check_mode)
        assert (again["changed"], again["purged"], again["blobs"], again["bytes_freed"]) == (False, [], 0, 0)
    assert tree(store.root) == after


def test_purge_of_a_trash_dir_that_does_not_exist_changes_nothing_and_creates_nothing(tmp_path):
    result = purge(TrashStore(str(tmp_path / "never-written")), older_than="0s")

    assert (result["changed"], result["purged"], result["bytes_freed"]) == (False, [], 0)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def shared_layer(registry_factory, image, repo):
    """A registry of its own (it is garbage-collected) with tags a and b: two images on one base layer.

    Returns {tag: (raw manifest, its blob digests)}.
    """
    target = registry_factory()
    base = ("management-shared-base", 1024)
    images = {}
    for tag in ("a", "b"):
        skopeo_push(image(f"management-on-base-{tag}", base_layer=base), target, f"{repo}:{tag}", fmt="oci")
        raw = skopeo_manifest(target, f"{repo}:{tag}")[1]
        images[tag] = (raw, {d["digest"] for d in blob_descriptors(raw)})
    return target, images


def test_a_kept_layer_shared_by_two_entries_stays_until_the_last_of_them_is_purged(
        shared_layer, connect, store, trash_dir, repo, tmp_path):
    target, images = shared_layer
    blobs_a, (raw_b, blobs_b) = images["a"][1], images["b"]
    [shared] = blobs_a & blobs_b
    client = connect(target)
    trashed = trash(client, store, repo, tags=["a", "b"], keep_blobs=True)["entries"]
    entries = {e["removed_tags"][0]: e for e in trashed}
    assert blobs_a | blobs_b <= stored_digests(trash_dir)

    first = purge(store, entry_ids=[entries["a"]["id"]])

    # a's manifest, config and own layer go; the base layer stays for b.
    assert first["purged"] == [entries["a"]["id"]]
    assert stored_digests(trash_dir) == blobs_b | {entries["b"]["digest"]}
    assert shared in stored_digests(trash_dir)
    assert_every_entry_has_its_content(trash_dir)
    # Only the trash has b's blobs now: the registry's garbage collector took them.
    target.stop()
    target.garbage_collect()
    target.start()
    assert [d for d in blobs_b if registry_blob_data(target, d).exists()] == []
    restore(client, store, repo, tags=["b"])
    assert skopeo_manifest(target, f"{repo}:b")[1] == raw_b
    assert skopeo_pullable(target, f"{repo}:b", tmp_path / "pulled")

    last = purge(store, entry_ids=[entries["b"]["id"]])

    assert last["blobs"] == 1 + len(blobs_b)
    assert stored_digests(trash_dir) == set()
    assert list((trash_dir / "entries").iterdir()) == []


class Killed(BaseException):
    """Stands for the process dying: not an error any code path handles."""


def test_blobs_left_by_a_run_killed_before_its_entry_are_swept_by_the_next_purge(
        monkeypatch, client, store, trash_dir, registry, image, repo):
    digest = skopeo_push(image("management-killed"), registry, f"{repo}:a")
    blobs = {d["digest"] for d in blob_descriptors(skopeo_manifest(registry, f"{repo}:a")[1])}

    def die(*args, **kwargs):
        raise Killed()
    monkeypatch.setattr(store, "create_entry", die)
    with pytest.raises(Killed):
        trash(client, store, repo, tags=["a"], keep_blobs=True)
    monkeypatch.undo()
    assert stored_digests(trash_dir) == blobs and entries_on_disk(trash_dir) == []
    assert skopeo_manifest(registry, f"{repo}:a")[0] == digest, "nothing was deleted before the entry"

    # The retention rule, although no entry is old enough: the sweep runs whatever the filter.
    swept = purge(TrashStore(str(trash_dir)), older_than="14d")

    assert (swept["changed"], swept["purged"], swept["blobs"]) == (True, [], len(blobs))
    assert stored_digests(trash_dir) == set()
    assert purge(TrashStore(str(trash_dir)), older_than="14d")["changed"] is False


def test_purges_beside_a_running_trash_never_sweep_blobs_it_has_not_yet_claimed(
        monkeypatch, client, store, trash_dir, registry, image, repo):
    # Three layers of 2 MiB, streamed slowly as from a distant registry: while they arrive,
    # the config blob (and, for the second tag, all of them) sit in the trash with no entry yet.
    skopeo_push(image("management-race", layer_size=2 << 20, extra_layers=2), registry, f"{repo}:base", fmt="oci")
    digests = put_variants(registry, repo, "base", ["a", "b", "c"])
    times = {}
    chunks = client.blob_chunks

    def slow_chunks(repository, digest):
        times.setdefault("streaming", time.monotonic())
        for chunk in chunks(repository, digest):
            time.sleep(0.05)
            yield chunk
    monkeypatch.setattr(client, "blob_chunks", slow_chunks)

    def trash_in_background():
        try:
            times["result"] = trash(client, store, repo, tags=list(digests), keep_blobs=True, parallel=1)
        except TrashError as exc:
            times["result"] = exc
        finally:
            times["done"] = time.monotonic()
    # parallel 1: the three entries are written one after the other, a window between each.
    worker = threading.Thread(target=trash_in_background)

    # Not older_than=0s: that would rightly purge the new entries once the trash is done.
    # The sweep of unreferenced content, which every purge runs, is what could hurt.
    purger = TrashStore(str(trash_dir))
    purges = []
    worker.start()
    while worker.is_alive():
        started = time.monotonic()
        purge(purger, older_than="1d")
        purges.append((started, time.monotonic()))
    worker.join()

    overlapping = [p for p in purges if p[0] < times["done"] and p[1] > times["streaming"]]
    assert overlapping, "no purge ran while the trash was writing: the test proved nothing"
    assert not isinstance(times["result"], TrashError), times["result"].msg
    assert sorted(e["removed_tags"][0] for e in times["result"]["entries"]) == ["a", "b", "c"]
    assert len(entries_on_disk(trash_dir)) == 3
    assert_every_entry_has_its_content(trash_dir)
    monkeypatch.undo()
    restore(client, store, repo, tags=list(digests))
    assert {t: skopeo_manifest(registry, f"{repo}:{t}")[0] for t in digests} == digests


# --- batches ---

@pytest.fixture
def batch(registry, image, repo):
    """BATCH tags of repo, each on a digest of its own; returns {tag: digest}."""
    skopeo_push(image("management-batch"), registry, f"{repo}:base", fmt="oci")
    return put_variants(registry, repo, "base", ["t%02d" % n for n in range(BATCH)])


def recorder():
    calls = []
    return calls, lambda done, total: calls.append((done, total))


def assert_progress_counted_every_item(calls, total):
    assert sorted(calls) == [(n, total) for n in range(1, total + 1)]


def test_a_batch_of_tags_is_trashed_in_one_call_and_restored_in_one_call(client, store, registry, repo, batch):
    trash_calls, trash_progress = recorder()

    trashed = trash(client, store, repo, tags=list(batch), parallel=8, progress=trash_progress)

    assert skopeo_tags(registry, repo) == ["base"]
    assert trashed["changed"] is True
    assert {e["removed_tags"][0]: e["digest"] for e in trashed["entries"]} == batch
    assert [len(e["removed_tags"]) for e in trashed["entries"]] == [1] * BATCH
    assert {t["tag"]: (t["digest"], t["removed"]) for t in trashed["tags"]} == {
        tag: (digest, True) for tag, digest in batch.items()}
    assert len(store.entries(client.url, repo)) == BATCH
    assert_progress_counted_every_item(trash_calls, BATCH)
    restore_calls, restore_progress = recorder()

    restored = restore(client, store, repo, tags=list(batch), parallel=8, progress=restore_progress)

    assert {r["tag"]: r["digest"] for r in restored["restored"]} == batch
    assert skopeo_tags(registry, repo) == sorted(["base", *batch])
    assert {tag: skopeo_manifest(registry, f"{repo}:{tag}")[0] for tag in batch} == batch
    assert_progress_counted_every_item(restore_calls, BATCH)


@pytest.fixture
def unkeepable(registry, image, repo):
    """Tag 'broken' of repo: a manifest whose layer the registry's storage has lost."""
    # Blobs are stored once per registry: an image of its own, so no other test loses the layer.
    skopeo_push(image(f"management-unkeepable-{repo}"), registry, f"{repo}:broken")
    raw = skopeo_manifest(registry, f"{repo}:broken")[1]
    layer = json.loads(raw)["layers"][0]["digest"]
    registry_blob_data(registry, layer).unlink()
    return layer


def test_one_tag_that_cannot_be_kept_fails_alone_and_the_rest_of_the_batch_is_trashed(
        client, store, registry, repo, batch, unkeepable):
    good = sorted(batch)[:5]

    with pytest.raises(TrashError) as caught:
        trash(client, store, repo, tags=good + ["broken"], keep_blobs=True, parallel=8)

    details = caught.value.details
    assert [f["tag"] for f in details["failures"]] == ["broken"]
    assert unkeepable in details["failures"][0]["msg"]
    assert sorted(e["removed_tags"][0] for e in details["entries"]) == good
    assert details["changed"] is True
    assert skopeo_tags(registry, repo) == sorted(set(batch) - set(good) | {"base", "broken"})
    assert sorted(e["removed_tags"][0] for e in store.entries(client.url, repo)) == good


def test_the_message_of_a_failed_batch_names_the_failed_tag(client, store, registry, repo, batch, unkeepable):
    with pytest.raises(TrashError) as caught:
        trash(client, store, repo, tags=sorted(batch)[:5] + ["broken"], keep_blobs=True)

    assert "broken" in caught.value.msg


def test_restore_of_a_batch_with_a_tag_never_trashed_names_it_and_restores_the_others(
        client, store, registry, repo, batch):
    good = sorted(batch)[:5]
    trash(client, store, repo, tags=good)

    with pytest.raises(TrashError, match="no entry that removed tag never-trashed") as caught:
        restore(client, store, repo, tags=good + ["never-trashed"], parallel=8)

    details = caught.value.details
    assert [f["tag"] for f in details["failures"]] == ["never-trashed"]
    assert {r["tag"]: r["digest"] for r in details["restored"]} == {t: batch[t] for t in good}
    assert details["changed"] is True
    assert skopeo_tags(registry, repo) == sorted(["base", *batch])
    assert {tag: skopeo_manifest(registry, f"{repo}:{tag}")[0] for tag in good} == {t: batch[t] for t in good}


def test_progress_ends_with_every_item_done_even_when_a_report_is_slow(client, store, registry, repo, batch):
    tags = sorted(batch)[:4]
    calls = []
    last_started = threading.Event()

    def progress(done, total):
        if done == total:
            last_started.set()
        elif done == total - 1:
            # A report that takes a while, as a display waiting for its output lock does.
            last_started.wait(timeout=1)
        calls.append((done, total))

    trash(client, store, repo, tags=tags, parallel=4, progress=progress)

    assert calls[-1] == (len(tags), len(tags))
