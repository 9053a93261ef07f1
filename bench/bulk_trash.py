#!/usr/bin/env python
"""Bulk trash and restore, measured side by side against the floor and the uri-loop approach.

Starts its own registry on 127.0.0.1 and prints a Markdown report (docs/performance.md
keeps the last one). Run with: scripts/bench bulk_trash [--tags N] [--uri-tags M] [--parallel P]

(a) floor: a sequential Python requests loop, GET + write + DELETE per tag
(b) one registry_manifest_trash task over all N tags, through ansible-playbook, start-up included
(c) one registry_manifest_restore task over all N tags, likewise
(d) the ansible.builtin.uri loop people write today (GET, copy, DELETE per tag), on M tags
"""

import argparse
import json
import os
import pathlib
import platform
import resource
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import requests  # noqa: E402

from support.collection import activate  # noqa: E402
from support.images import make_oci_layout, skopeo_push  # noqa: E402
from support.registry import Registry  # noqa: E402

ACCEPT = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
])
REPOSITORY = "bench/app"


def push_tags(registry, base_manifest, media_type, count, prefix):
    """count tags, each on a manifest of its own (an annotation makes each digest unique).

    Every manifest shares the one pushed image's blobs, so pushing is only a PUT each.
    """
    session = requests.Session()
    tags = []
    for n in range(count):
        manifest = dict(base_manifest, annotations={"bench": "%s-%d" % (prefix, n)})
        tag = "%s-%05d" % (prefix, n)
        response = session.put("%s/v2/%s/manifests/%s" % (registry.url, REPOSITORY, tag),
                               data=json.dumps(manifest).encode(), headers={"Content-Type": media_type})
        response.raise_for_status()
        tags.append(tag)
    return tags


def floor(registry, tags, out_dir):
    session = requests.Session()
    start = time.perf_counter()
    for tag in tags:
        got = session.get("%s/v2/%s/manifests/%s" % (registry.url, REPOSITORY, tag), headers={"Accept": ACCEPT})
        got.raise_for_status()
        (out_dir / tag).write_bytes(got.content)
        digest = got.headers["Docker-Content-Digest"]
        session.delete("%s/v2/%s/manifests/%s" % (registry.url, REPOSITORY, digest)).raise_for_status()
    return time.perf_counter() - start


def run_playbook(playbook, extra_vars, workdir):
    vars_file = workdir / ("vars-%d.json" % time.monotonic_ns())
    vars_file.write_text(json.dumps(extra_vars))
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run([str(pathlib.Path(sys.executable).parent / "ansible-playbook"), str(playbook),
                    "-e", "@%s" % vars_file], check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    # ru_maxrss of waited-for children is the largest single process, in KiB on Linux.
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(peak, before) / 1024.0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument("--uri-tags", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=8)
    args = parser.parse_args()
    activate()

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = pathlib.Path(tmp)
        registry = Registry(workdir / "registry")
        registry.start()
        try:
            layout = make_oci_layout(workdir / "layout", "bench")
            skopeo_push(layout, registry, REPOSITORY + ":base", fmt="oci")
            base = requests.get("%s/v2/%s/manifests/base" % (registry.url, REPOSITORY),
                                headers={"Accept": ACCEPT})
            media_type = base.headers["Content-Type"]
            base_manifest = base.json()

            tags = push_tags(registry, base_manifest, media_type, args.tags, "floor")
            out = workdir / "floor-out"
            out.mkdir()
            a = floor(registry, tags, out)

            tags = push_tags(registry, base_manifest, media_type, args.tags, "mod")
            common = {"registry_url": registry.url, "repository": REPOSITORY, "bench_tags": tags,
                      "trash_dir": str(workdir / "trash"), "parallel": args.parallel}
            b, b_rss = run_playbook(HERE / "trash.yml", common, workdir)
            c, c_rss = run_playbook(HERE / "restore.yml", common, workdir)

            uri_tags = push_tags(registry, base_manifest, media_type, args.uri_tags, "uri")
            uri_vars = dict(common, bench_tags=uri_tags, accept=ACCEPT, out_dir=str(workdir / "uri-out"))
            d, d_rss = run_playbook(HERE / "uri_loop.yml", uri_vars, workdir)
        finally:
            registry.stop()

    per_tag_b = b / args.tags
    per_tag_d = d / args.uri_tags
    rows = [
        ("(a) floor: sequential requests loop, GET + write + DELETE", args.tags, a, None),
        ("(b) one registry_manifest_trash task (ansible-playbook, start-up included)", args.tags, b, b_rss),
        ("(c) one registry_manifest_restore task (ansible-playbook, start-up included)", args.tags, c, c_rss),
        ("(d) ansible.builtin.uri loop: GET, copy, DELETE per tag", args.uri_tags, d, d_rss),
    ]
    print("Measured %s on %s, %d CPUs, Python %s, parallel=%d.\n" % (
        time.strftime("%Y-%m-%d"), platform.machine(), os.cpu_count(), platform.python_version(), args.parallel))
    print("| run | tags | seconds | ms per tag | peak RSS (MiB) |")
    print("|---|---:|---:|---:|---:|")
    for name, count, seconds, rss in rows:
        print("| %s | %d | %.2f | %.2f | %s |" % (name, count, seconds, 1000 * seconds / count,
                                                  "%.0f" % rss if rss else "-"))
    print()
    print("- b/a = %.2f (target <= 1.0)" % (b / a))
    print("- c/a = %.2f" % (c / a))
    print("- per tag, uri loop / registry_manifest_trash = %.0fx (target >= 100x)" % (per_tag_d / per_tag_b))
    print("- peak resident memory of one process: %.0f MiB (target < 200 MiB)" % max(b_rss, c_rss))


if __name__ == "__main__":
    main()
