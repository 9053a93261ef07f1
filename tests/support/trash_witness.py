"""The trash directory and the registry as an outsider sees them: plain file reads and plain HTTP.

The reliability tests judge the collection by what is on disk and in the registry, read
here without any of the collection's code, following docs/trash-format.md: an entry is
a JSON file under entries/, and it can be restored when it parses, is in a restorable
state, and every file it needs is in blobs/ with bytes that hash to its name.
"""

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import requests

ACCEPT_MANIFESTS = ", ".join((
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
))
RESTORABLE_STATES = ("pending", "trashed", "restored")
TEMP_MARKER = ".tmp-"


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob_file(trash_dir, digest):
    return Path(trash_dir, "blobs", *digest.split(":", 1))


def needed_digests(entry):
    """What an entry needs in blobs/: its manifest, its children, and its blobs when it kept them."""
    digests = {entry["digest"]} | {c["digest"] for c in entry.get("children", [])}
    if entry.get("keep_blobs"):
        digests |= {b["digest"] for b in entry.get("blobs", [])}
    return digests


@dataclass
class Entry:
    path: Path
    data: dict = None  # None when the file does not parse as an entry
    problems: list = field(default_factory=list)

    @property
    def id(self):
        return self.data["id"] if self.data else self.path.stem


class TrashView:
    """The trash directory at one moment: every entry file, read and checked."""

    def __init__(self, trash_dir):
        self.root = Path(trash_dir)
        self.entries = []
        top = self.root / "entries"
        for directory, _dirs, names in os.walk(top):
            for name in sorted(names):
                if name.endswith(".json") and TEMP_MARKER not in name:
                    self.entries.append(self._read(Path(directory, name)))

    def _read(self, path):
        entry = Entry(path)
        try:
            entry.data = json.loads(path.read_bytes())
            if not isinstance(entry.data, dict) or entry.data.get("format") != 1:
                raise ValueError("not a format 1 entry")
        except (OSError, ValueError) as exc:
            entry.data = None
            entry.problems.append("%s does not read as an entry: %s" % (path, exc))
            return entry
        for digest in sorted(needed_digests(entry.data)):
            try:
                data = blob_file(self.root, digest).read_bytes()
            except OSError as exc:
                entry.problems.append("entry %s: %s unreadable: %s" % (entry.id, digest, exc.strerror))
                continue
            if sha256(data) != digest:
                entry.problems.append("entry %s: %s holds other bytes" % (entry.id, digest))
        return entry

    @property
    def damaged(self):
        return [e for e in self.entries if e.problems]

    def problems(self):
        return [p for e in self.entries for p in e.problems]

    def of(self, repository, state=None):
        return [e.data for e in self.entries
                if e.data and e.data["repository"] == repository and state in (None, e.data["state"])]

    def restorable(self, repository, tag, digest):
        """Whether an intact entry in a restorable state removed ``tag`` at ``digest``."""
        return any(e.data and not e.problems and e.data["repository"] == repository and e.data["digest"] == digest
                   and e.data["state"] in RESTORABLE_STATES and tag in e.data["removed_tags"]
                   for e in self.entries)

    def stored_digests(self):
        directory = self.root / "blobs" / "sha256"
        return {"sha256:" + p.name for p in directory.iterdir() if TEMP_MARKER not in p.name} \
            if directory.is_dir() else set()

    def temp_files(self):
        return sorted(p for p in self.root.rglob("*") if TEMP_MARKER in p.name) if self.root.is_dir() else []


class RegistryWitness:
    """Reads a registry with plain requests: what a tag resolves to now, whether a blob is served."""

    def __init__(self, registry, username=None, password=None):
        self.url = registry.url
        self.session = requests.Session()
        self.session.verify = str(registry.ca_cert) if registry.tls else True
        if username is not None:
            self.session.auth = (username, password)

    def close(self):
        self.session.close()

    def digest(self, repository, reference):
        """The sha256 of the manifest bytes served for a tag or digest, or None when absent."""
        answer = self.session.get("%s/v2/%s/manifests/%s" % (self.url, repository, reference),
                                  headers={"Accept": ACCEPT_MANIFESTS}, timeout=30)
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        return sha256(answer.content)

    def digests(self, repository, tags):
        return {tag: self.digest(repository, tag) for tag in tags}

    def blob_served(self, repository, digest):
        answer = self.session.get("%s/v2/%s/blobs/%s" % (self.url, repository, digest), timeout=30)
        return answer.status_code == 200 and sha256(answer.content) == digest


def lost(witness, view, repository, expected):
    """The tags of ``expected`` ({tag: digest}) that are neither in place nor restorable, with why.

    A tag is safe when the registry still serves it at its digest, or when it is gone
    and an intact entry can bring it back. A tag at another digest is never safe.
    """
    problems = []
    for tag, now in witness.digests(repository, expected).items():
        if now == expected[tag]:
            continue
        if now is not None:
            problems.append("%s:%s points at %s, not %s" % (repository, tag, now, expected[tag]))
        elif not view.restorable(repository, tag, expected[tag]):
            problems.append("%s:%s is gone and no intact entry can restore it" % (repository, tag))
    return problems
