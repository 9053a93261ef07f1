"""The collection as users get it: built with ansible-galaxy, installed from the tarball, and used from there.

The build runs on this checkout; the installed copy is the only collection Ansible can see in the
runs below (ANSIBLE_COLLECTIONS_PATH is the install path alone), so what works here works because
the tarball holds it.
"""

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from support.images import skopeo_manifest
from test_playbooks import ansible, push

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
COLLECTION = "oci_registry.trash"
MODULES = sorted(path.stem for path in (REPO_ROOT / "plugins" / "modules").glob("*.py") if path.stem != "__init__")
PLAYBOOKS = sorted(path.stem for path in (REPO_ROOT / "playbooks").glob("*.yml"))
# Development and CI files that must stay out of the tarball (galaxy.yml build_ignore).
NOT_SHIPPED = (".venv", ".ci", "bench", "scripts", "tests/output", ".git", ".pytest_cache", ".hypothesis")
TIMEOUT = 300


def run(*argv, cwd, env=None):
    return subprocess.run([str(arg) for arg in argv], cwd=cwd, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    result = run(BIN / "ansible-galaxy", "collection", "build", REPO_ROOT, "--output-path", out, cwd=out)
    assert result.returncode == 0, result.stdout + result.stderr
    [built] = out.glob("oci_registry-trash-*.tar.gz")
    return built


@pytest.fixture(scope="module")
def installed(tarball, tmp_path_factory):
    """The collections path that holds only the collection installed from the tarball."""
    root = tmp_path_factory.mktemp("installed") / "collections"
    # With the checkout's link on the collections path, ansible-galaxy would find it "already installed".
    result = run(BIN / "ansible-galaxy", "collection", "install", "--offline", "-p", root, tarball, cwd=root.parent,
                 env=only_installed(root))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (root / "ansible_collections" / "oci_registry" / "trash" / "MANIFEST.json").is_file()
    return root


def only_installed(root):
    return {"ANSIBLE_COLLECTIONS_PATH": str(root), "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "0", "PAGER": "cat"}


def test_tarball_leaves_out_development_and_ci_files(tarball):
    with tarfile.open(tarball) as tar:
        names = [name.removeprefix("./") for name in tar.getnames()]
    shipped = [name for name in names if any(name == part or name.startswith(part + "/") for part in NOT_SHIPPED)]
    assert shipped == []
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]


def test_tarball_holds_plugins_role_playbooks_docs_and_metadata(tarball):
    with tarfile.open(tarball) as tar:
        names = {name.removeprefix("./") for name in tar.getnames()}
    expected = {"MANIFEST.json", "FILES.json", "README.md", "LICENSE", "docs/awx.md", "docs/trash-format.md",
                "meta/runtime.yml", "meta/execution-environment.yml", "meta/ee-requirements.txt",
                "roles/registry_trash/meta/argument_specs.yml", "playbooks/vars/common.yml",
                "changelogs/changelog.yaml"}
    expected |= {f"plugins/modules/{module}.py" for module in MODULES}
    expected |= {f"plugins/action/{module}.py" for module in MODULES}
    expected |= {f"playbooks/{playbook}.yml" for playbook in PLAYBOOKS}
    assert expected <= names, sorted(expected - names)


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_reads_each_module_from_the_installed_collection(installed, module, tmp_path):
    result = ansible("ansible-doc", f"{COLLECTION}.{module}", workdir=tmp_path, env=only_installed(installed))
    assert result.returncode == 0, result.stdout + result.stderr
    header = result.stdout.splitlines()[0]
    assert f"{COLLECTION}.{module}" in header and str(installed) in header, header
    assert "always runs on the Ansible controller" in " ".join(result.stdout.split())


def test_installed_modules_and_playbooks_trash_and_restore(installed, registry, repo, image, tmp_path):
    pushed = push(image("packaging-installed"), registry, repo, "v2s2", ["v1"])
    trash_dir = tmp_path / "trash"
    env = only_installed(installed)
    trashed = ansible("ansible", "localhost", "-m", f"{COLLECTION}.registry_manifest_trash",
                      "-a", f"registry_url={registry.url} repository={repo} tag=v1 trash_dir={trash_dir}",
                      workdir=tmp_path, env=env)
    assert trashed.returncode == 0 and "CHANGED" in trashed.stdout, trashed.stdout + trashed.stderr
    assert skopeo_manifest(registry, f"{repo}:v1") is None

    restored = ansible("ansible-playbook", f"{COLLECTION}.restore", "-e", f"registry_url={registry.url}",
                       "-e", f"repository={repo}", "-e", "tag=v1", "-e", f"trash_dir={trash_dir}",
                       workdir=tmp_path, env=env)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    # The playbook came from the install path, not from this checkout.
    assert str(installed) in ansible("ansible-playbook", "--list-tasks", "-v", f"{COLLECTION}.restore",
                                     workdir=tmp_path, env=env).stdout
    pushed.assert_served_unchanged()


def test_ansible_builder_finds_the_python_requirements_and_no_system_packages(installed, tmp_path):
    result = run(BIN / "ansible-builder", "introspect", "--sanitize", installed, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    found = yaml.safe_load(result.stdout)
    assert found["python"] == [f"requests  # from collection {COLLECTION}"]
    assert not found["system"]


def test_requires_ansible_is_the_ansible_core_release_ci_tests():
    """meta/runtime.yml's floor, tests/requirements.txt's pin and the ansible-core installed here agree."""
    requires = yaml.safe_load((REPO_ROOT / "meta" / "runtime.yml").read_text())["requires_ansible"]
    floor = re.fullmatch(r">=(\d+)\.(\d+)\.0", requires)
    assert floor, f"requires_ansible should be '>=X.Y.0', not {requires!r}"
    pins = re.findall(r"^ansible-core>=(\d+)\.(\d+)\.0,<(\d+)\.(\d+)$",
                      (REPO_ROOT / "tests" / "requirements.txt").read_text(), re.MULTILINE)
    assert pins == [floor.groups() + (floor.group(1), str(int(floor.group(2)) + 1))], pins
    version = run(BIN / "python", "-c", "import ansible.release; print(ansible.release.__version__)",
                  cwd=REPO_ROOT).stdout.strip()
    assert version.split(".")[:2] == list(floor.groups()), version


def test_galaxy_metadata_is_complete():
    galaxy = yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text())
    for key in ("description", "license", "repository", "issues", "documentation", "homepage", "readme"):
        assert galaxy.get(key), f"galaxy.yml has no {key}"
    # ansible-lint's galaxy rule wants one of Galaxy's standard tags.
    assert {"tools", "storage", "infrastructure", "cloud", "linux"} & set(galaxy["tags"])
    assert set(NOT_SHIPPED) - {".git"} <= set(galaxy["build_ignore"])
