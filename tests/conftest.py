import itertools
import re
import sys
from pathlib import Path

import pytest

# `ansible-test units` loads this file through its collection loader, as
# ansible_collections.oci_registry.trash.tests.conftest, with tests/ not on sys.path
# (pytest alone puts it there); the test modules import support.* all the same.
UNDER_ANSIBLE_TEST = __name__.startswith("ansible_collections.")
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from support.collection import activate  # noqa: E402  pylint: disable=wrong-import-position
from support.images import make_oci_layout  # noqa: E402  pylint: disable=wrong-import-position
from support.registry import Registry  # noqa: E402  pylint: disable=wrong-import-position

# Before any test module imports ansible_collections.oci_registry.trash. Under ansible-test the
# collection is already importable from its ansible_collections tree, and linking a copy of the
# checkout into the virtualenv would re-point the link of the real checkout.
if not UNDER_ANSIBLE_TEST:
    activate()

_repo_numbers = itertools.count(1)


def _started(request, workdir, **options):
    registry = Registry(workdir, **options)
    # Registered before start() so a half-started registry is stopped too.
    request.addfinalizer(registry.stop)
    registry.start()
    return registry


@pytest.fixture(scope="session")
def registry(request, tmp_path_factory):
    """A plain registry (no auth, no TLS, deletes enabled) shared by the whole session."""
    return _started(request, tmp_path_factory.mktemp("registry"))


@pytest.fixture
def registry_factory(request, tmp_path_factory):
    """``registry_factory(**Registry options)`` starts a registry stopped after the test."""
    def start(**options):
        return _started(request, tmp_path_factory.mktemp("registry"), **options)
    return start


@pytest.fixture
def repo(request):
    """A repository name no other test uses, valid in distribution's name grammar."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:100]
    return f"test/{name or 'repo'}-{next(_repo_numbers)}"


@pytest.fixture(scope="session")
def image(tmp_path_factory):
    """``image(seed, **make_oci_layout options)`` returns an OCI layout, built once per arguments.

    The manifest format is chosen when pushing (``skopeo_push(fmt=...)``).
    """
    root = tmp_path_factory.mktemp("images")
    layouts = {}

    def build(seed, **options):
        key = (seed, tuple(sorted(options.items())))
        if key not in layouts:
            layouts[key] = make_oci_layout(root / f"layout-{len(layouts)}", seed, **options)
        return layouts[key]
    return build


@pytest.fixture
def trash_dir(tmp_path):
    path = tmp_path / "trash"
    path.mkdir()
    return path
