"""Expose this checkout as the ``oci_registry.trash`` Ansible collection.

Ansible and ``import ansible_collections...`` only find a collection under
``<path>/ansible_collections/<namespace>/<name>``, so the repository is linked
into such a tree inside the virtualenv instead of being copied there.
"""

import os
import sys
from pathlib import Path

NAMESPACE = "oci_registry"
NAME = "trash"
REPO_ROOT = Path(__file__).resolve().parents[2]


def collections_root(venv=None):
    """Return ``<venv>/collections``; ``venv`` defaults to ``$VENV`` or ``<repo>/.venv``."""
    venv = Path(venv or os.environ.get("VENV") or REPO_ROOT / ".venv")
    return (REPO_ROOT / venv).resolve() / "collections"


def link_collection(venv=None):
    """Create (or repair) the collection symlink and return the collections root."""
    root = collections_root(venv)
    link = root / "ansible_collections" / NAMESPACE / NAME
    if link.is_symlink() and link.resolve() == REPO_ROOT:
        return root
    link.parent.mkdir(parents=True, exist_ok=True)
    # Replacing through a temporary link keeps concurrent runs from ever seeing
    # a missing or half-made collection.
    tmp = link.with_name(f".{NAME}.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(REPO_ROOT, target_is_directory=True)
    os.replace(tmp, link)
    return root


def activate(venv=None):
    """Link the collection and make it importable here and in child processes."""
    root = str(link_collection(venv))
    if root in sys.path:
        sys.path.remove(root)
    sys.path.insert(0, root)
    os.environ["ANSIBLE_COLLECTIONS_PATH"] = root
    return root


if __name__ == "__main__":
    print(link_collection(sys.argv[1] if len(sys.argv) > 1 else None))
