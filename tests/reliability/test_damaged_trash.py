"""A damaged trash: the damaged entry is named, the others are restored, and info shows the damage.

Four tags are trashed (with keep_blobs), then one entry, the victim's, is damaged one way:

- ``truncated-json``: its entry file cut short, as a full disk or a careless editor leaves it;
- ``manifest-mismatch``: its manifest snapshot no longer hashes to its digest (bit rot);
- ``missing-blob``: its manifest snapshot deleted from blobs/;
- ``unreadable-file``: its entry file mode 000. The tests run as root, whom no mode stops
  reading, so the trash is handed to the unprivileged user ``nobody`` and the restore and
  the listing run in a child process that has dropped to that user, as a trash owned by
  an ordinary account is read; a file restored from a backup with the wrong mode is the
  real-life case.

Then a batch restore of all four tags and a listing (trash_info) run against it.
"""

import json
import os
import pwd
import shutil
import tempfile
from pathlib import Path

import pytest

from support.reliability import run_core
from support.trash_witness import blob_file

from ansible_collections.oci_registry.trash.plugins.module_utils._errors import TrashError
from ansible_collections.oci_registry.trash.plugins.module_utils._restore_manifests import restore
from ansible_collections.oci_registry.trash.plugins.module_utils._trash_maintenance import trash_info
from ansible_collections.oci_registry.trash.plugins.module_utils._trash_manifests import trash
from ansible_collections.oci_registry.trash.plugins.module_utils._trash_store import TrashStore

TAGS = 4
VICTIM = "t001"
UNPRIVILEGED = "nobody"


def entry_path(trash_dir, entry):
    return next(Path(trash_dir, "entries").rglob(entry["id"] + ".json"))


def truncate(trash_dir, entry):
    path = entry_path(trash_dir, entry)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def corrupt_manifest(trash_dir, entry):
    path = blob_file(trash_dir, entry["digest"])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def delete_manifest(trash_dir, entry):
    blob_file(trash_dir, entry["digest"]).unlink()


def make_unreadable(trash_dir, entry):
    entry_path(trash_dir, entry).chmod(0)


DAMAGE = {"truncated-json": truncate, "manifest-mismatch": corrupt_manifest, "missing-blob": delete_manifest,
          "unreadable-file": make_unreadable}


def restore_and_list(registry_url, trash_dir, batch):
    """What a user sees: the batch restore's outcome, and the listing's damage report."""
    try:
        outcome = run_core(restore, registry_url, trash_dir, batch.repository, tags=batch.tags)
        outcome = {"failed": False, "failures": [], "restored": outcome["restored"], "msg": outcome["msg"]}
    except TrashError as exc:
        outcome = {"failed": True, "failures": exc.details.get("failures", []),
                   "restored": exc.details.get("restored", []), "msg": exc.msg}
    info = trash_info(TrashStore(str(trash_dir)))
    outcome["damaged"] = info["damaged"]
    outcome["listed"] = {e["id"]: e["damaged"] for e in info["entries"]}
    return outcome


def as_unprivileged(function, *args):
    """function(*args) in a forked child running as UNPRIVILEGED; its JSON-able result.

    Forked rather than started: the modules are already imported, and the virtualenv lives
    where that user may not read.
    """
    user = pwd.getpwnam(UNPRIVILEGED)
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child reports through the pipe)
        try:
            os.close(reader)
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            answer = {"value": function(*args)}
        except BaseException as exc:  # every failure must reach the parent, not a traceback here
            answer = {"error": "%s: %s" % (type(exc).__name__, exc)}
        os.write(writer, json.dumps(answer).encode())
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        answer = json.loads(pipe.read() or b'{"error": "the child said nothing"}')
    os.waitpid(child, 0)
    assert "error" not in answer, answer["error"]
    return answer["value"]


@pytest.fixture
def owned_dir(request):
    """A directory UNPRIVILEGED owns, outside pytest's root-only temporary tree."""
    path = Path(tempfile.mkdtemp(prefix="oci-trash-damaged-"))
    request.addfinalizer(lambda: shutil.rmtree(path, ignore_errors=True))
    user = pwd.getpwnam(UNPRIVILEGED)
    os.chown(path, user.pw_uid, user.pw_gid)
    path.chmod(0o755)
    return path


@pytest.fixture(params=list(DAMAGE))
def damaged(request, registry, make_batch, tmp_path):
    """(kind, batch, victim entry, what restore and info said) for one kind of damage."""
    kind = request.param
    batch = make_batch("damaged-" + kind, TAGS)
    trash_dir = tmp_path / "trash"
    entries = run_core(trash, registry.url, trash_dir, batch.repository, tags=batch.tags, keep_blobs=True)["entries"]
    [victim] = [e for e in entries if e["removed_tags"] == [VICTIM]]
    if kind == "unreadable-file":
        owned = request.getfixturevalue("owned_dir") / "trash"
        shutil.copytree(trash_dir, owned)
        user = pwd.getpwnam(UNPRIVILEGED)
        for path in [owned, *owned.rglob("*")]:
            os.lchown(path, user.pw_uid, user.pw_gid)
        DAMAGE[kind](owned, victim)
        said = as_unprivileged(restore_and_list, registry.url, str(owned), batch)
    else:
        DAMAGE[kind](trash_dir, victim)
        said = restore_and_list(registry.url, trash_dir, batch)
    print("%s: %s" % (kind, said))
    return kind, batch, victim, said


def test_the_restore_fails_for_the_damaged_entry_and_names_it(damaged):
    _kind, _batch, victim, said = damaged
    assert said["failed"]
    [failure] = said["failures"]
    assert victim["id"] in failure["msg"] or victim["id"] == failure.get("entry"), failure
    assert victim["id"] in said["msg"] or VICTIM in said["msg"]


def test_the_other_entries_are_restored_despite_the_damage(damaged, witness):
    _kind, batch, _victim, said = damaged
    others = {t: d for t, d in batch.digests.items() if t != VICTIM}
    assert sorted(r["tag"] for r in said["restored"]) == sorted(others)
    assert witness.digests(batch.repository, list(others)) == others
    assert witness.digest(batch.repository, VICTIM) is None, "a damaged snapshot was sent to the registry"


def test_info_shows_the_damage_and_names_the_entry(damaged):
    _kind, _batch, victim, said = damaged
    assert [d for d in said["damaged"] if victim["id"] in d], said["damaged"]
    # The other entries are listed, and as sound; the victim, when its file can be read, as damaged.
    assert sorted(id for id, damaged in said["listed"].items() if not damaged) == sorted(
        id for id in said["listed"] if id != victim["id"]) and len(said["listed"]) >= TAGS - 1
    assert said["listed"].get(victim["id"], True) is True
