"""Run playbooks/demo.yml against a registry of its own: start, push, play, stop.

Run through scripts/demo, which sets up the virtualenv first. Everything, registry
storage and trash included, lives in one temporary directory removed at the end.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))

from support.collection import activate  # noqa: E402
from support.images import make_oci_layout, skopeo_push  # noqa: E402
from support.registry import Registry  # noqa: E402

REPOSITORY = "demo/app"
# 1.0-rc1 was promoted to 1.0 (same image, same digest); 0.9 is an older image.
SHARED_TAGS = ("1.0-rc1", "1.0")
OTHER_TAG = "0.9"
TAG_TO_TRASH = "1.0-rc1"


def say(text):
    print(f"demo: {text}", flush=True)


def _exit_on_signal(signum, frame):
    # SystemExit unwinds through the finally blocks, so the registry is stopped.
    raise SystemExit(128 + signum)


def push_sample_images(registry, workdir):
    release = make_oci_layout(workdir / "image-1.0", "demo 1.0")
    older = make_oci_layout(workdir / "image-0.9", "demo 0.9")
    digests = {}
    for tag in SHARED_TAGS:
        digests[tag] = skopeo_push(release, registry, f"{REPOSITORY}:{tag}")
    digests[OTHER_TAG] = skopeo_push(older, registry, f"{REPOSITORY}:{OTHER_TAG}")
    if len({digests[t] for t in SHARED_TAGS}) != 1:
        raise RuntimeError(f"the shared tags got different digests: {digests}")
    for tag, digest in digests.items():
        say(f"  pushed {REPOSITORY}:{tag:<8} {digest}")


def run_playbook(registry, trash_dir, ansible_args):
    extra_vars = {"registry_url": registry.url, "repository": REPOSITORY,
                  "tag": TAG_TO_TRASH, "trash_dir": str(trash_dir)}
    # The caller's registry settings must not leak into a demo of a private registry.
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    env.update(ANSIBLE_CALLBACK_RESULT_FORMAT="yaml", ANSIBLE_LOCALHOST_WARNING="false",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="false", ANSIBLE_RETRY_FILES_ENABLED="false")
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), str(REPO_ROOT / "playbooks" / "demo.yml"),
            "-e", json.dumps(extra_vars), *ansible_args]
    return subprocess.run(argv, env=env, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, check=False).returncode


def main(ansible_args):
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGHUP, _exit_on_signal)
    activate()
    with tempfile.TemporaryDirectory(prefix="oci-registry-trash-demo-") as tmp:
        workdir = Path(tmp)
        registry = Registry(workdir / "registry")
        try:
            say("starting a throwaway registry (docker-registry, deletes enabled) ...")
            registry.start()
            say(f"registry up at {registry.url}")
            say(f"pushing sample images with skopeo: {', '.join(SHARED_TAGS)} share one digest, "
                f"{OTHER_TAG} is another image")
            push_sample_images(registry, workdir)
            say("running playbooks/demo.yml")
            code = run_playbook(registry, workdir / "trash", ansible_args)
            say("the playbook failed" if code else "done: the tag went to the trash and came back unchanged")
            return code
        finally:
            registry.stop()
            say(f"registry stopped; removing {workdir}")


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        say("interrupted")
        sys.exit(130)
