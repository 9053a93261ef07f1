"""Full fidelity at the core: a trashed image comes back whole, or restore says why before it writes.

Against real distribution 2.8 registries, with skopeo as the witness of the registry's
state: multi-platform images, restore after garbage collection (the safe way, and the
GC-while-running trap of distribution's blob-descriptor cache), a layer shared by
trashed images, force, restore into another repository, token auth and a flaky registry.

Garbage collection sweeps a whole registry, so every test that runs it starts a
registry of its own: the session registry holds blobs other tests' restores need.
Where the order or kind of requests is the promise (no write before a refusal, a
mount instead of an upload, no Basic credentials to the registry), the client goes
through a recording proxy.
"""

import json
import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from support.fault_proxy import Fault, FaultProxy, first_tries
from support.images import skopeo_manifest, skopeo_pullable, skopeo_tags
from support.registry import Registry
from support.token_issuer import TokenIssuer

from ansible_collections.oci_registry.trash.plugins.module_utils._errors import RegistryError, TrashError
from ansible_collections.oci_registry.trash.plugins.module_utils._restore_manifests import restore
from ansible_collections.oci_registry.trash.plugins.module_utils._trash_maintenance import trash_info
from ansible_collections.oci_registry.trash.plugins.module_utils._trash_manifests import trash

WRITES = ("PUT", "POST", "PATCH", "DELETE")
TWO_PLATFORMS = {"architectures": ("amd64", "arm64")}
INDEX_TYPES = {"oci": "application/vnd.oci.image.index.v1+json",
               "v2s2": "application/vnd.docker.distribution.manifest.list.v2+json"}
# Large next to everything else an entry stores (a few KiB), small enough to stay fast.
SHARED_LAYER_SIZE = 4 << 20
ALICE = {"username": "alice", "password": "alice-s3cret"}
WRONG_PASSWORD = {"username": "alice", "password": "not-alices-password-7"}
RETRIES = 2
# The faults of a flaky registry, by the names the tests are parametrized with.
FLAKY = {"503": Fault("status", status=503, retry_after="0", close=True), "drop": Fault("drop"),
         "lose_answer": Fault("lose_answer")}


# --- fixtures ---

@pytest.fixture
def recorder_for(tag_delete_proxy):
    """``recorder_for(target)``: a proxy that only forwards and records, so the registry keeps its 2.8 behaviour."""
    return lambda target: tag_delete_proxy(target, tag_delete=False, paginate_tags=False)


@pytest.fixture
def recorder(recorder_for, registry):
    return recorder_for(registry)


@pytest.fixture
def recorded_client(connect, recorder):
    return connect(recorder)


@pytest.fixture
def flaky(request):
    """``flaky(target, fault, **first_tries options)``: a started FaultProxy whose rule is first_tries."""
    def start(target, fault, **tries):
        proxy = FaultProxy(target, rule=first_tries(fault, **tries))
        request.addfinalizer(proxy.stop)
        return proxy.start()
    return start


@pytest.fixture(scope="module")
def token_registry(request, tmp_path_factory):
    """A registry with distribution's ``auth: token``, its token issuer at ``.token_issuer``."""
    workdir = tmp_path_factory.mktemp("token-registry")
    issuer = TokenIssuer(workdir, {ALICE["username"]: ALICE["password"]}).start()
    request.addfinalizer(issuer.stop)
    registry = Registry(workdir / "registry", token_issuer=issuer)
    request.addfinalizer(registry.stop)  # before start(): a half-started registry is stopped too
    registry.start()
    return registry


# --- helpers ---

def collect_garbage(registry, *, while_running=False, delete_untagged=False):
    """Run distribution's garbage collector: the safe way (registry stopped, then started again),
    or while it serves, which leaves its blob-descriptor cache claiming what was swept."""
    if while_running:
        return registry.garbage_collect(delete_untagged=delete_untagged)
    registry.stop()
    try:
        return registry.garbage_collect(delete_untagged=delete_untagged)
    finally:
        registry.start()


def children_of(raw):
    """The child manifest digests an index lists ([] for an image manifest)."""
    return [m["digest"] for m in json.loads(raw).get("manifests", [])]


def blobs_of(registry, repository, digest, **credentials):
    """The config and layer digests an image needs, or every child of an index; read with skopeo."""
    raw = skopeo_manifest(registry, f"{repository}@{digest}", **credentials)[1]
    doc = json.loads(raw)
    if "manifests" in doc:
        return sorted({b for child in children_of(raw) for b in blobs_of(registry, repository, child, **credentials)})
    return sorted({doc["config"]["digest"]} | {layer["digest"] for layer in doc["layers"]})


def assert_the_cache_claims_what_gc_swept(registry, repository, digests):
    """The trap is set: the storage lost these blobs, and the running registry still answers HEAD with 200."""
    assert not set(digests) & registry.stored_blobs(), "garbage collection kept blobs the test expects gone"
    for digest in digests:
        answer = requests.head(f"{registry.url}/v2/{repository}/blobs/{digest}", timeout=5)
        assert answer.status_code == 200, f"the cache forgot {digest}: the trap is not set"


def manifest_puts(proxy):
    """The references (tags or digests) manifests were PUT to through the proxy, in order."""
    return [urlsplit(e.path).path.rsplit("/manifests/", 1)[1] for e in proxy.seen("PUT") if "/manifests/" in e.path]


def mounts(proxy, repository):
    """(digest, source repository, status) of each cross-repository mount asked of ``repository``."""
    found = []
    for exchange in proxy.seen("POST"):
        parts = urlsplit(exchange.path)
        query = parse_qs(parts.query)
        if parts.path == f"/v2/{repository}/blobs/uploads/" and "mount" in query:
            found.append((query["mount"][0], query["from"][0], exchange.status))
    return found


def uploaded_blobs(proxy):
    """Digests of the blobs whose bytes were sent (the PUT that completes an upload), successful or not."""
    return [parse_qs(urlsplit(e.path).query)["digest"][0] for e in proxy.seen("PUT") if "/blobs/uploads/" in e.path]


def trash_content(trash_dir):
    """Every entry and stored blob of a trash directory, with its bytes (its lock files left out)."""
    return {p: p.read_bytes() for part in ("entries", "blobs") for p in (trash_dir / part).rglob("*") if p.is_file()}


def entry_state(store, client, repository):
    [entry] = store.entries(client.url, repository)
    return entry["state"]


def token_requests_during(issuer, action):
    """Run ``action``; return its result and what the token issuer saw meanwhile."""
    before = len(issuer.seen)
    result = action()
    return result, issuer.seen[before:]


# --- multi-platform images and garbage collection ---

# 2.8's garbage collector keeps a trashed index's children (they are still untagged revisions of
# the repository) and their layers; only --delete-untagged takes them, which is when kept blobs
# matter most. Caveat for operators, seen on 2.8.2: --delete-untagged also deletes the children of
# indexes that are still tagged, so every multi-platform image left in the registry stops pulling;
# it suits this test's trashed index, not a registry that serves multi-platform images.
@pytest.mark.parametrize("delete_untagged", [False, True], ids=["gc", "gc-delete-untagged"])
@pytest.mark.parametrize("fmt", ["oci", "v2s2"], ids=["oci-index", "docker-manifest-list"])
def test_multi_platform_image_trashed_with_kept_blobs_comes_back_byte_identical_after_offline_gc(
        registry_factory, recorder_for, connect, store, push, repo, tmp_path, fmt, delete_untagged):
    target = registry_factory()
    digest = push(f"multi-platform-{fmt}", "a", fmt=fmt, target=target, layout=TWO_PLATFORMS)
    original = skopeo_manifest(target, f"{repo}:a")
    assert original[2] == INDEX_TYPES[fmt]
    children, blobs = children_of(original[1]), blobs_of(target, repo, digest)
    proxy = recorder_for(target)
    client = connect(proxy)
    [entry] = trash(client, store, repo, tags=["a"], keep_blobs=True)["entries"]
    assert sorted(entry["children"]) == sorted(children)
    collect_garbage(target, delete_untagged=delete_untagged)
    swept = {digest} | (set(children) | set(blobs) if delete_untagged else set())
    assert set([digest, *children, *blobs]) - target.stored_blobs() == swept
    proxy.clear()

    result = restore(client, store, repo, tags=["a"])

    assert result["restored"] == [{"repository": repo, "tag": "a", "digest": digest}]
    assert skopeo_manifest(target, f"{repo}:a") == original
    assert skopeo_pullable(target, f"{repo}:a", tmp_path / "pulled", all_images=True)
    # Children the registry lost go back by digest before the index, which it would refuse without them.
    puts = manifest_puts(proxy)
    assert puts[-1] == "a"
    assert sorted(puts[:-1]) == (sorted(children) if delete_untagged else [])
    assert entry_state(store, client, repo) == "restored"


def test_gc_while_running_restore_with_kept_blobs_gives_back_what_the_cache_claims_and_pulls(
        registry_factory, recorder_for, connect, store, push, repo, tmp_path):
    target = registry_factory(blob_cache=True)
    digest = push("gc-while-running-kept", "a", target=target)
    original = skopeo_manifest(target, f"{repo}:a")
    blobs = blobs_of(target, repo, digest)
    proxy = recorder_for(target)
    client = connect(proxy)
    trash(client, store, repo, tags=["a"], keep_blobs=True)
    collect_garbage(target, while_running=True)
    assert_the_cache_claims_what_gc_swept(target, repo, blobs)
    proxy.clear()

    restore(client, store, repo, tags=["a"])

    assert skopeo_manifest(target, f"{repo}:a") == original
    assert skopeo_pullable(target, f"{repo}:a", tmp_path / "pulled")
    assert set(blobs) <= target.stored_blobs(), "the registry still lacks blobs it claims"
    # The other half of the trap, seen on the wire: the manifest PUT accepted, then not found.
    on_the_tag = [(e.method, e.status) for e in proxy.exchanges if e.path == f"/v2/{repo}/manifests/a"]
    accepted = on_the_tag.index(("PUT", 201))
    assert ("GET", 404) in on_the_tag[accepted:], "the registry never lost the manifest: the trap is not set"


# A single image collected with the registry stopped is covered in test_trash_and_restore.py; here the
# trap (the cache claims every blob) and an index whose children --delete-untagged took.
@pytest.mark.parametrize("layout, while_running, delete_untagged", [
    (None, True, False),
    (TWO_PLATFORMS, False, True),
], ids=["image-gc-while-running", "index-offline-gc-delete-untagged"])
def test_restore_without_kept_blobs_after_gc_fails_before_any_write_naming_the_missing_blobs(
        registry_factory, recorder_for, connect, store, push, repo, layout, while_running, delete_untagged):
    target = registry_factory(blob_cache=True)
    digest = push("collected-unkept", "a", fmt="oci", target=target, layout=layout)
    blobs = blobs_of(target, repo, digest)
    proxy = recorder_for(target)
    client = connect(proxy)
    trash(client, store, repo, tags=["a"])
    collect_garbage(target, while_running=while_running, delete_untagged=delete_untagged)
    if while_running:
        assert_the_cache_claims_what_gc_swept(target, repo, blobs)
    proxy.clear()

    with pytest.raises(TrashError, match="garbage collection") as caught:
        restore(client, store, repo, tags=["a"])

    assert [b for b in blobs if b not in caught.value.msg] == [], "a missing blob went unnamed"
    assert proxy.seen(*WRITES) == []
    assert skopeo_tags(target, repo) == []
    assert skopeo_manifest(target, f"{repo}@{digest}") is None
    assert entry_state(store, client, repo) == "trashed"


# --- kept blobs are content-addressed ---

def test_a_layer_shared_by_two_trashed_images_is_kept_once_and_counted_once(
        client, store, trash_dir, registry, push, repo):
    base = {"base_layer": ("shared-base", SHARED_LAYER_SIZE)}
    first = push("shared-first", "first", layout=base)
    second = push("shared-second", "second", layout=base)
    [layer] = set(blobs_of(registry, repo, first)) & set(blobs_of(registry, repo, second))
    layer_size = next(d["size"] for d in json.loads(skopeo_manifest(registry, f"{repo}:first")[1])["layers"]
                      if d["digest"] == layer)
    assert layer_size > SHARED_LAYER_SIZE  # what the test means by a large layer

    result = trash(client, store, repo, tags=["first", "second"], keep_blobs=True)

    assert sorted(e["digest"] for e in result["entries"]) == sorted([first, second])
    copies = [p for p in trash_dir.rglob(layer.split(":")[1] + "*") if p.is_file()]
    assert copies == [trash_dir / "blobs" / "sha256" / layer.split(":")[1]]
    on_disk = sum(p.stat().st_size for p in trash_dir.rglob("*") if p.is_file())
    # Everything but the layer (two entries, manifests, configs, small layers) is a few KiB.
    assert layer_size <= on_disk < layer_size + 64 * 1024
    assert trash_info(store)["totals"]["disk_bytes"] == on_disk


# --- force ---

def tag_taken_over(client, store, registry, push, repo):
    """Tag a is trashed, then pushed again with another image; returns both digests and the newcomer's bytes."""
    trashed = push("force-trashed", "a")
    trash(client, store, repo, tags=["a"])
    occupant = push("force-occupant", "a")
    return trashed, occupant, skopeo_manifest(registry, f"{repo}:a")


def test_restore_onto_a_tag_taken_by_another_image_is_refused_without_force_and_writes_nothing(
        recorded_client, recorder, store, registry, push, repo):
    trashed, occupant, occupant_manifest = tag_taken_over(recorded_client, store, registry, push, repo)
    recorder.clear()

    with pytest.raises(TrashError, match=f"now points at {occupant}"):
        restore(recorded_client, store, repo, tags=["a"])

    assert recorder.seen(*WRITES) == []
    assert skopeo_manifest(registry, f"{repo}:a") == occupant_manifest
    assert skopeo_manifest(registry, f"{repo}@{trashed}") is None
    assert [e["state"] for e in store.entries(recorded_client.url, repo)] == ["trashed"]


def test_force_trashes_the_occupant_into_a_new_entry_first_and_it_can_be_restored_later(
        client, store, registry, push, repo):
    trashed, occupant, occupant_manifest = tag_taken_over(client, store, registry, push, repo)

    result = restore(client, store, repo, tags=["a"], force=True)

    assert result["restored"] == [{"repository": repo, "tag": "a", "digest": trashed}]
    assert skopeo_manifest(registry, f"{repo}:a")[0] == trashed
    [replaced] = result["replaced"]
    assert (replaced["digest"], replaced["removed_tags"]) == (occupant, ["a"])
    assert replaced["id"] != result["entry"]
    assert skopeo_manifest(registry, f"{repo}@{occupant}") is None, "the occupant was overwritten, not trashed"

    # Nothing was lost: the occupant comes back from its own entry once the tag is free again.
    trash(client, store, repo, tags=["a"])
    restore(client, store, repo, entry_id=replaced["id"])

    assert skopeo_manifest(registry, f"{repo}:a") == occupant_manifest


# --- restore into another repository ---

@pytest.mark.parametrize("layout", [None, TWO_PLATFORMS], ids=["image", "oci-index"])
def test_restore_into_another_repository_mounts_every_blob_and_leaves_the_source_absent(
        recorded_client, recorder, store, registry, push, repo, tmp_path, layout):
    other = f"{repo}-elsewhere"
    digest = push("elsewhere", "a", fmt="oci", layout=layout)
    original = skopeo_manifest(registry, f"{repo}:a")
    blobs = blobs_of(registry, repo, digest)
    trash(recorded_client, store, repo, tags=["a"])
    recorder.clear()

    result = restore(recorded_client, store, repo, tags=["a"], target_repository=other)

    assert result["restored"] == [{"repository": other, "tag": "a", "digest": digest}]
    assert sorted(mounts(recorder, other)) == [(b, repo, 201) for b in blobs]
    assert uploaded_blobs(recorder) == [], "blobs were uploaded although the registry mounts them"
    assert skopeo_manifest(registry, f"{other}:a") == original
    assert skopeo_pullable(registry, f"{other}:a", tmp_path / "pulled", all_images=True)
    assert skopeo_tags(registry, repo) == []
    assert skopeo_manifest(registry, f"{repo}@{digest}") is None


def test_restore_into_another_repository_uploads_kept_blobs_that_the_source_lost_to_gc(
        registry_factory, recorder_for, connect, store, push, repo, tmp_path):
    target = registry_factory()
    other = f"{repo}-elsewhere"
    digest = push("elsewhere-collected", "a", target=target)
    original = skopeo_manifest(target, f"{repo}:a")
    blobs = blobs_of(target, repo, digest)
    proxy = recorder_for(target)
    client = connect(proxy)
    trash(client, store, repo, tags=["a"], keep_blobs=True)
    collect_garbage(target)
    assert not set(blobs) & target.stored_blobs()
    proxy.clear()

    restore(client, store, repo, tags=["a"], target_repository=other)

    assert sorted(uploaded_blobs(proxy)) == blobs
    assert [m for m in mounts(proxy, other) if m[2] == 201] == []
    assert skopeo_manifest(target, f"{other}:a") == original
    assert skopeo_pullable(target, f"{other}:a", tmp_path / "pulled")
    assert skopeo_tags(target, repo) == []


def test_restore_into_another_repository_mounts_blobs_the_trash_also_kept(
        recorded_client, recorder, store, registry, push, repo):
    other = f"{repo}-elsewhere"
    digest = push("elsewhere-kept", "a")
    blobs = blobs_of(registry, repo, digest)
    trash(recorded_client, store, repo, tags=["a"], keep_blobs=True)
    recorder.clear()

    restore(recorded_client, store, repo, tags=["a"], target_repository=other)

    assert skopeo_manifest(registry, f"{other}:a")[0] == digest
    assert uploaded_blobs(recorder) == []
    assert sorted(mounts(recorder, other)) == [(b, repo, 201) for b in blobs]


# --- token authentication ---

def test_token_auth_trash_and_restore_round_trip_with_bearer_tokens_from_the_realm(
        token_registry, recorder_for, connect, store, push, repo, tmp_path):
    digest = push("token-round-trip", "a", target=token_registry, **ALICE)
    original = skopeo_manifest(token_registry, f"{repo}:a", **ALICE)
    proxy = recorder_for(token_registry)
    client = connect(proxy, **ALICE)
    issuer = token_registry.token_issuer

    asked_for_trash = token_requests_during(
        issuer, lambda: trash(client, store, repo, tags=["a"], keep_blobs=True))[1]
    assert skopeo_tags(token_registry, repo, **ALICE) == []
    result, asked_for_restore = token_requests_during(issuer, lambda: restore(client, store, repo, tags=["a"]))

    assert result["restored"] == [{"repository": repo, "tag": "a", "digest": digest}]
    assert skopeo_manifest(token_registry, f"{repo}:a", **ALICE) == original
    assert skopeo_pullable(token_registry, f"{repo}:a", tmp_path / "pulled", **ALICE)
    # The realm got the Basic credentials each time; the registry let in only Bearer tokens.
    token_requests = asked_for_trash + asked_for_restore
    assert asked_for_trash and asked_for_restore
    assert token_requests == [("/token", True)] * len(token_requests)
    assert {e.auth for e in proxy.exchanges if e.status < 400} == {"Bearer"}
    # Cached per scope: far fewer token requests than registry requests.
    assert len(token_requests) < len(proxy.exchanges) / 2


def test_token_auth_registry_never_receives_the_basic_credentials(
        token_registry, recorder_for, connect, store, push, repo):
    push("token-no-basic", "a", target=token_registry, **ALICE)
    proxy = recorder_for(token_registry)
    client = connect(proxy, **ALICE)

    trash(client, store, repo, tags=["a"])
    restore(client, store, repo, tags=["a"])

    assert "Basic" not in {e.auth for e in proxy.exchanges}


@pytest.mark.parametrize("operation", ["trash", "restore"])
def test_token_auth_wrong_password_is_a_clear_authentication_error_and_changes_nothing(
        token_registry, recorder_for, connect, store, trash_dir, push, repo, operation):
    digest = push(f"token-wrong-{operation}", "a", target=token_registry, **ALICE)
    proxy = recorder_for(token_registry)
    if operation == "restore":
        trash(connect(proxy, **ALICE), store, repo, tags=["a"])
    before = trash_content(trash_dir)
    client = connect(proxy, **WRONG_PASSWORD)
    proxy.clear()

    with pytest.raises(TrashError) as caught:
        (trash if operation == "trash" else restore)(client, store, repo, tags=["a"])

    [failure] = caught.value.details["failures"]
    assert failure["status"] == 401
    assert "authentication failed" in caught.value.msg
    assert WRONG_PASSWORD["password"] not in caught.value.msg
    assert proxy.seen(*WRITES) == []
    assert trash_content(trash_dir) == before
    assert skopeo_tags(token_registry, repo, **ALICE) == ([] if operation == "restore" else ["a"])
    if operation == "trash":
        assert skopeo_manifest(token_registry, f"{repo}:a", **ALICE)[0] == digest


# --- a flaky registry ---

@pytest.mark.parametrize("how", ["503", "drop"])
def test_trash_and_restore_succeed_when_every_request_first_fails(
        registry_factory, flaky, connect, store, push, repo, tmp_path, how):
    target = registry_factory()
    push(f"flaky-{how}", "a", target=target)
    original = skopeo_manifest(target, f"{repo}:a")
    # Every GET, HEAD, PUT and DELETE fails once; POST is never retried, so it is spared.
    proxy = flaky(target, FLAKY[how], times=1)
    client = connect(proxy)

    trash(client, store, repo, tags=["a"], keep_blobs=True)
    # Collected, so the restore must upload the kept blobs: uploads meet the faults too.
    collect_garbage(target)
    restore(client, store, repo, tags=["a"])

    assert skopeo_manifest(target, f"{repo}:a") == original
    assert skopeo_pullable(target, f"{repo}:a", tmp_path / "pulled")
    proxy.quiesce()
    assert {a.method for a in proxy.faults()} == {"GET", "HEAD", "PUT", "DELETE"}
    assert [a for a in proxy.faults() if "/blobs/uploads/" in a.path], "no blob upload met a fault"


def test_a_delete_whose_answer_was_lost_is_sent_again_and_its_404_counts_as_done(
        registry, flaky, connect, store, push, repo):
    digest = push("lost-answer", "a")
    proxy = flaky(registry, FLAKY["lose_answer"], methods=["DELETE"], path=re.escape(f"/manifests/{digest}"))
    client = connect(proxy)

    result = trash(client, store, repo, tags=["a"])

    assert result["changed"] is True
    # The first DELETE took effect and its answer was lost; the second found the manifest gone.
    proxy.quiesce()
    assert [(a.fault, a.status) for a in proxy.attempts if a.method == "DELETE" and digest in a.path] == [
        (FLAKY["lose_answer"], None), (None, 404)]
    assert skopeo_tags(registry, repo) == []
    assert entry_state(store, client, repo) == "trashed"


@pytest.mark.parametrize("how, cause", [
    ("503", "HTTP 503 UNAVAILABLE: injected fault"),
    ("drop", "cannot connect to the registry"),
])
def test_a_registry_that_stays_unavailable_fails_with_the_cause_after_a_bounded_number_of_attempts(
        registry, flaky, connect, store, trash_dir, push, repo, how, cause):
    digest = push(f"unavailable-{how}", "a")
    proxy = flaky(registry, FLAKY[how], times=None)
    client = connect(proxy, retries=RETRIES)

    with pytest.raises(TrashError) as caught:
        trash(client, store, repo, tags=["a"])

    assert cause in caught.value.msg
    assert f"/v2/{repo}/manifests/a" in caught.value.msg
    # The first attempt and RETRIES more, then nothing else: the failed resolve stops the trash.
    proxy.quiesce()
    assert [a.fault for a in proxy.attempts if a.method == "GET" and re.search("/manifests/a$", a.path)] == [
        FLAKY[how]] * (1 + RETRIES)
    assert len(proxy.attempts) == 1 + RETRIES
    assert skopeo_manifest(registry, f"{repo}:a")[0] == digest
    assert trash_content(trash_dir) == {}


def test_retry_after_is_waited_for_before_the_next_attempt(registry, flaky, connect, push, repo):
    digest = push("retry-after", "a")
    # Without Retry-After the first retry follows at once (urllib3's first backoff is 0).
    proxy = flaky(registry, Fault("status", status=503, retry_after="1", close=True), times=1)
    client = connect(proxy)

    started = time.monotonic()
    manifest = client.get_manifest(repo, "a")

    assert manifest.digest == digest
    assert time.monotonic() - started >= 1
    proxy.quiesce()
    assert [a.status for a in proxy.attempts if a.method == "GET"] == [503, 200]


# Faults after which the registry may have acted, and faults after which it cannot have.
UNSEEN = Fault("delay", seconds=1.5)  # the client's timeout is 1 s: it gives up, the registry acts later
REFUSED = Fault("status", status=500)


@pytest.mark.parametrize("first, unknown", [
    (UNSEEN, True), (FLAKY["lose_answer"], True), (FLAKY["drop"], True), (REFUSED, False),
])
def test_a_failed_delete_says_whether_an_attempt_may_still_have_acted(
        registry, connect, request, first, unknown):
    tries = iter([first, REFUSED, REFUSED, REFUSED])
    proxy = FaultProxy(registry, rule=lambda method, path, headers: next(tries) if method == "DELETE" else None)
    request.addfinalizer(proxy.stop)
    client = connect(proxy.start(), timeout=1)
    absent = "sha256:" + "1" * 64  # the registry may act on it: it has no such manifest

    with pytest.raises(RegistryError, match="HTTP 500") as caught:
        client.delete_manifest("fault/outcome", absent)

    # A trash keeps such an entry pending (restorable by tag), never aborted.
    assert caught.value.outcome_unknown is unknown
    proxy.quiesce()
    # A 500 is not retried: it is the last attempt, whatever came before it.
    tried = [a.fault for a in sorted(proxy.attempts, key=lambda a: a.start)]  # the delayed one ends last
    assert tried == ([first] if first is REFUSED else [first, REFUSED])
