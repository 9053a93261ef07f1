"""The role oci_registry.trash.registry_trash, run through ansible-playbook against real registries.

systemd is not available here, so the role runs in config-only mode (no package, no service)
on two inventory hosts of this machine, each with its own configuration directory and port,
and the test starts ``docker-registry serve`` on the configuration the role rendered:

- ``main``: htpasswd users and extra configuration. The role renders it, a check-mode run and
  a second run change nothing, then images pushed with skopeo are trashed, garbage collection
  is refused while a trashed image kept no blobs, that image is restored, and garbage is
  collected: the blobs of the image whose blobs the trash kept go, the restored image stays whole.
- ``second``: deletes disabled through registry_trash_config_extra, which the role's probe
  must report clearly before trashing anything; its users change between runs.

The registry is checked with skopeo, the htpasswd file with bcrypt and the configuration
with a YAML parser, not through the role.
"""

import json
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest
import yaml

from support.images import make_oci_layout, skopeo_pullable, skopeo_tags
from support.registry import Registry, free_port
from test_playbooks import PLAYBOOKS, Run, ansible, entries_on_disk, push, registry_key

ROLE_PLAYBOOK = PLAYBOOKS / "registry_trash_role.yml"
ROLE = Path(__file__).resolve().parents[2] / "roles" / "registry_trash"
# Registered by the role for the tasks after it; documented in its README, not variables to set.
RESULT_VARIABLES = {"registry_trash_trashed", "registry_trash_restored", "registry_trash_gc_result"}
# Random, so that finding them in any output can only mean they leaked.
MAIN_USERS = {"alice": f"pw-{secrets.token_hex(12)}"}
SECOND_USERS = {"carol": f"pw-{secrets.token_hex(12)}", "dave": f"pw-{secrets.token_hex(12)}",
                "erin": f"pw-{secrets.token_hex(12)}"}
DAVE_NEW_PASSWORD = f"pw-{secrets.token_hex(12)}"
SECRETS = [*MAIN_USERS.values(), *SECOND_USERS.values(), DAVE_NEW_PASSWORD]
# The lowest bcrypt cost keeps every authenticated request of the tests cheap.
COST = 4
REASON = "superseded, says the role test"


# --- the role's interface: defaults, argument spec, README ---

def role_options():
    return yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]


def test_argument_spec_validates_every_variable_with_the_default_of_defaults_main():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    options = role_options()
    assert set(options) == set(defaults)
    for name, option in options.items():
        assert option.get("default") == defaults[name], name
        assert option.get("type") and option.get("description"), name
    used = set()
    for path in [*ROLE.glob("tasks/*.yml"), *ROLE.glob("handlers/*.yml"), *ROLE.glob("vars/*.yml"),
                 *ROLE.glob("templates/*")]:
        # Not the module names oci_registry.trash.registry_trash_info and _purge.
        used.update(re.findall(r"(?<![.\w])registry_trash_\w+", path.read_text()))
    assert used - RESULT_VARIABLES <= set(options)


def test_readme_documents_every_variable_with_its_default():
    readme = (ROLE / "README.md").read_text()
    for name, option in role_options().items():
        row = re.search(rf"^\| `{name}` \| `(.*?)` \|", readme, re.MULTILINE)
        assert row, f"{name} is not in the README's tables"
        assert yaml.safe_load(row.group(1).replace("\\|", "|")) == option.get("default"), name
    for name in RESULT_VARIABLES:
        assert f"| `{name}` |" in readme


@dataclass(frozen=True)
class Site:
    """One inventory host: where the role writes the registry's files, and its port."""
    name: str
    root: Path
    port: int

    @property
    def config_path(self):
        return self.root / "etc" / "registry" / "config.yml"

    @property
    def htpasswd_path(self):
        return self.config_path.parent / "htpasswd"

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def variables(self, users, trash_dir, **more):
        return {
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "registry_trash_install": False,
            "registry_trash_manage_service": False,
            "registry_trash_config_path": str(self.config_path),
            "registry_trash_storage_root": str(self.root / "storage"),
            "registry_trash_http_addr": f"127.0.0.1:{self.port}",
            "registry_trash_htpasswd_users": [{"name": name, "password": password}
                                              for name, password in users.items()],
            "registry_trash_htpasswd_cost": COST,
            "registry_trash_dir": str(trash_dir),
            **more,
        }


MAIN_EXTRA = {
    # Merged into the role's http.headers, whose X-Content-Type-Options must stay.
    "http": {"headers": {"X-Trash-Test": ["role"]}},
    # The purger would delete upload directories behind the test's back.
    "storage": {"maintenance": {"uploadpurging": {"enabled": False}}},
}
SECOND_EXTRA = {"storage": {"delete": {"enabled": False}}}


def run_role(workdir, trash_dir, hosts, *args):
    """Run the role's wrapper playbook on the hosts given as {name: variables}."""
    workdir.mkdir(parents=True, exist_ok=True)
    inventory = workdir / "inventory.yml"
    inventory.write_text(json.dumps({"registries": {"hosts": hosts}}, indent=2))
    result = ansible("ansible-playbook", "-v", "-i", inventory, ROLE_PLAYBOOK, *args, workdir=workdir)
    (workdir / "ansible-playbook.log").write_text(result.stdout + result.stderr)
    return Run(result, workdir, trash_dir)


@dataclass
class Scenario:
    """The two sites, the trash, and each run of the role, in the order they happened."""
    main: Site
    second: Site
    trash_dir: Path
    workdir: Path
    runs: dict

    def main_vars(self, **more):
        return self.main.variables(MAIN_USERS, self.trash_dir, registry_trash_config_extra=MAIN_EXTRA, **more)

    def second_vars(self, users=None, **more):
        return self.second.variables(users or SECOND_USERS, self.trash_dir,
                                     registry_trash_config_extra=SECOND_EXTRA, **more)

    def run(self, name, hosts, *args):
        self.runs[name] = run_role(self.workdir / name, self.trash_dir, hosts, *args)
        return self.runs[name]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    root = tmp_path_factory.mktemp("role")
    return Scenario(Site("main", root / "main", free_port()), Site("second", root / "second", free_port()),
                    root / "trash", root / "runs", {})


# --- rendering, check mode, idempotency ---

@pytest.fixture(scope="module")
def rendered(scenario):
    """The first run, then a check-mode run and a second run with the same variables."""
    hosts = {"main": scenario.main_vars(), "second": scenario.second_vars()}
    first = scenario.run("1-render", hosts)
    files = {site.name: (site.config_path.read_bytes(), site.htpasswd_path.read_bytes())
             for site in (scenario.main, scenario.second)} if first.result.returncode == 0 else {}
    # Both hosts went through the same tasks; main alone shows that nothing changes.
    check = scenario.run("2-check", {"main": hosts["main"]}, "--check", "--diff")
    again = scenario.run("3-again", {"main": hosts["main"]})
    return first, check, again, files


def test_config_only_run_writes_a_delete_enabled_config_with_the_extra_merged_in(rendered, scenario):
    first = rendered[0]
    first.assert_succeeded()
    config = yaml.safe_load(scenario.main.config_path.read_text())
    assert config["version"] == 0.1
    assert config["storage"]["delete"] == {"enabled": True}
    assert config["storage"]["filesystem"] == {"rootdirectory": str(scenario.main.root / "storage")}
    assert config["storage"]["maintenance"] == {"uploadpurging": {"enabled": False}}
    assert config["http"]["addr"] == f"127.0.0.1:{scenario.main.port}"
    assert config["http"]["headers"] == {"X-Content-Type-Options": ["nosniff"], "X-Trash-Test": ["role"]}
    # A file, not Debian's directory.
    assert config["auth"]["htpasswd"]["path"] == str(scenario.main.htpasswd_path)
    assert stat.S_IMODE(scenario.main.config_path.stat().st_mode) == 0o640
    # The extra configuration wins over the role's own settings.
    assert yaml.safe_load(scenario.second.config_path.read_text())["storage"]["delete"] == {"enabled": False}
    # Nothing to probe in config-only mode with nothing to trash: the registry is not running yet.
    assert first.recap("main")["failed"] == 0


def htpasswd_lines(site):
    return dict(line.split(":", 1) for line in site.htpasswd_path.read_text().splitlines())


def assert_bcrypt(digest, password):
    assert digest.startswith(f"$2y${COST:02d}$"), digest
    # Python's bcrypt knows the Apache spelling $2y$ as $2b$: the same algorithm.
    assert bcrypt.checkpw(password.encode(), ("$2b$" + digest[4:]).encode())


def test_htpasswd_file_holds_bcrypt_hashes_of_exactly_the_users_given(rendered, scenario):
    rendered[0].assert_succeeded()
    lines = htpasswd_lines(scenario.main)
    assert list(lines) == list(MAIN_USERS)
    for name, password in MAIN_USERS.items():
        assert_bcrypt(lines[name], password)
    assert stat.S_IMODE(scenario.main.htpasswd_path.stat().st_mode) == 0o640


def test_check_mode_and_a_second_run_change_nothing(rendered, scenario):
    _first, check, again, files = rendered
    for run in (check, again):
        run.assert_succeeded()
        counters = run.recap("main")
        assert counters["changed"] == 0 and counters["failed"] == 0, counters
    # Not a single byte: the bcrypt line was verified and kept, not hashed again with a new salt.
    site = scenario.main
    assert (site.config_path.read_bytes(), site.htpasswd_path.read_bytes()) == files[site.name]


# --- the registries on the rendered configurations ---

@dataclass
class Started:
    main: Registry
    second: Registry
    app: object
    kept: object
    other: object
    credentials: dict


@pytest.fixture(scope="module")
def started(rendered, scenario, request, tmp_path_factory):
    rendered[0].assert_succeeded()
    registries = []
    for site in (scenario.main, scenario.second):
        registry = Registry(scenario.workdir / f"{site.name}-registry", config=site.config_path)
        request.addfinalizer(registry.stop)
        registry.start()
        registries.append(registry)
    main, second = registries
    layouts = tmp_path_factory.mktemp("role-images")
    credentials = {"username": "alice", "password": MAIN_USERS["alice"]}
    app = push(make_oci_layout(layouts / "app", "role-app"), main, "role/app", "v2s2", ["v1"], **credentials)
    kept = push(make_oci_layout(layouts / "kept", "role-kept"), main, "role/kept", "oci", ["v1"], **credentials)
    other = push(make_oci_layout(layouts / "other", "role-other"), second, "role/app", "v2s2", ["v1"],
                 username="carol", password=SECOND_USERS["carol"])
    return Started(main, second, app, kept, other, credentials)


def test_rendered_config_serves_its_htpasswd_users_only(started):
    assert skopeo_tags(started.main, "role/app", **started.credentials) == ["v1"]
    with pytest.raises(RuntimeError, match="401|unauthorized|authentication required"):
        skopeo_tags(started.main, "role/app", username="alice", password="not-her-password")


# --- trash, refused garbage collection, and a registry that refuses deletes ---

def task_outcome(run, task, host):
    """How host came out of the role's task named so: 'ok', 'changed', 'skipping', 'fatal'; None if it did not run."""
    sections = run.result.stdout.split(f"TASK [oci_registry.trash.registry_trash : {task}] ")
    if len(sections) < 2:
        return None
    match = re.search(rf"^(\w+): \[{host}\]", sections[1].split("\nTASK [", 1)[0], re.MULTILINE)
    return match and match.group(1)


def failure(run, host):
    """The message of the task that failed on host, with its white space folded."""
    match = re.search(rf"^fatal: \[{host}\]: FAILED! => ", run.result.stdout, re.MULTILINE)
    assert match, f"{host} did not fail:\n{run.output[-6000:]}"
    result, _end = json.JSONDecoder().raw_decode(run.result.stdout, match.end())
    return " ".join(result["msg"].split())


@pytest.fixture(scope="module")
def trashed(started, scenario):
    """One run: main trashes two images, then is asked to collect garbage; second refuses deletes."""
    images = [{"repository": "role/app", "tag": "v1", "reason": REASON},
              {"repository": "role/kept", "tags": ["v1"], "keep_blobs": True}]
    second_users = {"carol": SECOND_USERS["carol"], "dave": DAVE_NEW_PASSWORD}
    blobs_before = started.main.stored_blobs()
    run = scenario.run("4-trash", {
        "main": scenario.main_vars(registry_trash_images=images, registry_trash_gc=True,
                                   registry_trash_gc_method="external"),
        "second": scenario.second_vars(second_users, registry_trash_images=images[:1]),
    })
    return run, blobs_before


def test_role_trashes_the_listed_images_through_the_modules(trashed, started, scenario):
    run, _blobs_before = trashed
    assert f"The registry at {scenario.main.url} accepts deletes." in run.output
    assert re.search(r"^changed: \[main\] => \(item=role/app v1\)", run.result.stdout, re.MULTILINE)
    assert re.search(r"^changed: \[main\] => \(item=role/kept \['v1'\]\)", run.result.stdout, re.MULTILINE)
    for pushed in (started.app, started.kept):
        pushed.assert_gone()
    [app_entry] = entries_on_disk(run.trash_dir, started.app)
    assert (app_entry["state"], app_entry["removed_tags"], app_entry["reason"]) == ("trashed", ["v1"], REASON)
    assert app_entry["keep_blobs"] is False
    [kept_entry] = entries_on_disk(run.trash_dir, started.kept)
    assert kept_entry["keep_blobs"] is True


def test_garbage_collection_refuses_while_a_trashed_image_kept_no_blobs(trashed, started):
    run, blobs_before = trashed
    message = failure(run, "main")
    [app_entry] = entries_on_disk(run.trash_dir, started.app)
    [kept_entry] = entries_on_disk(run.trash_dir, started.kept)
    assert message.startswith("Garbage collection would make 1 trash entry of"), message
    assert f"role/app:v1 {started.app.digest} (trashed, entry {app_entry['id']})." in message
    assert kept_entry["id"] not in message
    assert "registry_trash_gc_force" in message
    assert task_outcome(run, "See what a collection would remove", "main") is None
    assert started.main.stored_blobs() == blobs_before


def test_deletes_disabled_registry_fails_clearly_before_anything_is_trashed(trashed, started, scenario):
    run, _blobs_before = trashed
    message = failure(run, "second")
    assert message.startswith(f"The registry at {scenario.second.url} has deletes disabled: "
                              "DELETE answered 405 UNSUPPORTED."), message
    assert "storage.delete.enabled true" in message
    assert task_outcome(run, "Trash the images of registry_trash_images", "second") is None
    started.other.assert_served_unchanged()
    assert not (run.trash_dir / "entries" / registry_key(started.second)).exists()


def test_changed_password_rewrites_only_that_users_line_and_drops_removed_users(trashed, rendered, scenario):
    before = dict(line.split(":", 1) for line in rendered[3]["second"][1].decode().splitlines())
    after = htpasswd_lines(scenario.second)
    assert list(after) == ["carol", "dave"]
    assert after["carol"] == before["carol"]
    assert after["dave"] != before["dave"]
    assert_bcrypt(after["dave"], DAVE_NEW_PASSWORD)


# --- restore, then garbage collection once nothing would be lost ---

@pytest.fixture(scope="module")
def restored(trashed, started, scenario):
    """One run: main restores the image that kept no blobs, then collects garbage.

    gc_method external leaves keeping writers away to the caller; nothing but this run writes
    to the test's registry, and its restore is over before the collection starts.
    """
    run = scenario.run("5-restore-and-collect", {"main": scenario.main_vars(
        registry_trash_restore=[{"repository": "role/app", "tag": "v1"}],
        registry_trash_gc=True, registry_trash_gc_method="external")})
    return run, started.main.stored_blobs()


def blobs_of(pushed):
    manifest = json.loads(pushed.raw)
    return {manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])}


def test_role_restores_the_trashed_tag_byte_for_byte(restored, started):
    run, _blobs_after = restored
    run.assert_succeeded()
    assert re.search(r"^changed: \[main\] => \(item=role/app v1\)", run.result.stdout, re.MULTILINE)
    started.app.assert_served_unchanged()
    [app_entry] = entries_on_disk(run.trash_dir, started.app)
    assert app_entry["state"] == "restored"


def test_garbage_collection_goes_on_once_every_trashed_image_kept_its_blobs(restored, started):
    run, blobs_after = restored
    run.assert_succeeded()
    assert task_outcome(run, "Run the garbage collector", "main") == "changed"
    # The kept image's blobs are gone from the registry's storage, and in the trash, for a restore.
    assert not blobs_of(started.kept) & blobs_after
    for digest in blobs_of(started.kept):
        assert (run.trash_dir / "blobs" / "sha256" / digest.split(":")[1]).is_file()
    # The restored image is whole.
    assert blobs_of(started.app) <= blobs_after
    assert skopeo_pullable(started.main, "role/app:v1", run.workdir / "pulled", **started.credentials)


def test_no_password_appears_in_any_output(restored, scenario):
    assert len(scenario.runs) == 5
    for name, run in scenario.runs.items():
        leaked = [secret for secret in SECRETS if secret in run.output]
        assert not leaked, f"run {name} printed a password"
