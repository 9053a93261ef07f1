"""The integration targets of registry_trash_info and registry_trash_purge, run through ansible-playbook.

This module pushes the images with skopeo, runs the wrapper playbooks (which include the targets'
roles) with the variables their tasks/main.yml documents, and afterwards checks the registry
with skopeo and the trash directory on disk. The runner's machinery (registries, pushes,
ansible-playbook and its environment) is test_playbooks.py's, imported, not copied.
"""

import re
import shutil
from dataclasses import dataclass

import pytest

from support.registry import Registry
from test_playbooks import AUTH_PASSWORD, AUTH_USER, COLLECTION, INVENTORY, Pushed, ansible, entries_on_disk, \
    push, run_playbook

PREFIX = "management"
# case -> (format skopeo pushes, tags sharing one digest)
IMAGES = {
    "info_app": ("v2s2", ["v1", "latest"]),
    "info_web": ("oci", ["v1"]),
    "purge_four_run": ("v2s2", ["v1"]),
    "purge_by_id": ("oci", ["v1"]),
}


@dataclass(frozen=True)
class World:
    plain: Registry
    auth: Registry
    images: dict
    defaults_image: Pushed

    def variables(self, trash_dir):
        """What the two targets read (their tasks/main.yml documents each)."""
        return {
            "registry_url": self.plain.url,
            "trash_dir": str(trash_dir),
            "images": {case: pushed.as_var() for case, pushed in self.images.items()},
            "auth_registry_url": self.auth.url,
            "auth_username": AUTH_USER,
            "auth_password": AUTH_PASSWORD,
            "defaults_image": self.defaults_image.as_var(),
        }


@pytest.fixture(scope="module")
def world(registry, image, tmp_path_factory):
    with Registry(tmp_path_factory.mktemp("auth-registry"), htpasswd_users={AUTH_USER: AUTH_PASSWORD}) as auth:
        images = {case: push(image(f"{PREFIX}-{case}"), registry, f"{PREFIX}/{case.replace('_', '-')}", fmt, tags)
                  for case, (fmt, tags) in IMAGES.items()}
        defaults_image = push(image(f"{PREFIX}-defaults"), auth, f"{PREFIX}/defaults", "v2s2", ["v1"],
                              username=AUTH_USER, password=AUTH_PASSWORD)
        yield World(registry, auth, images, defaults_image)


@pytest.fixture(scope="module")
def info_run(world, tmp_path_factory):
    return run_playbook(world, "registry_trash_info.yml", tmp_path_factory.mktemp("info-target"))


@pytest.fixture(scope="module")
def purge_run(world, tmp_path_factory):
    return run_playbook(world, "registry_trash_purge.yml", tmp_path_factory.mktemp("purge-target"))


# A play that runs one tasks file of the purge target alone (see that file for why it is not in main.yml).
ALONE = """
- name: Run {tasks} of registry_trash_purge alone
  hosts: controller
  gather_facts: false
  tasks:
    - name: Include it
      ansible.builtin.include_role:
        name: registry_trash_purge
        tasks_from: {tasks}
"""


def stored_files(trash_dir):
    return sorted(p.relative_to(trash_dir).as_posix() for p in trash_dir.rglob("*") if p.is_file())


# --- registry_trash_info ---

def test_info_target_playbook_passes(info_run):
    info_run.assert_succeeded()


def test_info_target_restored_the_entry_info_returned_and_left_the_other_trashed(info_run, world):
    app, web = world.images["info_app"], world.images["info_web"]
    app.assert_served_unchanged()
    web.assert_gone()
    assert [e["state"] for e in entries_on_disk(info_run.trash_dir, app)] == ["restored"]
    [web_entry] = entries_on_disk(info_run.trash_dir, web)
    assert (web_entry["state"], web_entry["keep_blobs"]) == ("trashed", True)


# --- registry_trash_purge ---

def test_purge_target_playbook_passes(purge_run):
    purge_run.assert_succeeded()


def test_purge_target_leaves_an_empty_trash_and_the_registries_as_trash_and_restore_left_them(purge_run, world):
    # Every entry and every stored manifest went (the lock files and the format marker stay);
    # purge itself never touches a registry.
    kept = [f for f in stored_files(purge_run.trash_dir) if not re.fullmatch(r"locks/remove-\d\d\.lock", f)]
    assert kept == [".lock", ".sweep.lock", "trash.json"]
    for case in ("purge_four_run", "purge_by_id"):
        world.images[case].assert_gone()
    world.defaults_image.assert_served_unchanged()


def test_password_from_module_defaults_appears_in_no_output(purge_run):
    purge_run.assert_succeeded()
    assert AUTH_PASSWORD not in purge_run.output


def test_purge_by_entry_works_where_module_defaults_give_the_group_a_registry_url(world, tmp_path):
    playbook = tmp_path / "entry_with_group_defaults.yml"
    playbook.write_text(ALONE.format(tasks="entry_with_group_defaults.yml"))

    run = run_playbook(world, playbook, tmp_path)

    run.assert_succeeded()


def test_purge_with_an_empty_duration_fails_and_removes_nothing(info_run, tmp_path):
    # An unset variable gives exactly this: older_than: "{{ retention | default('') }}".
    trash_dir = shutil.copytree(info_run.trash_dir, tmp_path / "trash")
    before = stored_files(trash_dir)

    result = ansible("ansible", "localhost", "-i", INVENTORY, "-m", f"{COLLECTION}.registry_trash_purge",
                     "-a", f"trash_dir={trash_dir} older_than=", workdir=tmp_path)

    assert stored_files(trash_dir) == before
    assert result.returncode != 0 and "invalid duration" in result.stdout, result.stdout
