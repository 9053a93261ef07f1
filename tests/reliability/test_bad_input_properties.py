"""Property tests: whatever names, URLs and paths a task is given, the core fails cleanly or succeeds.

hypothesis draws repository names, tags, digests, registry URLs and trash_dir values,
valid and hostile ones mixed, and calls the core (trash, restore, the client, the store)
against the real registry behind a recording proxy. For every draw:

- the outcome is a success or a TrashError, never another exception (a traceback);
- nothing is written outside trash_dir: every file under the example's sandbox is
  compared before and after, and any change must lie inside the resolved trash_dir;
- a refused request changes nothing on the registry: the proxy sees no PUT, POST,
  PATCH or DELETE (and a request that succeeds without a change sends none either).

The registry holds one image, under a tag no strategy draws, so nothing valid can
remove it. Hosts are loopback only: URLs are built from parts, never from free text
that could name another host. Known bugs are pinned by the xfail tests at the end and
kept out of the strategies, so the properties guard everything else.
"""

import contextlib
import os
import tempfile
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from support.tag_delete_proxy import TagDeleteProxy

from ansible_collections.oci_registry.trash.plugins.module_utils._errors import TrashError
from ansible_collections.oci_registry.trash.plugins.module_utils._reference import OCI_MANIFEST
from ansible_collections.oci_registry.trash.plugins.module_utils._registry_client import Manifest, RegistryClient
from ansible_collections.oci_registry.trash.plugins.module_utils._restore_manifests import restore
from ansible_collections.oci_registry.trash.plugins.module_utils._trash_maintenance import (
    find_entries, purge, trash_info)
from ansible_collections.oci_registry.trash.plugins.module_utils._trash_manifests import trash
from ansible_collections.oci_registry.trash.plugins.module_utils._trash_store import TrashStore

PROPERTY = settings(max_examples=40, deadline=None, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
WRITES = ("PUT", "POST", "PATCH", "DELETE")
KEPT_TAG = "kept-by-the-property-tests"  # the one image; no strategy can draw this tag
CLOSED_PORT = 1  # nothing listens on port 1 of the loopback: connections are refused at once

# The grammar of the issue, written out here rather than taken from the code under test.
COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
VALID_REPOSITORY = st.from_regex(r"%s(?:/%s){0,2}" % (COMPONENT, COMPONENT), fullmatch=True)
VALID_TAG = st.from_regex(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,20}", fullmatch=True).filter(lambda t: t != KEPT_TAG)
VALID_DIGEST = st.from_regex(r"sha256:[a-f0-9]{64}", fullmatch=True)

HOSTILE_NAMES = ["", ".", "..", "../../etc", "a/../b", "a/./b", "/abs", "a//b", "a/", "A", "a b", "é", "a\nb",
                 "a?b", "a#b", "-a", "a..b", "%2e%2e", "a%2Fb", "~", "~root", "a" * 256, "a/" * 130 + "a"]
HOSTILE_TAGS = ["", ".", "..", "-a", ".a", "a" * 129, "a/b", "../x", "a:b", "a@b", " a", "é", "a\tb"]
HOSTILE_DIGESTS = ["", ":", "sha256:", "sha256:abc", "SHA256:" + "a" * 64, "sha256:" + "A" * 64,
                   "sha256:" + "g" * 64, "md5:" + "a" * 32, "sha256:../../etc/passwd",
                   "sha256:" + "a" * 64 + "/x", "sha512:" + "a" * 64, "../" + "a" * 64]


def names(valid, hostile):
    # Text without NUL: a NUL in a path is pinned by its own xfail test below.
    return st.one_of(valid, st.sampled_from(hostile), st.text(max_size=30).filter(lambda t: "\x00" not in t))


REPOSITORIES = names(VALID_REPOSITORY, HOSTILE_NAMES)
TAGS = st.lists(names(VALID_TAG, HOSTILE_TAGS), max_size=3)
DIGESTS = names(VALID_DIGEST, HOSTILE_DIGESTS)
ENTRY_IDS = st.one_of(st.from_regex(r"\d{8}T\d{12}Z-[a-f0-9]{12}-[a-f0-9]{4}", fullmatch=True),
                      st.sampled_from(["", "../x", "x.json", "a" * 300]), st.text(max_size=20))

# trash_dir: a few path components, under the sandbox's working directory, its HOME, or absolute.
PATH_PARTS = ["a", "b", "..", ".", "", " ", "x y", "é", "a" * 300, "file", "link-up", "loop", "trash.json"]
TRASH_DIRS = st.tuples(st.sampled_from(["", "~/", "ABS/"]),
                       st.lists(st.sampled_from(PATH_PARTS), min_size=1, max_size=4)).map(
                           lambda parts: parts[0] + "/".join(parts[1]))


def urls(port):
    """Registry URLs built from parts, every host a loopback one or malformed before any lookup."""
    return st.builds(
        lambda scheme, user, host, port_part, path, tail: "%s%s%s%s%s%s" % (scheme, user, host, port_part, path, tail),
        st.sampled_from(["http://", "https://", "HTTP://", "ftp://", "", "http:/", "//"]),
        st.sampled_from(["", "user:secret@", ":@"]),
        # "[::1" and "127.0.0.1]" are left to test_a_malformed_ipv6_registry_url_is_a_clean_refusal.
        st.sampled_from(["127.0.0.1", "localhost", "", "[::1]"]),
        # The proxy's port twice: a URL that reaches the registry is worth drawing more often.
        st.sampled_from([":%d" % port, ":%d" % port, ":0", ":65536", ":x", ":%d" % CLOSED_PORT, "", ":"]),
        st.sampled_from(["", "/", "/v2", "/sub/path", "/../..", "/%2e%2e", "/a b", "/é"]),
        st.sampled_from(["", "", "?x=1", "#frag"]))


# --- the world: a recording proxy, an image that must survive, sandboxes ---

@pytest.fixture(scope="module")
def recorder(registry):
    proxy = TagDeleteProxy(registry, tag_delete=False, paginate_tags=False).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def kept_image(registry, make_batch, witness):
    batch = make_batch("bad-input", 1, prefix="unused")
    [(_tag, digest)] = batch.digests.items()
    raw = requests.get("%s/v2/%s/manifests/%s" % (registry.url, batch.repository, digest),
                       headers={"Accept": OCI_MANIFEST}, timeout=30).content
    requests.put("%s/v2/%s/manifests/%s" % (registry.url, batch.repository, KEPT_TAG), data=raw,
                 headers={"Content-Type": OCI_MANIFEST}, timeout=30).raise_for_status()
    yield batch.repository, digest, raw
    assert witness.digest(batch.repository, KEPT_TAG) == digest, "a property test changed the registry"


@pytest.fixture(scope="module")
def sandboxes(tmp_path_factory):
    return tmp_path_factory.mktemp("sandboxes")


@contextlib.contextmanager
def sandbox(parent, trash_dir_text):
    """A fresh directory tree to run one example in, with HOME and the working directory inside it.

    Yields (root, trash_dir as the task would give it). Holds a plain file, a symbolic link
    up the tree and a symbolic link loop, for trash_dir values to stumble on.
    """
    root = Path(tempfile.mkdtemp(dir=parent))
    cwd = root / "base" / "a" / "b"
    cwd.mkdir(parents=True)
    (root / "home").mkdir()
    (root / "outside").mkdir()
    (cwd / "file").write_text("not a directory\n")
    (cwd / "link-up").symlink_to("../..")
    (cwd / "loop").symlink_to("loop")
    value = trash_dir_text.replace("ABS/", str(cwd) + "/", 1)
    saved_cwd = os.getcwd()
    os.chdir(cwd)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("HOME", str(root / "home"))
            yield root, value
    finally:
        os.chdir(saved_cwd)


def tree(root):
    """Every path under root with what would show a write: kind, size, mode and mtime."""
    found = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            found[path] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return found


def writes_outside(root, before, trash_dir):
    """Paths under root that changed and are not inside the resolved trash_dir."""
    try:
        inside = os.path.realpath(os.path.expanduser(trash_dir)) + os.sep
    except (ValueError, OSError):
        inside = None
    after = tree(root)
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    # A directory's mtime changes when an entry in it is made: the parents of trash_dir may show that.
    parents = {str(p) for p in Path(inside or "/").parents} if inside else set()
    return sorted(p for p in changed
                  if not (inside and (p + os.sep).startswith(inside)) and p not in parents)


def inside_sandbox(root, trash_dir):
    """Whether trash_dir resolves inside the sandbox: one that leaves it could not be watched."""
    resolved = os.path.realpath(os.path.expanduser(trash_dir))
    return (resolved + os.sep).startswith(str(root) + os.sep)


def attempt(call):
    """The outcome of a call: ('ok', result) or ('refused', TrashError); anything else propagates."""
    try:
        return "ok", call()
    except TrashError as exc:
        assert exc.msg, "a TrashError without a message"
        return "refused", exc


def registry_writes(recorder):
    return [(e.method, e.path) for e in recorder.seen(*WRITES)]


def check_example(recorder, sandboxes, trash_dir_text, call):
    """Run one example and check the three properties; returns the outcome for more checks."""
    with sandbox(sandboxes, trash_dir_text) as (root, trash_dir):
        assume(inside_sandbox(root, trash_dir))
        recorder.clear()
        before = tree(root)
        outcome, value = attempt(lambda: call(trash_dir))
        assert writes_outside(root, before, trash_dir) == []
        if outcome == "refused" or not value.get("changed"):
            assert registry_writes(recorder) == []
        return outcome, value


# --- the properties ---

@PROPERTY
@given(repository=REPOSITORIES, tags=st.one_of(st.none(), TAGS), digest=st.one_of(st.none(), DIGESTS),
       scope=st.sampled_from(["tag", "manifest", "", "TAG", "all"]), trash_dir=TRASH_DIRS)
def test_trash_of_any_names_fails_cleanly_or_changes_nothing(
        recorder, sandboxes, kept_image, repository, tags, digest, scope, trash_dir):
    def call(path):
        with RegistryClient(recorder.url) as client:
            return trash(client, TrashStore(path), repository, tags=tags, digest=digest, scope=scope)
    outcome, value = check_example(recorder, sandboxes, trash_dir, call)
    if outcome == "ok":
        assert value["changed"] is False, "something named by the strategies was trashed: %s" % value


@PROPERTY
@given(repository=REPOSITORIES, tags=st.one_of(st.none(), TAGS), digest=st.one_of(st.none(), DIGESTS),
       entry_id=st.one_of(st.none(), ENTRY_IDS), target=st.one_of(st.none(), REPOSITORIES), trash_dir=TRASH_DIRS)
def test_restore_of_any_names_fails_cleanly_and_writes_nothing(
        recorder, sandboxes, kept_image, repository, tags, digest, entry_id, target, trash_dir):
    def call(path):
        with RegistryClient(recorder.url) as client:
            return restore(client, TrashStore(path), repository, tags=tags, digest=digest, entry_id=entry_id,
                           target_repository=target)
    outcome, value = check_example(recorder, sandboxes, trash_dir, call)
    # The trash of each example is empty: a restore can only refuse, or find nothing to do.
    assert outcome == "refused" or value["changed"] is False


@settings(PROPERTY, max_examples=25)  # a refused connection costs its retries' backoff, about a second
@given(url=st.data(), repository=REPOSITORIES, reference=st.one_of(names(VALID_TAG, HOSTILE_TAGS), DIGESTS))
def test_any_registry_url_is_refused_cleanly_or_only_read(
        recorder, sandboxes, kept_image, url, repository, reference):
    registry_url = url.draw(urls(int(recorder.url.rsplit(":", 1)[1])))

    def call(_path):
        with RegistryClient(registry_url, timeout=5) as client:
            client.ping()
            found = client.get_manifest(repository, reference) if reference else None
            return {"changed": False, "found": found}
    check_example(recorder, sandboxes, "ABS/trash", call)


@PROPERTY
@given(registry_url=st.sampled_from(["http://127.0.0.1:5000", "https://registry.example.com/sub", "http://[::1]:5000",
                                     "http://UPPER.example:80", "http://h/../../../x", "http://h/%2e%2e/x",
                                     "http://h:1/a/./b"]),
       repository=REPOSITORIES, tags=TAGS, removed=TAGS, reason=st.one_of(st.none(), st.text(max_size=20)),
       trash_dir=TRASH_DIRS)
def test_store_of_any_entry_writes_only_inside_trash_dir(
        recorder, sandboxes, kept_image, registry_url, repository, tags, removed, reason, trash_dir):
    _repository, digest, raw = kept_image
    manifest = Manifest(digest, OCI_MANIFEST, raw)

    def call(path):
        store = TrashStore(path)
        entry = store.create_entry(registry_url, repository, manifest, tags, removed, "tag", reason)
        store.set_state(entry, "trashed", event="property")
        assert store.read_manifest(entry) == raw
        return {"changed": True, "entry": entry}
    check_example(recorder, sandboxes, trash_dir, call)


@PROPERTY
@given(registry_url=st.one_of(st.none(), st.sampled_from(["http://127.0.0.1:5000", "nope", "ftp://x", "http://"])),
       repository=st.one_of(st.none(), REPOSITORIES), tag=st.one_of(st.none(), names(VALID_TAG, HOSTILE_TAGS)),
       state=st.one_of(st.none(), st.sampled_from(["trashed", "restored", "bogus", ""])),
       # A duration too long for a timedelta is left to test_a_duration_beyond_any_date_is_a_clean_refusal.
       older_than=st.one_of(st.none(), st.sampled_from(["14d", "0s", "1w2d", "", "-1d", "1y", "d", "99999d"])),
       trash_dir=TRASH_DIRS)
def test_info_and_purge_of_any_filter_fail_cleanly_and_write_only_inside_trash_dir(
        recorder, sandboxes, kept_image, registry_url, repository, tag, state, older_than, trash_dir):
    def call(path):
        store = TrashStore(path)
        listed = trash_info(store, registry_url=registry_url, repository=repository, tag=tag, state=state,
                            older_than=older_than)
        find_entries(store, repository=repository, state=state)
        purged = purge(store, repository=repository, state=state, older_than=older_than)
        return {"changed": False, "listed": listed, "purged": purged}
    check_example(recorder, sandboxes, trash_dir, call)


# --- the bugs the properties found, pinned one by one ---

@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1]:5000", "https://[fe80::1%zz"])
def test_a_malformed_ipv6_registry_url_is_a_clean_refusal(url, tmp_path):
    with pytest.raises(TrashError, match="registry_url"):
        RegistryClient(url)
    with pytest.raises(TrashError, match="registry_url"):
        find_entries(TrashStore(str(tmp_path / "trash")), registry_url=url)


def test_a_trash_dir_with_a_nul_byte_is_a_clean_refusal(tmp_path):
    with pytest.raises(TrashError, match="trash_dir"):
        TrashStore(str(tmp_path / "tr\x00sh"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("filters", [{"older_than": "9" * 30 + "d"}, {"newer_than": "999999999w"}])
def test_a_duration_beyond_any_date_is_a_clean_refusal(filters, tmp_path):
    with pytest.raises(TrashError, match="duration"):
        trash_info(TrashStore(str(tmp_path / "trash")), **filters)
    with pytest.raises(TrashError, match="duration"):
        purge(TrashStore(str(tmp_path / "trash")), **filters)
