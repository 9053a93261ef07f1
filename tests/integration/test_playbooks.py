"""The integration targets, run through ansible-playbook against real registries.

This module starts the registries, pushes the images with skopeo, runs the wrapper playbooks
in playbooks/ (which include the roles in targets/) with the variables documented in
integration_config.yml.template, and afterwards checks the registry with skopeo and the trash
directory on disk: the playbooks' own asserts only see what the play could see.
"""

import json
import os
import re
import secrets
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.images import skopeo_manifest, skopeo_push, skopeo_tags
from support.registry import Registry

HERE = Path(__file__).resolve().parent
PLAYBOOKS = HERE / "playbooks"
TARGETS = HERE / "targets"
INVENTORY = PLAYBOOKS / "inventory.ini"
# scripts/test runs the virtualenv's python; the ansible commands sit beside it.
BIN = Path(sys.executable).parent
COLLECTION = "oci_registry.trash"
MODULES = ("registry_manifest_trash", "registry_manifest_restore")
ENV_VARS = {"registry_url": "REGISTRY_URL", "username": "REGISTRY_USERNAME",
            "password": "REGISTRY_PASSWORD", "trash_dir": "REGISTRY_TRASH_DIR"}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
UNREACHABLE_HOST = "unreachable-host"
ANSIBLE_TIMEOUT = 300

AUTH_USER = "integration"
# Random, so that finding it anywhere can only mean it leaked.
AUTH_PASSWORD = f"pw-{secrets.token_hex(16)}"
PREFIX = "integration"

# Images on the plain registry: case -> (format skopeo pushes, tags sharing one digest).
PLAIN_IMAGES = {
    "trash_four_run": ("v2s2", ["v1"]),
    "shared": ("oci", ["stable", "v2"]),
    "controller_side": ("v2s2", ["v1"]),
    "round_trip": ("oci", ["v1"]),
    "restore_four_run": ("v2s2", ["v1"]),
    "tampered": ("v2s2", ["v1"]),
}

ENTRY_ID = r"\d{8}T\d{12}Z-[0-9a-f]{12}-[0-9a-f]{4}"
# The files docs/trash-format.md lists; anything else (a temporary file, a copy) is a defect.
TRASH_LAYOUT = re.compile(
    r"trash\.json|\.lock|\.sweep\.lock|locks/remove-\d\d\.lock|blobs/sha256/[0-9a-f]{64}"
    rf"|entries/127\.0\.0\.1_\d+/[a-z0-9._-]+(/[a-z0-9._-]+)*/{ENTRY_ID}\.json")


# --- the environment: registries and images ---

@dataclass(frozen=True)
class Pushed:
    """An image as skopeo pushed it: every tag points at digest, whose manifest is raw."""
    registry: Registry
    repository: str
    tags: tuple
    digest: str
    raw: bytes
    credentials: tuple = ()

    def as_var(self):
        return {"repository": self.repository, "tags": list(self.tags), "digest": self.digest}

    def served(self, reference):
        """What skopeo gets for a tag or digest of this repository: (digest, raw, type) or None."""
        separator = "@" if ":" in reference else ":"
        return skopeo_manifest(self.registry, f"{self.repository}{separator}{reference}",
                               **dict(self.credentials))

    def assert_served_unchanged(self):
        for reference in (*self.tags, self.digest):
            found = self.served(reference)
            assert found is not None, f"{self.repository} {reference} is missing"
            assert found[:2] == (self.digest, self.raw), f"{self.repository} {reference} changed"

    def assert_gone(self):
        assert skopeo_tags(self.registry, self.repository, **dict(self.credentials)) == []
        assert self.served(self.digest) is None


def push(layout, registry, repository, fmt, tags, **credentials):
    digests = {skopeo_push(layout, registry, f"{repository}:{tag}", fmt=fmt, **credentials)
               for tag in tags}
    assert len(digests) == 1, f"the tags of {repository} must share one digest: {digests}"
    digest = digests.pop()
    found = skopeo_manifest(registry, f"{repository}@{digest}", **credentials)
    return Pushed(registry, repository, tuple(tags), digest, found[1], tuple(credentials.items()))


@dataclass(frozen=True)
class World:
    plain: Registry
    auth: Registry
    nodelete: Registry
    images: dict
    auth_image: Pushed
    nodelete_image: Pushed

    def variables(self, trash_dir):
        """The variables every target reads (integration_config.yml.template documents them)."""
        return {
            "registry_url": self.plain.url,
            "trash_dir": str(trash_dir),
            "repository": PREFIX,
            "images": {case: pushed.as_var() for case, pushed in self.images.items()},
            "auth_registry_url": self.auth.url,
            "auth_username": AUTH_USER,
            "auth_password": AUTH_PASSWORD,
            "auth_image": self.auth_image.as_var(),
            "nodelete_registry_url": self.nodelete.url,
            "nodelete_image": self.nodelete_image.as_var(),
        }


@pytest.fixture(scope="module")
def world(registry, image, tmp_path_factory):
    auth = Registry(tmp_path_factory.mktemp("auth-registry"), htpasswd_users={AUTH_USER: AUTH_PASSWORD})
    nodelete = Registry(tmp_path_factory.mktemp("nodelete-registry"), delete=False)
    with auth, nodelete:
        images = {case: push(image(f"integration-{case}"), registry, f"{PREFIX}/{case.replace('_', '-')}",
                             fmt, tags)
                  for case, (fmt, tags) in PLAIN_IMAGES.items()}
        auth_image = push(image("integration-auth"), auth, f"{PREFIX}/auth", "v2s2", ["v1"],
                          username=AUTH_USER, password=AUTH_PASSWORD)
        nodelete_image = push(image("integration-nodelete"), nodelete, f"{PREFIX}/nodelete", "v2s2", ["v1"])
        yield World(registry, auth, nodelete, images, auth_image, nodelete_image)


# --- running ansible ---

@dataclass(frozen=True)
class Run:
    result: subprocess.CompletedProcess
    workdir: Path
    trash_dir: Path

    @property
    def output(self):
        return self.result.stdout + self.result.stderr

    def assert_succeeded(self):
        assert self.result.returncode == 0, \
            f"exit {self.result.returncode}, log in {self.workdir}:\n{self.output[-12000:]}"

    def recap(self, host):
        """The PLAY RECAP counters of one host, e.g. {'ok': 3, 'changed': 2, ...}."""
        line = re.search(rf"^{re.escape(host)}\s+:(.*)$", self.result.stdout, re.MULTILINE)
        assert line, f"no recap for {host}:\n{self.result.stdout[-3000:]}"
        return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", line.group(1))}


def ansible(command, *args, workdir, env=None):
    """Run an ansible command as a user would, cut off from this machine's settings.

    HOME is the work directory, so the modules' default trash (~/.ansible/registry_trash)
    would show up there if an option ever failed to arrive.
    """
    environment = {key: value for key, value in os.environ.items() if not key.startswith("REGISTRY_")}
    environment.pop("ANSIBLE_CONFIG", None)
    environment.update(HOME=str(workdir), ANSIBLE_ROLES_PATH=str(TARGETS), ANSIBLE_NOCOLOR="1",
                       ANSIBLE_FORCE_COLOR="0", ANSIBLE_RETRY_FILES_ENABLED="0", **(env or {}))
    return subprocess.run([str(BIN / command), *map(str, args)], cwd=workdir, env=environment,
                          capture_output=True, text=True, timeout=ANSIBLE_TIMEOUT, check=False)


def run_playbook(world, playbook, workdir, env=None):
    trash_dir = workdir / "trash"  # left to the modules to create, with their own modes
    vars_file = workdir / "vars.json"
    vars_file.write_text(json.dumps(world.variables(trash_dir), indent=2))
    result = ansible("ansible-playbook", "-v", "-i", INVENTORY, "-e", f"@{vars_file}",
                     PLAYBOOKS / playbook, workdir=workdir, env=env)
    # A failure message shows only the tail; the whole run stays here for reading.
    (workdir / "ansible-playbook.log").write_text(result.stdout + result.stderr)
    return Run(result, workdir, trash_dir)


@pytest.fixture(scope="module")
def trash_run(world, tmp_path_factory):
    return run_playbook(world, "registry_manifest_trash.yml", tmp_path_factory.mktemp("trash-target"))


@pytest.fixture(scope="module")
def restore_run(world, tmp_path_factory):
    return run_playbook(world, "registry_manifest_restore.yml", tmp_path_factory.mktemp("restore-target"))


@pytest.fixture(scope="module")
def env_run(world, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("env-credentials")
    return run_playbook(world, "env_credentials.yml", workdir, env={
        "REGISTRY_URL": world.auth.url,
        "REGISTRY_USERNAME": AUTH_USER,
        "REGISTRY_PASSWORD": AUTH_PASSWORD,
        "REGISTRY_TRASH_DIR": str(workdir / "trash"),
    })


# --- reading the trash on disk ---

def registry_key(registry):
    return registry.host.replace(":", "_")


def entries_on_disk(trash_dir, pushed):
    directory = trash_dir / "entries" / registry_key(pushed.registry) / pushed.repository
    return [json.loads(path.read_bytes()) for path in sorted(directory.glob("*.json"))]


def snapshot_on_disk(trash_dir, digest):
    algorithm, encoded = digest.split(":")
    return (trash_dir / "blobs" / algorithm / encoded).read_bytes()


def assert_trashed_snapshots(run, pushed, states):
    """The trash holds one entry per state given, each with the exact bytes that were pushed."""
    entries = entries_on_disk(run.trash_dir, pushed)
    assert [entry["state"] for entry in entries] == states
    for entry in entries:
        assert entry["digest"] == pushed.digest
        assert set(entry["removed_tags"]) <= set(pushed.tags)
    assert snapshot_on_disk(run.trash_dir, pushed.digest) == pushed.raw
    return entries


def assert_private_layout(trash_dir):
    """Only the documented files, directories 0700 and files 0600: nothing stray or readable by others."""
    assert stat.S_IMODE(trash_dir.stat().st_mode) == 0o700
    for path in trash_dir.rglob("*"):
        relative = path.relative_to(trash_dir).as_posix()
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_dir():
            assert mode == 0o700, f"{relative} has mode {mode:o}"
        else:
            assert TRASH_LAYOUT.fullmatch(relative), f"unexpected file in the trash: {relative}"
            assert mode == 0o600, f"{relative} has mode {mode:o}"


# --- the trash target ---

def test_trash_target_playbook_passes(trash_run):
    trash_run.assert_succeeded()


def test_trash_target_leaves_the_registry_as_its_cases_promise(trash_run, world):
    images = world.images
    images["trash_four_run"].assert_gone()
    # The sibling tag survived scope tag, both came back after scope manifest, byte for byte.
    images["shared"].assert_served_unchanged()
    # Neither a registry refusing deletes nor one refusing the credentials lost anything.
    world.nodelete_image.assert_served_unchanged()
    world.auth_image.assert_served_unchanged()


def test_trash_target_keeps_exact_snapshots_and_nothing_for_refused_deletes(trash_run, world):
    images = world.images
    [four_run] = assert_trashed_snapshots(trash_run, images["trash_four_run"], ["trashed"])
    assert four_run["removed_tags"] == ["v1"]
    by_tag, by_manifest = assert_trashed_snapshots(trash_run, images["shared"], ["restored", "restored"])
    assert (by_tag["removed_tags"], by_tag["other_tags"]) == (["v2"], ["stable"])
    assert (by_manifest["removed_tags"], by_manifest["other_tags"]) == (["stable", "v2"], [])
    for refused in (world.nodelete, world.auth):
        assert not (trash_run.trash_dir / "entries" / registry_key(refused)).exists()
    assert_private_layout(trash_run.trash_dir)


def test_modules_work_in_a_play_whose_host_cannot_be_reached(trash_run, world, tmp_path):
    # The premise: a task that does connect to that host fails.
    ping = ansible("ansible", UNREACHABLE_HOST, "-i", INVENTORY, "-m", "ansible.builtin.ping", workdir=tmp_path)
    assert ping.returncode != 0 and "UNREACHABLE" in ping.stdout, ping.stdout + ping.stderr
    counters = trash_run.recap(UNREACHABLE_HOST)
    assert counters["unreachable"] == 0 and counters["failed"] == 0, counters
    assert counters["changed"] == 2, counters  # the trash and the restore
    assert_trashed_snapshots(trash_run, world.images["controller_side"], ["restored"])
    world.images["controller_side"].assert_served_unchanged()


# --- the restore target ---

def test_restore_target_playbook_passes(restore_run):
    restore_run.assert_succeeded()


def test_restore_target_brings_back_the_exact_bytes(restore_run, world):
    for case in ("round_trip", "restore_four_run"):
        world.images[case].assert_served_unchanged()
        assert_trashed_snapshots(restore_run, world.images[case], ["restored"])
    assert world.images["round_trip"].served("v1")[2] == OCI_MANIFEST
    assert_private_layout(restore_run.trash_dir)


def test_restore_of_a_tampered_snapshot_sends_nothing(restore_run, world):
    tampered = world.images["tampered"]
    tampered.assert_gone()
    [entry] = entries_on_disk(restore_run.trash_dir, tampered)
    assert entry["state"] == "trashed"
    # The registry's access log: '"METHOD /v2/<name>/manifests/<ref> HTTP/1.1" status size "" "user agent"'.
    ours = [line for line in world.plain.log_path.read_text().splitlines()
            if f' /v2/{tampered.repository}/manifests/' in line and re.search(r'"oci_registry\.trash[^"]*"$', line)]
    # The trash task's DELETE shows the log names our requests; a restore would have left a PUT.
    assert any('"DELETE ' in line for line in ours), ours
    assert not [line for line in ours if '"PUT ' in line]


# --- credentials from the environment ---

def test_env_credentials_playbook_passes(env_run):
    env_run.assert_succeeded()


def test_env_credentials_reach_the_registry_and_the_trash(env_run, world):
    world.auth_image.assert_served_unchanged()
    assert_trashed_snapshots(env_run, world.auth_image, ["restored"])
    assert not (env_run.workdir / ".ansible" / "registry_trash").exists()


def test_password_appears_in_no_output_and_no_trash_file(trash_run, env_run):
    # The trash run used it (a wrong variant of it, too) as an option, the env run from REGISTRY_PASSWORD.
    for run in (trash_run, env_run):
        run.assert_succeeded()
        assert AUTH_PASSWORD not in run.output
        files = [path for path in run.trash_dir.rglob("*") if path.is_file()]
        assert files
        leaks = [path for path in files if AUTH_PASSWORD.encode() in path.read_bytes()]
        assert not leaks


# --- ad-hoc ---

def test_adhoc_calls_trash_and_restore_a_tag(registry, repo, image, tmp_path):
    pushed = push(image("integration-adhoc"), registry, repo, "v2s2", ["v1"])
    trash_dir = tmp_path / "trash"
    common = f"repository={repo} registry_url={registry.url} trash_dir={trash_dir}"

    def adhoc(module, args):
        result = ansible("ansible", "localhost", "-i", INVENTORY, "-m", f"{COLLECTION}.{module}",
                         "-a", f"{common} {args}", workdir=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "CHANGED" in result.stdout, result.stdout
        return result

    adhoc("registry_manifest_trash", "tag=v1")
    pushed.assert_gone()
    [entry] = entries_on_disk(trash_dir, pushed)
    assert entry["state"] == "trashed"
    assert snapshot_on_disk(trash_dir, pushed.digest) == pushed.raw

    adhoc("registry_manifest_restore", f"entry={entry['id']}")
    pushed.assert_served_unchanged()


# --- documentation and the argument spec derived from it ---

SPEC_SCRIPT = """
import json, sys
from ansible.module_utils.basic import env_fallback
from ansible.plugins.loader import init_plugin_loader
init_plugin_loader([sys.argv[1]])
from ansible_collections.oci_registry.trash.plugins.plugin_utils import _action_base as base
report = {}
for module in sys.argv[2:]:
    docs = base.documented_options(module)
    report[module] = {
        name: {
            "no_log": option.get("no_log", False),
            "required": option.get("required", False),
            "env": list(option["fallback"][1]) if option.get("fallback", (None,))[0] is env_fallback else [],
            "description": " ".join(docs[name]["description"]),
        }
        for name, option in base.argument_spec(module).items()
    }
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def derived_specs(tmp_path_factory):
    """The argument spec each action plugin derives, read in a process with the collection loader on."""
    result = subprocess.run([sys.executable, "-c", SPEC_SCRIPT, os.environ["ANSIBLE_COLLECTIONS_PATH"], *MODULES],
                            capture_output=True, text=True, timeout=ANSIBLE_TIMEOUT,
                            cwd=tmp_path_factory.mktemp("spec"), check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("module", MODULES)
def test_argument_spec_names_each_env_fallback_in_its_description(derived_specs, module):
    spec = derived_specs[module]
    fallbacks = {(name, variable) for name, option in spec.items() for variable in option["env"]}
    assert set(ENV_VARS.items()) <= fallbacks
    for name, variable in fallbacks:
        assert variable in spec[name]["description"], f"{name} does not mention {variable}"


@pytest.mark.parametrize("module", MODULES)
def test_argument_spec_hides_the_password_but_not_what_identifies_the_target(derived_specs, module):
    spec = derived_specs[module]
    assert spec["password"]["no_log"]
    # no_log masks every occurrence of a value in the output, so these must stay readable.
    assert not [name for name in ("registry_url", "username", "repository", "trash_dir") if spec[name]["no_log"]]


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_lists_every_option_as_validated_and_says_it_runs_on_the_controller(
        derived_specs, module, tmp_path):
    result = ansible("ansible-doc", f"{COLLECTION}.{module}", workdir=tmp_path, env={"PAGER": "cat"})
    assert result.returncode == 0, result.stderr
    text = result.stdout
    # The OPTIONS section runs up to the next heading; return values look like options.
    options = re.search(r"^OPTIONS\b.*?$(.*?)^[A-Z]", text, re.MULTILINE | re.DOTALL).group(1)
    # ansible-doc heads each option with "= name" when it is required and "- name" otherwise.
    shown = dict((name, marker == "=") for marker, name in re.findall(r"^([-=]) (\w+) ", options, re.MULTILINE))
    assert shown == {name: option["required"] for name, option in derived_specs[module].items()}, text
    assert "always runs on the Ansible controller" in " ".join(text.split())
