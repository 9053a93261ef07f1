"""The collection's own playbooks (playbooks/), run as a user or an AWX job template runs them.

Each run is ``ansible-playbook oci_registry.trash.<name>`` with its extra variables in a JSON file,
given as an AWX survey gives them: text, "true"/"false", lists as comma-separated text. The
registry is checked with skopeo and the trash directory on disk, not through the playbooks' output
alone. The runner's machinery (pushes, ansible and its environment, reading the trash) is
test_playbooks.py's, imported.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.images import skopeo_manifest
from test_playbooks import INVENTORY, ansible, assert_private_layout, entries_on_disk, push, \
    snapshot_on_disk

COLLECTION = "oci_registry.trash"
USER = "survey"
PASSWORD = "survey-password-5d1c"  # only for the env credentials test's registry


@dataclass(frozen=True)
class PlaybookRun:
    result: object
    log: Path

    @property
    def output(self):
        return self.result.stdout + self.result.stderr

    def assert_succeeded(self, changed=None):
        assert self.result.returncode == 0, f"exit {self.result.returncode}, log {self.log}:\n{self.output[-8000:]}"
        if changed is not None:
            assert self.changed == changed, f"expected changed={changed}, log {self.log}:\n{self.output[-8000:]}"

    def assert_refused(self, *phrases):
        """The play failed on one of its checks, saying each phrase."""
        assert self.result.returncode != 0, self.output[-8000:]
        text = " ".join(self.output.split())
        for phrase in phrases:
            assert phrase in text, f"{phrase!r} not in the output:\n{self.output[-8000:]}"

    @property
    def changed(self):
        recap = re.search(r"^localhost\s+:.*\bchanged=(\d+)", self.result.stdout, re.MULTILINE)
        assert recap, self.output[-8000:]
        return int(recap.group(1))


class Playbooks:
    """Runs ``ansible-playbook oci_registry.trash.<name>`` in one work directory, each run logged."""

    def __init__(self, workdir, registry=None):
        self.workdir = workdir
        self.registry = registry
        self.trash_dir = workdir / "trash"
        self.runs = 0

    def run(self, name, check=False, env=None, **extra_vars):
        self.runs += 1
        base = {"trash_dir": str(self.trash_dir)}
        if self.registry is not None and name in ("trash", "restore"):  # to info and purge it is a filter
            base["registry_url"] = self.registry.url
        variables = {key: value for key, value in {**base, **extra_vars}.items() if value is not None}
        vars_file = self.workdir / f"run-{self.runs}-{name}.json"
        vars_file.write_text(json.dumps(variables, indent=2))
        args = ["-i", INVENTORY, "-e", f"@{vars_file}", f"{COLLECTION}.{name}"]
        result = ansible("ansible-playbook", *args, *(["--check"] if check else []),
                         workdir=self.workdir, env={"ANSIBLE_SHOW_CUSTOM_STATS": "1", **(env or {})})
        log = vars_file.with_suffix(".log")
        log.write_text(result.stdout + result.stderr)
        return PlaybookRun(result, log)

    def entries(self, pushed):
        return entries_on_disk(self.trash_dir, pushed)


def tags_of(pushed, *tags):
    """What skopeo resolves each tag of pushed's repository to now: {tag: digest or None}."""
    found = {}
    for tag in tags:
        manifest = skopeo_manifest(pushed.registry, f"{pushed.repository}:{tag}", **dict(pushed.credentials))
        found[tag] = manifest[0] if manifest else None
    return found


@pytest.fixture
def playbooks(registry, tmp_path):
    return Playbooks(tmp_path, registry)


@pytest.fixture(scope="module")
def untouched(registry, image):
    """An image that the refusal tests must leave as it is."""
    return push(image("collection-playbooks-untouched"), registry, "test/collection-playbooks-untouched", "v2s2",
                ["1.0"])


@pytest.fixture
def release(registry, repo, image):
    """An rc tag and its release sharing one digest, and an older release of another image."""
    shared = push(image("collection-playbooks-release"), registry, repo, "v2s2", ["1.0-rc1", "1.0"])
    older = push(image("collection-playbooks-older"), registry, repo, "oci", ["0.9"])
    return shared, older


# --- trash.yml ---

def test_trash_playbook_check_real_again_and_again_in_check_mode(playbooks, release):
    shared, older = release
    survey = {"repository": shared.repository, "tag": "1.0-rc1", "reason": "superseded by 1.0"}

    playbooks.run("trash", check=True, **survey).assert_succeeded(changed=1)
    assert tags_of(shared, "1.0-rc1", "1.0") == {"1.0-rc1": shared.digest, "1.0": shared.digest}
    assert not playbooks.trash_dir.exists()

    real = playbooks.run("trash", **survey)
    real.assert_succeeded(changed=1)
    # Only the named tag went: its sibling and the other image stayed.
    assert tags_of(shared, "1.0-rc1", "1.0") == {"1.0-rc1": None, "1.0": shared.digest}
    older.assert_served_unchanged()
    [entry] = playbooks.entries(shared)
    assert (entry["state"], entry["removed_tags"], entry["other_tags"]) == ("trashed", ["1.0-rc1"], ["1.0"])
    assert entry["reason"] == "superseded by 1.0"
    assert snapshot_on_disk(playbooks.trash_dir, shared.digest) == shared.raw
    assert_private_layout(playbooks.trash_dir)
    # The entry id is printed, and published for a later job of an AWX workflow.
    assert entry["id"] in real.output
    assert re.search(rf'"trash_entry_ids": "{entry["id"]}"', real.output), real.output[-3000:]

    again = playbooks.run("trash", **survey)
    again.assert_succeeded(changed=0)
    assert f"the trash holds it, entry {entry['id']}" in " ".join(again.output.split())
    playbooks.run("trash", check=True, **survey).assert_succeeded(changed=0)
    assert [e["id"] for e in playbooks.entries(shared)] == [entry["id"]]


def test_trash_playbook_takes_comma_separated_tags_and_scope_manifest_with_kept_blobs(playbooks, release):
    shared, older = release
    playbooks.run("trash", repository=shared.repository, tag="1.0-rc1, 0.9", scope="manifest",
                  keep_blobs="true").assert_succeeded(changed=1)
    assert tags_of(shared, "1.0-rc1", "1.0", "0.9") == {"1.0-rc1": None, "1.0": None, "0.9": None}
    by_digest = {entry["digest"]: entry for entry in playbooks.entries(shared)}
    assert set(by_digest) == {shared.digest, older.digest}
    assert sorted(by_digest[shared.digest]["removed_tags"]) == ["1.0", "1.0-rc1"]
    assert all(entry["keep_blobs"] and entry["scope"] == "manifest" for entry in by_digest.values())


def test_trash_playbook_by_digest(playbooks, release):
    shared, older = release
    playbooks.run("trash", repository=shared.repository, digest=shared.digest).assert_succeeded(changed=1)
    assert tags_of(shared, "1.0-rc1", "1.0") == {"1.0-rc1": None, "1.0": None}
    older.assert_served_unchanged()


@pytest.mark.parametrize("survey, phrases", [
    ({"tag": "1.0"}, ["Give repository and exactly one of tag"]),
    ({"repository": "REPO", "tag": "1.0", "digest": "sha256:" + "0" * 64}, ["exactly one of tag"]),
    ({"repository": "REPO", "tag": "1.0", "scope": "everything"}, ["scope is tag or manifest"]),
    ({"repository": "REPO", "tag": "1.0", "keep_blobs": "maybe"}, ["keep_blobs true or false"]),
    ({"repository": "REPO", "tag": "1.0", "registry_url": "https://user:pw@registry.example.com"},
     ["registry_url must be the registry's base URL with its scheme and no credentials"]),
], ids=["no-repository", "tag-and-digest", "bad-scope", "bad-keep-blobs", "url-with-credentials"])
def test_trash_playbook_refuses_bad_survey_answers_and_touches_nothing(playbooks, untouched, survey, phrases):
    survey = {key: untouched.repository if value == "REPO" else value for key, value in survey.items()}
    playbooks.run("trash", **survey).assert_refused(*phrases)
    untouched.assert_served_unchanged()
    assert not playbooks.trash_dir.exists()


def test_playbooks_refuse_a_throwaway_trash_directory_in_awx(playbooks, release):
    shared = release[0]
    # AWX passes awx_job_id; without trash_dir or REGISTRY_TRASH_DIR the trash would die with the job.
    refused = playbooks.run("trash", repository=shared.repository, tag="1.0-rc1", awx_job_id=42, trash_dir=None)
    refused.assert_refused("disappears with the job", "docs/awx.md")
    # A trash_dir that is not there (the volume is not mounted) is refused too.
    missing = playbooks.run("trash", repository=shared.repository, tag="1.0-rc1", awx_job_id=42)
    missing.assert_refused("is not a directory here: is the volume mounted?")
    shared.assert_served_unchanged()
    playbooks.run("purge", older_than="1d", awx_job_id=42, trash_dir=None).assert_refused("disappears with the job")
    playbooks.trash_dir.mkdir(mode=0o700)
    playbooks.run("trash", repository=shared.repository, tag="1.0-rc1", awx_job_id=42).assert_succeeded(changed=1)


def test_trash_and_restore_playbooks_take_the_registry_and_credentials_from_the_environment(
        registry_factory, repo, image, tmp_path):
    """What the AWX credential type injects: REGISTRY_URL, REGISTRY_USERNAME, REGISTRY_PASSWORD."""
    auth = registry_factory(htpasswd_users={USER: PASSWORD})
    pushed = push(image("collection-playbooks-env"), auth, repo, "v2s2", ["v1"], username=USER, password=PASSWORD)
    runner = Playbooks(tmp_path)
    env = {"REGISTRY_URL": auth.url, "REGISTRY_USERNAME": USER, "REGISTRY_PASSWORD": PASSWORD,
           "REGISTRY_TRASH_DIR": str(runner.trash_dir)}
    trashed = runner.run("trash", env=env, repository=repo, tag="v1", trash_dir=None)
    trashed.assert_succeeded(changed=1)
    pushed.assert_gone()
    runner.run("restore", env=env, repository=repo, tag="v1", trash_dir=None).assert_succeeded(changed=1)
    pushed.assert_served_unchanged()
    for log in tmp_path.glob("*.log"):
        assert PASSWORD not in log.read_text()


# --- restore.yml ---

def test_restore_playbook_by_entry_check_real_again_and_again_in_check_mode(playbooks, release):
    shared = release[0]
    playbooks.run("trash", repository=shared.repository, tag="1.0-rc1").assert_succeeded(changed=1)
    [entry] = playbooks.entries(shared)
    survey = {"repository": shared.repository, "entry": entry["id"]}

    playbooks.run("restore", check=True, **survey).assert_succeeded(changed=1)
    assert tags_of(shared, "1.0-rc1") == {"1.0-rc1": None}
    playbooks.run("restore", **survey).assert_succeeded(changed=1)
    shared.assert_served_unchanged()
    [entry] = playbooks.entries(shared)
    assert entry["state"] == "restored"
    playbooks.run("restore", **survey).assert_succeeded(changed=0)
    playbooks.run("restore", check=True, **survey).assert_succeeded(changed=0)
    shared.assert_served_unchanged()


def test_restore_playbook_by_tags_and_from_the_ids_a_trash_job_published(playbooks, release):
    shared, older = release
    playbooks.run("trash", repository=shared.repository, tag="1.0-rc1,1.0,0.9").assert_succeeded(changed=1)
    shared.assert_gone()
    # By tag: the newest entry that removed each.
    playbooks.run("restore", repository=shared.repository, tag="0.9").assert_succeeded(changed=1)
    older.assert_served_unchanged()
    # By the comma-separated ids that trash.yml publishes as trash_entry_ids in an AWX workflow.
    [entry] = [e for e in playbooks.entries(shared) if e["digest"] == shared.digest]
    playbooks.run("restore", repository=shared.repository,
                  trash_entry_ids=f"{entry['id']}").assert_succeeded(changed=1)
    shared.assert_served_unchanged()


@pytest.mark.parametrize("survey, phrases", [
    ({"tag": "1.0", "digest": "sha256:" + "0" * 64}, ["exactly one of tag (tags, comma-separated), digest and entry"]),
    ({"entry": "not-an-id"}, ["entry (entry ids, comma-separated"]),
    ({"tag": "1.0", "force": "sometimes"}, ["all_tags and force are true or false"]),
], ids=["tag-and-digest", "bad-entry-id", "bad-force"])
def test_restore_playbook_refuses_bad_survey_answers(playbooks, untouched, survey, phrases):
    playbooks.run("restore", repository=untouched.repository, **survey).assert_refused(*phrases)
    untouched.assert_served_unchanged()


# --- info.yml and purge.yml ---

def fill_trash(playbooks, shared):
    """One restored entry (1.0-rc1) and one still trashed (0.9), by state."""
    playbooks.run("trash", repository=shared.repository, tag="1.0-rc1").assert_succeeded(changed=1)
    playbooks.run("restore", repository=shared.repository, tag="1.0-rc1").assert_succeeded(changed=1)
    playbooks.run("trash", repository=shared.repository, tag="0.9").assert_succeeded(changed=1)
    entries = {entry["state"]: entry for entry in playbooks.entries(shared)}
    assert set(entries) == {"restored", "trashed"}
    return entries


@pytest.fixture
def filled_trash(playbooks, release):
    return fill_trash(playbooks, release[0])


@pytest.fixture(scope="module")
def read_only_trash(registry, image, tmp_path_factory):
    """A filled trash for the tests that must not change it: (runner, entries by state)."""
    runner = Playbooks(tmp_path_factory.mktemp("read-only-trash"), registry)
    shared = push(image("collection-playbooks-release"), registry, "test/collection-playbooks-read-only", "v2s2",
                  ["1.0-rc1", "1.0"])
    push(image("collection-playbooks-older"), registry, shared.repository, "oci", ["0.9"])
    return runner, fill_trash(runner, shared)


def test_info_playbook_lists_the_entries_with_filters_and_changes_nothing(read_only_trash, registry):
    playbooks, entries = read_only_trash
    restored, trashed = entries["restored"], entries["trashed"]
    everything = playbooks.run("info")
    everything.assert_succeeded(changed=0)
    text = " ".join(everything.output.split())
    for entry in (restored, trashed):
        assert entry["id"] in text
        assert f"{entry['state']}: {registry.url}/{entry['repository']}, removed {entry['removed_tags'][0]}" in text
    assert "2 matching entries" in text

    only_trashed = playbooks.run("info", state="trashed", repository=trashed["repository"])
    only_trashed.assert_succeeded(changed=0)
    assert trashed["id"] in only_trashed.output and restored["id"] not in only_trashed.output

    by_tag = playbooks.run("info", tag="1.0")  # 1.0 pointed at the rc's manifest when it was trashed
    assert restored["id"] in by_tag.output and trashed["id"] not in by_tag.output

    limited = playbooks.run("info", limit="1")
    assert trashed["id"] in limited.output and restored["id"] not in limited.output  # newest first
    assert "the newest 1 shown" in " ".join(limited.output.split())

    playbooks.run("info", state="gone", older_than="two weeks").assert_refused("state is one of pending, trashed")
    assert playbooks.run("info", registry_url="https://elsewhere.example.com").output.count(restored["id"]) == 0


def test_purge_playbook_check_real_again_and_again_in_check_mode(playbooks, filled_trash):
    restored, trashed = filled_trash["restored"], filled_trash["trashed"]
    entry_files = {path.stem for path in (playbooks.trash_dir / "entries").rglob("*.json")}
    assert entry_files == {restored["id"], trashed["id"]}

    check = playbooks.run("purge", check=True, state="restored")
    check.assert_succeeded(changed=1)
    assert restored["id"] in check.output
    assert {path.stem for path in (playbooks.trash_dir / "entries").rglob("*.json")} == entry_files

    playbooks.run("purge", state="restored").assert_succeeded(changed=1)
    assert {path.stem for path in (playbooks.trash_dir / "entries").rglob("*.json")} == {trashed["id"]}
    # The entry still trashed keeps its manifest; the purged one's manifest went with it.
    assert snapshot_on_disk(playbooks.trash_dir, trashed["digest"])
    assert not (playbooks.trash_dir / "blobs" / "sha256" / restored["digest"].split(":")[1]).exists()
    assert_private_layout(playbooks.trash_dir)

    playbooks.run("purge", state="restored").assert_succeeded(changed=0)
    playbooks.run("purge", check=True, state="restored").assert_succeeded(changed=0)

    # By id, and the trash is empty.
    playbooks.run("purge", entry=trashed["id"]).assert_succeeded(changed=1)
    assert not list((playbooks.trash_dir / "entries").rglob("*.json"))


@pytest.mark.parametrize("survey, phrases", [
    ({}, ["Give either entry", "or one or more of the filters"]),
    ({"registry_url": "REGISTRY"}, ["Give either entry"]),
    ({"entry": "ENTRY", "state": "trashed"}, ["not both"]),
    ({"older_than": "a month"}, ["a number and a unit"]),
], ids=["nothing", "registry-only", "entry-and-filter", "bad-age"])
def test_purge_playbook_refuses_without_a_clear_selection_and_removes_nothing(
        read_only_trash, registry, survey, phrases):
    playbooks, entries = read_only_trash
    replacements = {"REGISTRY": registry.url, "ENTRY": entries["trashed"]["id"]}
    survey = {key: replacements.get(value, value) for key, value in survey.items()}
    before = sorted(path.relative_to(playbooks.trash_dir) for path in playbooks.trash_dir.rglob("*"))
    playbooks.run("purge", **survey).assert_refused(*phrases)
    assert sorted(path.relative_to(playbooks.trash_dir) for path in playbooks.trash_dir.rglob("*")) == before


# --- deploy_registry.yml ---

def test_deploy_registry_playbook_turns_survey_lists_into_the_roles_images(registry, repo, image, tmp_path):
    """Config-only on localhost: the role writes a config, then trashes and restores on a running registry.

    The registry here is the session's, already running, and the role is told where it is
    (registry_trash_url); the config it renders is not served, and that part is the role's test.
    """
    pushed = push(image("collection-playbooks-deploy"), registry, repo, "v2s2", ["v1", "v1-rc"])
    runner = Playbooks(tmp_path)

    def deploy(**survey):
        # Every answer as text, the role's booleans too, as a survey gives them.
        return runner.run("deploy_registry", trash_dir=None, registry_hosts="localhost", registry_become="false",
                          registry_trash_install="false", registry_trash_manage_service="false",
                          registry_trash_config_path=str(tmp_path / "etc" / "config.yml"),
                          registry_trash_storage_root=str(tmp_path / "storage"),
                          registry_trash_url=registry.url, registry_trash_dir=str(runner.trash_dir), **survey)

    deploy(trash_images=f"{repo}:v1-rc", trash_reason="deployed by survey").assert_succeeded()
    assert (tmp_path / "etc" / "config.yml").is_file()
    assert tags_of(pushed, "v1-rc", "v1") == {"v1-rc": None, "v1": pushed.digest}
    [entry] = entries_on_disk(runner.trash_dir, pushed)
    assert (entry["removed_tags"], entry["reason"]) == (["v1-rc"], "deployed by survey")

    deploy(restore_images=f"{repo}:v1-rc").assert_succeeded()
    pushed.assert_served_unchanged()

    deploy(trash_images="Team/App").assert_refused("repository:tag or repository@digest")


# --- every playbook ---

PLAYBOOKS = ("trash", "restore", "info", "purge", "deploy_registry", "demo")


def test_every_playbook_passes_syntax_check_by_its_collection_name(tmp_path):
    result = ansible("ansible-playbook", "--syntax-check", *(f"{COLLECTION}.{name}" for name in PLAYBOOKS),
                     workdir=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_survey_question_of_docs_awx_md_is_a_variable_its_playbook_documents():
    root = Path(__file__).resolve().parents[2]
    sections = re.split(r"^### `(\w+)\.yml`", (root / "docs" / "awx.md").read_text(), flags=re.MULTILINE)[1:]
    surveys = {name: re.findall(r"^\| `(\w+)` \|", body, re.MULTILINE)
               for name, body in zip(sections[::2], sections[1::2])}
    assert set(surveys) == set(PLAYBOOKS)
    for name, variables in surveys.items():
        header = (root / "playbooks" / f"{name}.yml").read_text().split("\n- name:", 1)[0]
        assert variables, f"docs/awx.md has no survey for {name}.yml"
        missing = [variable for variable in variables if not re.search(rf"\b{variable}\b", header)]
        assert not missing, f"{name}.yml does not document {missing}, which its survey in docs/awx.md asks"
