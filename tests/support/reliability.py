"""What the reliability tests (tests/reliability/) share beyond fixtures: the run's seed and its playbooks.

Every random choice in those tests derives from ``SEED``: ``RELIABILITY_SEED`` when set,
else a fresh one per run, printed in the summary and in every failure, so a failing run
replays with ``RELIABILITY_SEED=<seed> scripts/test tests/reliability/<file>``.
"""

import os
import random
from dataclasses import dataclass
from pathlib import Path

PLAYBOOKS = Path(__file__).resolve().parents[1] / "reliability" / "playbooks"
SEED = int(os.environ.get("RELIABILITY_SEED") or random.SystemRandom().randrange(10 ** 9))
# RELIABILITY_SOAK=<n>: the long run, by hand; n trials where CI runs a few.
SOAK = int(os.environ.get("RELIABILITY_SOAK") or 0)


@dataclass(frozen=True)
class Batch:
    """Tags of one repository, each on a manifest of its own: {tag: digest}."""
    repository: str
    digests: dict

    @property
    def tags(self):
        return list(self.digests)


def run_core(operation, registry_url, trash_dir, repository, client=None, **arguments):
    """``operation`` (trash or restore of the core) run the way an action plugin runs it: with a
    client of ``registry_url`` (``client``: its options) and a store of ``trash_dir``; its result."""
    # Imported here: the harness modules load before tests/conftest.py makes the collection importable.
    from ansible_collections.oci_registry.trash.plugins.module_utils._registry_client import RegistryClient
    from ansible_collections.oci_registry.trash.plugins.module_utils._trash_store import TrashStore
    with RegistryClient(registry_url, **(client or {})) as connection:
        return operation(connection, TrashStore(str(trash_dir)), repository, **arguments)
