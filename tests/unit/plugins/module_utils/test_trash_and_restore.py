"""trash() and restore() against a real registry, with skopeo as the witness.

Where the order of requests is the promise (nothing written in check mode, no PUT
before a refusal, which path removed a tag), the client goes through a recording
proxy; the registry's state is always read with skopeo, directly.
"""

import json
from urllib.parse import urlsplit

import pytest

from support.images import skopeo_manifest, skopeo_pullable, skopeo_tags

from ansible_collections.oci_registry.trash.plugins.module_utils import _registry_client
from ansible_collections.oci_registry.trash.plugins.module_utils._errors import RegistryError, TrashError
from ansible_collections.oci_registry.trash.plugins.module_utils._restore_manifests import restore
from ansible_collections.oci_registry.trash.plugins.module_utils._trash_manifests import trash
from ansible_collections.oci_registry.trash.plugins.module_utils._trash_store import TrashStore

WRITES = ("PUT", "POST", "PATCH", "DELETE")
# The digest deletes_enabled() asks the registry about; no manifest can have it.
PROBE = "sha256:" + "0" * 64


@pytest.fixture
def recorder(tag_delete_proxy):
    """A proxy that only forwards and records: the registry keeps its 2.8 behaviour."""
    return tag_delete_proxy(tag_delete=False, paginate_tags=False)


@pytest.fixture
def recorded_client(connect, recorder):
    return connect(recorder)


def manifest_writes(proxy):
    """(method, reference, status) of each manifest PUT and DELETE the proxy saw, the probe left out."""
    found = []
    for exchange in proxy.seen("PUT", "DELETE"):
        path = urlsplit(exchange.path).path
        if "/manifests/" in path:
            reference = path.rsplit("/manifests/", 1)[1]
            if reference != PROBE:
                found.append((exchange.method, reference, exchange.status))
    return found


def state_of(store, client, repo, entry_id):
    return store.get_entry(client.url, repo, entry_id)["state"]


# --- trash: what goes and what stays ---

def test_scope_tag_removes_only_the_named_tag_and_the_sibling_never_moves(
        recorded_client, recorder, store, registry, push, repo):
    digest = push("sibling", "a", "b")
    other = push("unrelated", "c")
    sibling_before = skopeo_manifest(registry, f"{repo}:b")

    result = trash(recorded_client, store, repo, tags=["a"])

    assert result["changed"] is True
    [entry] = result["entries"]
    assert (entry["digest"], entry["removed_tags"], entry["other_tags"]) == (digest, ["a"], ["b"])
    assert skopeo_tags(registry, repo) == ["b", "c"]
    assert skopeo_manifest(registry, f"{repo}:b") == sibling_before
    assert skopeo_manifest(registry, f"{repo}@{digest}")[0] == digest
    assert skopeo_manifest(registry, f"{repo}:c")[0] == other
    # 2.8 refuses the tag DELETE, so the tag is re-pointed at a placeholder that is then deleted.
    writes = manifest_writes(recorder)
    assert ("DELETE", "a", 400) in writes
    assert [(w[0], w[1]) for w in writes if w[0] == "PUT"] == [("PUT", "a")]
    placeholder = next(e.digest for e in recorder.seen("PUT") if e.path.endswith("/manifests/a"))
    assert placeholder != digest
    assert ("DELETE", placeholder, 202) in writes
    assert not [w for w in writes if w[1] in (digest, "b")], "the shared manifest or the sibling was touched"
    assert skopeo_manifest(registry, f"{repo}@{placeholder}") is None, "the placeholder was left behind"
    assert state_of(store, recorded_client, repo, entry["id"]) == "trashed"


def test_scope_manifest_removes_every_tag_of_the_digest_and_records_them(client, store, registry, push, repo):
    digest = push("whole", "a", "b")
    push("unrelated", "c")

    result = trash(client, store, repo, tags=["a"], scope="manifest")

    [entry] = result["entries"]
    assert (entry["removed_tags"], entry["other_tags"]) == (["a", "b"], [])
    assert skopeo_tags(registry, repo) == ["c"]
    assert skopeo_manifest(registry, f"{repo}@{digest}") is None
    stored = store.get_entry(client.url, repo, entry["id"])
    assert (stored["tags"], stored["scope"], stored["state"]) == (["a", "b"], "manifest", "trashed")


def test_scope_manifest_finds_sibling_tags_across_tag_list_pages(
        monkeypatch, tag_delete_proxy, connect, store, registry, push, repo):
    tags = ["t%d" % n for n in range(5)]
    digest = push("paged", *tags)
    monkeypatch.setattr(_registry_client, "TAG_PAGE_SIZE", 2)

    result = trash(connect(tag_delete_proxy()), store, repo, tags=["t0"], scope="manifest")

    assert result["entries"][0]["removed_tags"] == tags
    assert skopeo_tags(registry, repo) == []
    assert skopeo_manifest(registry, f"{repo}@{digest}") is None


def test_naming_every_tag_of_a_digest_deletes_it_by_digest_without_a_placeholder(
        recorded_client, recorder, store, registry, push, repo):
    digest = push("all-named", "a", "b")
    other = push("unrelated", "c")

    result = trash(recorded_client, store, repo, tags=["a", "b"])

    assert result["entries"][0]["removed_tags"] == ["a", "b"]
    assert manifest_writes(recorder) == [("DELETE", digest, 202)]
    assert skopeo_tags(registry, repo) == ["c"]
    assert skopeo_manifest(registry, f"{repo}@{digest}") is None
    assert skopeo_manifest(registry, f"{repo}:c")[0] == other


def test_trash_by_digest_removes_the_manifest_and_all_its_tags(client, store, registry, push, repo):
    digest = push("by-digest", "a", "b")
    push("unrelated", "c")

    result = trash(client, store, repo, digest=digest)

    assert result["changed"] is True
    [outcome] = result["tags"]
    assert (outcome["digest"], outcome["tags"], outcome["removed"], outcome["in_trash"]) == (
        digest, ["a", "b"], True, True)
    assert skopeo_tags(registry, repo) == ["c"]
    assert skopeo_manifest(registry, f"{repo}@{digest}") is None


def test_trashing_an_absent_tag_is_no_change_and_says_whether_the_trash_has_it(client, store, push, repo):
    push("absent", "a")
    first = trash(client, store, repo, tags=["a"])

    again = trash(client, store, repo, tags=["a", "never-pushed"])

    assert again["changed"] is False
    assert again["entries"] == []
    outcomes = {o["tag"]: o for o in again["tags"]}
    assert (outcomes["a"]["removed"], outcomes["a"]["in_trash"]) == (False, True)
    assert outcomes["a"]["entry"] == first["entries"][0]["id"]
    assert (outcomes["never-pushed"]["in_trash"], outcomes["never-pushed"]["entry"]) == (False, None)
    assert len(store.entries(client.url, repo)) == 1, "a no-op wrote an entry"


@pytest.mark.parametrize("scope, removed", [("tag", ["a"]), ("manifest", ["a", "b"])])
def test_check_mode_trash_writes_nothing_to_the_registry_and_creates_no_trash_dir(
        recorded_client, recorder, tmp_path, registry, push, repo, scope, removed):
    digest = push("check-mode", "a", "b")
    root = tmp_path / "not-yet"

    result = trash(recorded_client, TrashStore(str(root)), repo, tags=["a"], scope=scope, check_mode=True)

    assert result["changed"] is True
    assert (result["entries"][0]["digest"], result["entries"][0]["removed_tags"]) == (digest, removed)
    assert not root.exists()
    assert recorder.seen(*WRITES) == []
    assert skopeo_tags(registry, repo) == ["a", "b"]


def test_deletes_disabled_is_an_error_that_says_so_and_writes_no_entry(
        registry_factory, connect, store, trash_dir, push, repo):
    target = registry_factory(delete=False)
    digest = push("undeletable", "a", target=target)

    with pytest.raises(RegistryError) as caught:
        trash(connect(target), store, repo, tags=["a"])

    assert caught.value.status == 405
    assert "deletes are disabled" in caught.value.msg
    assert list(trash_dir.iterdir()) == []
    assert skopeo_manifest(target, f"{repo}:a")[0] == digest


# --- trash: bookkeeping when the delete fails ---

def _failing_delete(client, then=None, outcome_unknown=False):
    """A delete_manifest that fails like a broken registry, optionally after really deleting.

    outcome_unknown: as when an earlier try's answer was lost, so the DELETE may still land.
    """
    def delete_manifest(repository, reference):
        if then:
            then(repository, reference)
        raise RegistryError("delete manifest", f"{client.url}/v2/{repository}/manifests/{reference}", 500,
                            "UNKNOWN", "storage backend unavailable", outcome_unknown=outcome_unknown)
    return delete_manifest


def test_failed_delete_marks_the_entry_aborted_and_restore_by_tag_skips_it(
        monkeypatch, client, store, registry, push, repo):
    digest = push("abort", "a")
    monkeypatch.setattr(client, "delete_manifest", _failing_delete(client))

    with pytest.raises(TrashError, match="storage backend unavailable"):
        trash(client, store, repo, tags=["a"])

    [entry] = store.entries(client.url, repo)
    assert entry["state"] == "aborted"
    assert skopeo_manifest(registry, f"{repo}:a")[0] == digest
    monkeypatch.undo()
    with pytest.raises(TrashError, match="no entry that removed tag a"):
        restore(client, store, repo, tags=["a"])


def test_delete_that_happened_but_answered_an_error_is_marked_trashed_and_restorable(
        monkeypatch, client, store, registry, push, repo):
    push("lost-answer", "a")
    original = skopeo_manifest(registry, f"{repo}:a")
    monkeypatch.setattr(client, "delete_manifest", _failing_delete(client, then=client.delete_manifest))

    with pytest.raises(TrashError, match="storage backend unavailable"):
        trash(client, store, repo, tags=["a"])

    [entry] = store.entries(client.url, repo)
    assert entry["state"] == "trashed"
    assert skopeo_tags(registry, repo) == []
    monkeypatch.undo()
    restore(client, store, repo, tags=["a"])
    assert skopeo_manifest(registry, f"{repo}:a") == original


def test_delete_whose_outcome_is_unknown_stays_pending_until_a_later_run_finds_the_tag_in_place(
        monkeypatch, client, store, registry, push, repo):
    digest = push("unknown-outcome", "a", "b")
    # An entry that also removed "c" (since pushed elsewhere, say): the later run cannot vouch for it.
    wider = store.create_entry(client.url, repo, client.get_manifest(repo, "b"), ["a", "b", "c"], ["a", "b", "c"],
                               "tag")
    monkeypatch.setattr(client, "delete_manifest", _failing_delete(client, outcome_unknown=True))

    with pytest.raises(TrashError, match="storage backend unavailable"):
        trash(client, store, repo, tags=["a"], scope="manifest")
    [unknown] = [e for e in store.entries(client.url, repo) if e["id"] != wider["id"]]
    # The DELETE may still land: pending, which restore by tag trusts, not aborted.
    assert unknown["state"] == "pending"
    assert unknown["history"][-1]["event"] == "trash failed, outcome unknown"
    assert store.newest_entries(client.url, repo)[0]["a"]["id"] == unknown["id"]

    monkeypatch.undo()
    result = trash(client, store, repo, tags=["a", "b"])

    [newer] = result["entries"]
    assert skopeo_tags(registry, repo) == []
    settled = store.get_entry(client.url, repo, unknown["id"])
    assert (settled["state"], settled["history"][-1]["superseded_by"]) == ("aborted", newer["id"])
    assert store.get_entry(client.url, repo, wider["id"])["state"] == "pending"
    assert newer["digest"] == digest and newer["removed_tags"] == ["a", "b"]


# --- restore ---

@pytest.mark.parametrize("fmt", ["v2s2", "oci"])
def test_restore_puts_back_a_byte_identical_manifest_that_pulls(client, store, registry, push, repo, tmp_path, fmt):
    digest = push(f"round-trip-{fmt}", "a", fmt=fmt)
    original = skopeo_manifest(registry, f"{repo}:a")
    trashed = trash(client, store, repo, tags=["a"])
    assert skopeo_manifest(registry, f"{repo}:a") is None

    result = restore(client, store, repo, tags=["a"])

    assert result["changed"] is True
    assert result["restored"] == [{"repository": repo, "tag": "a", "digest": digest}]
    assert result["entry"] == trashed["entries"][0]["id"]
    assert skopeo_manifest(registry, f"{repo}:a") == original
    assert skopeo_pullable(registry, f"{repo}:a", tmp_path / "pulled")
    assert state_of(store, client, repo, result["entry"]) == "restored"
    assert restore(client, store, repo, tags=["a"])["changed"] is False


def test_restore_all_tags_false_brings_back_the_named_tag_and_true_the_rest(client, store, registry, push, repo):
    digest = push("all-tags", "a", "b")
    trash(client, store, repo, tags=["a", "b"])

    only = restore(client, store, repo, tags=["a"], all_tags=False)

    assert [r["tag"] for r in only["restored"]] == ["a"]
    assert skopeo_tags(registry, repo) == ["a"]

    rest = restore(client, store, repo, tags=["a"], all_tags=True)

    assert [r["tag"] for r in rest["restored"]] == ["b"]
    assert skopeo_tags(registry, repo) == ["a", "b"]
    assert skopeo_manifest(registry, f"{repo}:b")[0] == digest


def test_restore_refuses_a_tag_that_now_points_elsewhere_and_overwrites_nothing(client, store, registry, push, repo):
    trashed = push("conflict-old", "a")
    trash(client, store, repo, tags=["a"])
    newer = push("conflict-new", "a")

    with pytest.raises(TrashError, match="now points at %s" % newer):
        restore(client, store, repo, tags=["a"])

    assert skopeo_manifest(registry, f"{repo}:a")[0] == newer
    assert skopeo_manifest(registry, f"{repo}@{trashed}") is None
    assert store.entries(client.url, repo)[0]["state"] == "trashed"


def test_restore_after_garbage_collection_names_the_missing_blobs_before_any_put(
        registry_factory, tag_delete_proxy, connect, store, push, repo):
    target = registry_factory()
    proxy = tag_delete_proxy(target, tag_delete=False, paginate_tags=False)
    client = connect(proxy)
    digest = push("collected", "a", target=target)
    manifest = json.loads(skopeo_manifest(target, f"{repo}:a")[1])
    blobs = [manifest["config"]["digest"]] + [layer["digest"] for layer in manifest["layers"]]
    trash(client, store, repo, tags=["a"])
    target.stop()
    target.garbage_collect()
    target.start()
    proxy.clear()

    with pytest.raises(TrashError, match="garbage") as caught:
        restore(client, store, repo, tags=["a"])

    assert [b for b in blobs if b not in caught.value.msg] == []
    assert proxy.seen(*WRITES) == []
    assert skopeo_tags(target, repo) == []
    assert skopeo_manifest(target, f"{repo}@{digest}") is None
    assert store.entries(client.url, repo)[0]["state"] == "trashed"


def test_restore_of_a_tampered_snapshot_is_refused_and_sends_nothing(
        recorded_client, recorder, store, trash_dir, registry, push, repo):
    digest = push("tampered", "a")
    trash(recorded_client, store, repo, tags=["a"])
    snapshot = trash_dir / "blobs" / "sha256" / digest.split(":")[1]
    snapshot.write_bytes(snapshot.read_bytes() + b" ")
    recorder.clear()

    with pytest.raises(TrashError, match="damaged"):
        restore(recorded_client, store, repo, tags=["a"])

    assert recorder.seen(*WRITES) == []
    assert skopeo_tags(registry, repo) == []


def test_check_mode_restore_writes_nothing_to_the_registry_or_the_trash(
        recorded_client, recorder, store, trash_dir, registry, push, repo):
    digest = push("check-restore", "a")
    entry = trash(recorded_client, store, repo, tags=["a"])["entries"][0]
    before = {p: p.read_bytes() for p in trash_dir.rglob("*") if p.is_file()}
    recorder.clear()

    result = restore(recorded_client, store, repo, tags=["a"], check_mode=True)

    assert result["changed"] is True
    assert result["restored"] == [{"repository": repo, "tag": "a", "digest": digest}]
    assert recorder.seen(*WRITES) == []
    assert skopeo_tags(registry, repo) == []
    assert {p: p.read_bytes() for p in trash_dir.rglob("*") if p.is_file()} == before
    assert state_of(store, recorded_client, repo, entry["id"]) == "trashed"


def test_restore_works_from_an_entry_left_pending_by_a_crash_after_the_delete(client, store, registry, push, repo):
    digest = push("crashed", "a")
    original = skopeo_manifest(registry, f"{repo}:a")
    entry = store.create_entry(client.url, repo, client.get_manifest(repo, "a"), ["a"], ["a"], "tag")
    assert client.delete_manifest(repo, digest) is True
    assert skopeo_tags(registry, repo) == []

    result = restore(client, store, repo, tags=["a"])

    assert result["entry"] == entry["id"]
    assert skopeo_manifest(registry, f"{repo}:a") == original
    assert state_of(store, client, repo, entry["id"]) == "restored"


# --- registries that delete by tag (distribution 3.x, zot, Quay, GitLab) ---

def test_scope_tag_deletes_by_tag_where_the_registry_supports_it_and_restores(
        tag_delete_proxy, connect, store, registry, push, repo):
    digest = push("three-x", "a", "b")
    original = skopeo_manifest(registry, f"{repo}:a")
    proxy = tag_delete_proxy()
    client = connect(proxy)

    result = trash(client, store, repo, tags=["a"])

    assert (result["entries"][0]["removed_tags"], result["entries"][0]["other_tags"]) == (["a"], ["b"])
    assert manifest_writes(proxy) == [("DELETE", "a", 202)]
    assert proxy.seen("PUT", "POST", "PATCH") == [], "a placeholder was made although tag DELETE works"
    assert skopeo_tags(registry, repo) == ["b"]
    assert skopeo_manifest(registry, f"{repo}:b")[0] == digest

    restore(client, store, repo, tags=["a"])

    assert skopeo_manifest(registry, f"{repo}:a") == original
    assert skopeo_tags(registry, repo) == ["a", "b"]
