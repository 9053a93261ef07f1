"""SIGKILL in the middle of a batch trash, restore or purge: nothing is lost, and a rerun converges.

Each operation is first run once whole (the calibration, which is also its baseline test)
with the crash injector counting its steps: the file operations it makes in the trash
directory and the HTTP requests it sends (tests/support/crash_injector). Every trial
then SIGKILLs the whole run, ansible-playbook and the worker running the task (which
leads a process group of its own: tests/support/process_tree.py), at a moment drawn
from the seed, in one of two ways:

- ``step``: from inside, right before step k of the run, k uniform over the steps the
  calibration counted: lands between any two things the module does;
- ``clock``: from this test process, a uniform random time after the run's first step,
  within the calibration's duration: lands anywhere, mid-syscall included.

After each kill, whatever it hit: every tag is in the registry at its digest or can be
restored from an intact entry; a rerun of the same playbook succeeds, without any repair,
and leaves what a run that was never killed leaves (every tag gone and restorable, back
at its digest, or purged with nothing left over); and the restore brings back the digests.
Two moments that random kills hit rarely are also chosen on purpose, at the end.

CI runs a few trials per operation (about a minute in all); the soak runs many:
``RELIABILITY_SOAK=200 CHECKS=0 scripts/test tests/reliability/test_crash_safety.py -k kill_at``.
"""

import random
import time
from collections import Counter
from dataclasses import dataclass

import pytest
import requests

from support.ansible_process import PlaybookRun
from support.reliability import PLAYBOOKS, SEED, SOAK, run_core
from support.trash_witness import TrashView, lost, needed_digests

from ansible_collections.oci_registry.trash.plugins.module_utils._restore_manifests import restore

from ansible_collections.oci_registry.trash.plugins.module_utils._trash_manifests import trash

TAGS = 16
CI_TRIALS = {"trash": 2, "restore": 2, "purge": 1}
# Of the trials, the share killed from outside on a timer; the rest at a counted step.
CLOCK_SHARE = 0.25


def trials(operation):
    return range(1, (SOAK or CI_TRIALS[operation]) + 1)


# --- the three operations, each a scenario: set up, run, check after a kill, check converged ---

class Scenario:
    """One operation under test. ``prepare`` makes a fresh world in a directory and returns its state."""

    playbook = None

    def __init__(self, registry, witness, make_batch):
        self.registry, self.witness, self.make_batch = registry, witness, make_batch

    def prepare(self, directory):
        raise NotImplementedError

    def variables(self, state):
        raise NotImplementedError

    def safety_problems(self, state):
        """What is wrong right after a kill, whatever moment it hit: lost images or damaged entries."""
        view = TrashView(state["trash_dir"])
        return view.problems() + [p for batch in state["batches"] for p in
                                  lost(self.witness, view, batch.repository, batch.digests)]

    def convergence_problems(self, state):
        """What differs from the end state of a run that was never killed."""
        raise NotImplementedError

    def describe(self, state):
        """What the trash and the registry hold now, for the log of a trial."""
        view = TrashView(state["trash_dir"])
        states = Counter(e.data["state"] for e in view.entries if e.data)
        batches = state["batches"] + state.get("purged", [])
        present = sum(1 for b in batches for d in self.witness.digests(b.repository, b.tags).values() if d)
        return "%d of %d tags in the registry; entries %s; %d temporary files" % (
            present, sum(len(b.digests) for b in batches), dict(states), len(view.temp_files()))

    def finish(self, state):
        """Bring everything back and prove the digests are the original ones."""
        for batch in state["batches"]:
            if batch in state.get("purged", ()):
                continue
            run_core(restore, self.registry.url, state["trash_dir"], batch.repository, tags=batch.tags)
            assert self.witness.digests(batch.repository, batch.tags) == batch.digests


class TrashScenario(Scenario):
    playbook = "trash.yml"

    def prepare(self, directory):
        batch = self.make_batch("crash-trash", TAGS)
        return {"trash_dir": directory / "trash", "batches": [batch]}

    def variables(self, state):
        [batch] = state["batches"]
        return {"registry_url": self.registry.url, "repository": batch.repository, "batch_tags": batch.tags,
                "trash_dir": str(state["trash_dir"])}

    def convergence_problems(self, state):
        [batch] = state["batches"]
        view = TrashView(state["trash_dir"])
        present = {t: d for t, d in self.witness.digests(batch.repository, batch.tags).items() if d}
        unrestorable = [t for t, d in batch.digests.items() if not view.restorable(batch.repository, t, d)]
        return (["still in the registry: %s" % present] if present else []) + (
            ["no intact entry for %s" % unrestorable] if unrestorable else []) + view.problems()


class RestoreScenario(Scenario):
    playbook = "restore.yml"

    def prepare(self, directory):
        batch = self.make_batch("crash-restore", TAGS)
        trash_dir = directory / "trash"
        run_core(trash, self.registry.url, trash_dir, batch.repository, tags=batch.tags)
        return {"trash_dir": trash_dir, "batches": [batch]}

    variables = TrashScenario.variables

    def convergence_problems(self, state):
        [batch] = state["batches"]
        wrong = {t: d for t, d in self.witness.digests(batch.repository, batch.tags).items()
                 if d != batch.digests[t]}
        # The record agrees with the registry: an entry whose tags are back says restored.
        lagging = [e["id"] for e in TrashView(state["trash_dir"]).of(batch.repository) if e["state"] != "restored"]
        return (["not back at their digests: %s" % wrong] if wrong else []) + (
            ["entries not marked restored: %s" % lagging] if lagging else [])

    def finish(self, state):
        pass  # the converged state is the restored one


class PurgeScenario(Scenario):
    """Purge one repository's entries while another's, which share every kept blob, stay."""

    playbook = "purge.yml"

    def prepare(self, directory):
        doomed, kept = (self.make_batch(name, TAGS // 2) for name in ("crash-purge-doomed", "crash-purge-kept"))
        trash_dir = directory / "trash"
        for batch in (doomed, kept):
            # keep_blobs: the layers are stored once and referenced by every entry of both.
            run_core(trash, self.registry.url, trash_dir, batch.repository, tags=batch.tags, keep_blobs=True)
        return {"trash_dir": trash_dir, "batches": [kept], "purged": [doomed]}

    def variables(self, state):
        [doomed] = state["purged"]
        return {"trash_dir": str(state["trash_dir"]), "purge_repository": doomed.repository}

    def convergence_problems(self, state):
        [doomed] = state["purged"]
        view = TrashView(state["trash_dir"])
        needed = set().union(*(needed_digests(e.data) for e in view.entries if e.data))
        orphans = view.stored_digests() - needed
        return (["entries of the purged repository remain"] if view.of(doomed.repository) else []) + (
            ["content no entry needs: %s" % sorted(orphans)] if orphans else []) + view.problems()


SCENARIOS = {"trash": TrashScenario, "restore": RestoreScenario, "purge": PurgeScenario}


# --- running, calibrating, killing ---

@dataclass(frozen=True)
class Calibration:
    steps: int  # steps of a whole run
    window: float  # seconds from its first step to its last


@dataclass(frozen=True)
class CrashPlan:
    mode: str  # "step" or "clock"
    at: float  # the step number, or seconds after the first step

    @classmethod
    def draw(cls, seed, operation, trial, calibration):
        draw = random.Random("%s/%s/%d" % (seed, operation, trial))
        if draw.random() < CLOCK_SHARE:
            return cls("clock", round(draw.uniform(0, calibration.window), 4))
        return cls("step", draw.randint(1, calibration.steps))

    def __str__(self):
        return "kill before step %d" % self.at if self.mode == "step" else "kill %.4fs after the first step" % self.at


def playbook_run(scenario, state, directory, name, crash_plan=None):
    return PlaybookRun(PLAYBOOKS / scenario.playbook, directory, name, extra_vars=scenario.variables(state),
                       crash_plan=crash_plan)


def run_killed(scenario, state, directory, plan):
    """The operation's playbook, SIGKILLed as the plan says (or finished, if it ends first)."""
    armed = {"trash_dir": str(state["trash_dir"])}
    if plan.mode == "step":
        armed["kill_at"] = plan.at
    run = playbook_run(scenario, state, directory, "killed", crash_plan=armed).start()
    if plan.mode == "clock":
        while not run.steps() and run.process.poll() is None:
            time.sleep(0.002)
        time.sleep(plan.at)
        run.kill()
    return run.wait()


@pytest.fixture(scope="module")
def world(registry, witness, make_batch):
    return {name: scenario(registry, witness, make_batch) for name, scenario in SCENARIOS.items()}


@pytest.fixture(scope="module")
def calibrations(world, tmp_path_factory):
    """Per operation, one whole run with its steps counted; it must meet the end state too."""
    found = {}

    def calibrate(operation):
        if operation not in found:
            scenario = world[operation]
            directory = tmp_path_factory.mktemp("calibrate-" + operation)
            state = scenario.prepare(directory)
            run = playbook_run(scenario, state, directory, "whole",
                               crash_plan={"trash_dir": str(state["trash_dir"])}).run().assert_succeeded()
            assert scenario.safety_problems(state) == []
            assert scenario.convergence_problems(state) == []
            steps = run.steps()
            found[operation] = Calibration(len(steps), steps[-1][1] - steps[0][1])
        return found[operation]
    return calibrate


def evidence(seed, plan, run):
    tail = ["  %d %s" % (n, text) for n, _t, _pid, text in run.steps()[-6:]]
    return "seed %s (RELIABILITY_SEED=%d), %s, exit %s; last steps:\n%s" % (
        seed, SEED, plan, run.returncode, "\n".join(tail))


@pytest.mark.parametrize("operation, trial", [(op, n) for op in SCENARIOS for n in trials(op)])
def test_kill_at_a_random_moment_loses_nothing_and_a_rerun_converges(
        operation, trial, world, calibrations, seed, tmp_path):
    scenario = world[operation]
    plan = CrashPlan.draw(seed, operation, trial, calibrations(operation))
    state = scenario.prepare(tmp_path)

    killed = run_killed(scenario, state, tmp_path, plan)
    print("%s: %s\nafter it: %s" % (operation, evidence(seed, plan, killed), scenario.describe(state)))
    assert killed.killed or killed.returncode == 0, evidence(seed, plan, killed) + killed.output[-3000:]
    assert scenario.safety_problems(state) == [], evidence(seed, plan, killed)

    playbook_run(scenario, state, tmp_path, "rerun").run().assert_succeeded()
    assert scenario.convergence_problems(state) == [], evidence(seed, plan, killed)
    scenario.finish(state)


# --- one moment chosen on purpose: between a shared tag's placeholder and its delete ---

def point_tag(registry, repository, tag, digest):
    """Point another tag at an existing manifest, as a release process tags an image twice."""
    with requests.Session() as session:
        url = "%s/v2/%s/manifests/" % (registry.url, repository)
        got = session.get(url + digest, headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}, timeout=30)
        session.put(url + tag, data=got.content, headers={"Content-Type": got.headers["Content-Type"]},
                    timeout=30).raise_for_status()


@pytest.fixture
def crashed_in_placeholder_window(world, registry, witness, make_batch, tmp_path):
    """Trash of tag t000, which shares its manifest with ``sibling``, killed right after t000 was
    re-pointed at its placeholder and before the placeholder's delete (docs/trash-format.md's crash table)."""
    batch = make_batch("crash-placeholder", 1)
    [(tag, digest)] = batch.digests.items()
    point_tag(registry, batch.repository, "sibling", digest)
    scenario = world["trash"]
    state = {"trash_dir": tmp_path / "trash", "batches": [batch]}
    # The only DELETE by digest of this run other than the deletes-enabled probe (all zeros).
    plan = {"trash_dir": str(state["trash_dir"]), "kill_on": r"^DELETE /v2/\S+/manifests/sha256:(?!0{64})"}
    killed = playbook_run(scenario, state, tmp_path, "killed", crash_plan=plan).run()
    assert killed.killed, killed.output
    assert witness.digest(batch.repository, tag) not in (None, digest), "the kill missed the placeholder window"
    return scenario, batch, state


def test_rerun_after_a_crash_in_the_placeholder_window_finishes_and_restore_brings_back_the_image(
        crashed_in_placeholder_window, registry, witness, tmp_path):
    scenario, batch, state = crashed_in_placeholder_window
    [(tag, digest)] = batch.digests.items()

    playbook_run(scenario, state, tmp_path, "rerun").run().assert_succeeded()
    assert witness.digest(batch.repository, tag) is None
    assert witness.digest(batch.repository, "sibling") == digest
    run_core(restore, registry.url, state["trash_dir"], batch.repository, tags=[tag])

    # The image, not the placeholder the rerun found on the tag.
    assert witness.digest(batch.repository, tag) == digest


def test_restore_right_after_a_crash_in_the_placeholder_window_brings_back_the_image(
        crashed_in_placeholder_window, registry, witness):
    _scenario, batch, state = crashed_in_placeholder_window
    [(tag, digest)] = batch.digests.items()

    run_core(restore, registry.url, state["trash_dir"], batch.repository, tags=[tag])

    assert witness.digests(batch.repository, [tag, "sibling"]) == {tag: digest, "sibling": digest}


# --- one moment chosen on purpose: after the delete, before the entry says so ---

def test_rerun_after_a_crash_between_delete_and_record_marks_the_entry_trashed(
        world, make_batch, witness, tmp_path):
    batch = make_batch("crash-record", 1)
    scenario = world["trash"]
    state = {"trash_dir": tmp_path / "trash", "batches": [batch]}
    # .lock is first opened to record a state, which comes right after the delete and its check.
    plan = {"trash_dir": str(state["trash_dir"]), "kill_on": r"^open \.lock$"}
    assert playbook_run(scenario, state, tmp_path, "killed", crash_plan=plan).run().killed
    assert witness.digests(batch.repository, batch.tags) == {batch.tags[0]: None}
    assert [e["state"] for e in TrashView(state["trash_dir"]).of(batch.repository)] == ["pending"]

    playbook_run(scenario, state, tmp_path, "rerun").run().assert_succeeded()

    assert [e["state"] for e in TrashView(state["trash_dir"]).of(batch.repository)] == ["trashed"]
