#!/usr/bin/env python
"""Peak resident memory of trash with keep_blobs, and of the restore that uploads the kept blobs.

The bound to show: an image with a 1 GiB layer is trashed with keep_blobs and restored in
under 100 MB of resident memory, because blobs are streamed to and from disk, never held
whole. This starts its own registry on 127.0.0.1, writes an image layout with one big
layer (streamed to disk), pushes it with skopeo, then runs each operation in a child
process of its own and reads that child's peak RSS from the kernel: its rusage (os.wait4,
that child's alone, where RUSAGE_CHILDREN would mix in skopeo and the registry), with its
VmHWM as a cross-check. Linux starts a child's ru_maxrss at the RSS of the process that
spawned it, so a lean launcher process starts each measured child, never the big
orchestrating one. Between trash and restore the registry is garbage-collected offline,
so the restore really sends the whole layer back from the trash. A child that only
imports the core and asks the registry /v2/ gives the baseline.

Run: .venv/bin/python bench/keep_blobs_memory.py [--layer-mib 1024] [--limit-mb 100]
Prints a Markdown report; exits 1 when a step goes over the limit.
A benchmark, not a test: pytest never runs it.
"""

import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
# Only the standard library is imported at module level: the launcher must stay small.

REPOSITORY = "bench/big"
TAG = "v1"
CHUNK = 1 << 20
MIB = 1 << 20
STEPS = (
    ("baseline", "baseline: import the core, GET /v2/"),
    ("trash", "trash, keep_blobs: true"),
    ("restore", "restore after offline GC (uploads the kept layer)"),
)


# --- the image: written as it is generated, never whole in memory ---

def write_big_layout(path, layer_bytes, seed=1):
    """An OCI layout of one image whose single layer holds ``layer_bytes`` of incompressible data.

    The layer is a gzip stream of stored (level 0) deflate blocks: valid gzip, as skopeo
    and the registry expect of the tar+gzip media type, written at disk speed, where
    compressing random data would cost minutes and save nothing.
    """
    from support.images import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST

    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    info = tarfile.TarInfo("random.bin")
    info.size, info.mtime, info.mode = layer_bytes, 946684800, 0o644
    padding = b"\0" * (-layer_bytes % tarfile.BLOCKSIZE) + b"\0" * (2 * tarfile.BLOCKSIZE)

    def tar_stream():
        yield info.tobuf(format=tarfile.PAX_FORMAT)
        generator, left = random.Random(seed), layer_bytes
        while left:
            chunk = generator.randbytes(min(CHUNK, left))
            left -= len(chunk)
            yield chunk
        yield padding

    diff_id, digest = hashlib.sha256(), hashlib.sha256()
    gzip_stream = zlib.compressobj(0, zlib.DEFLATED, 31)  # wbits 31: the gzip container
    partial = blobs / "layer.partial"
    size = 0
    with open(partial, "wb") as out:
        def emit(data):
            nonlocal size
            digest.update(data)
            out.write(data)
            size += len(data)
        for piece in tar_stream():
            diff_id.update(piece)
            emit(gzip_stream.compress(piece))
        emit(gzip_stream.flush())
    partial.rename(blobs / digest.hexdigest())
    layer = {"mediaType": OCI_LAYER, "digest": "sha256:" + digest.hexdigest(), "size": size}

    def small_blob(value, media_type):
        data = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
        (blobs / hashlib.sha256(data).hexdigest()).write_bytes(data)
        return {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(data).hexdigest(), "size": len(data)}

    config = small_blob({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff_id.hexdigest()]}}, OCI_CONFIG)
    manifest = small_blob({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer]},
                          OCI_MANIFEST)
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [manifest]}))
    (path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    return layer


# --- the measured child, and the lean launcher that starts it ---

def _proc_status(field):
    """A memory figure of this process from /proc/self/status, in bytes."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(field + ":"))


def child(step, registry_url, trash_dir):
    """Do one step with the core, as an action plugin would; report on stdout."""
    from support.collection import activate
    activate()
    from ansible_collections.oci_registry.trash.plugins.module_utils._restore_manifests import restore
    from ansible_collections.oci_registry.trash.plugins.module_utils._trash_manifests import trash
    from ansible_collections.oci_registry.trash.plugins.module_utils._registry_client import RegistryClient
    from ansible_collections.oci_registry.trash.plugins.module_utils._trash_store import TrashStore

    with RegistryClient(registry_url) as client:
        store = TrashStore(trash_dir)
        report = {}
        if step == "baseline":
            client.ping()
        elif step == "trash":
            [entry] = trash(client, store, REPOSITORY, tags=[TAG], keep_blobs=True)["entries"]
            report["kept_bytes"] = entry["blob_bytes"]
        else:
            report["restored"] = restore(client, store, REPOSITORY, tags=[TAG])["restored"]
    report["vm_hwm"] = _proc_status("VmHWM")
    print(json.dumps(report))


def launch(step, registry_url, trash_dir):
    """Run one measured child; report what it said, its wall time and its rusage."""
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, __file__, "--child", step, registry_url, trash_dir],
                               stdout=subprocess.PIPE)
    output = process.stdout.read()
    process.stdout.close()
    _pid, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)  # so Popen never waits for it again
    if process.returncode:
        raise SystemExit(f"{step} failed with exit code {process.returncode}")
    report = json.loads(output)
    report.update(elapsed=time.monotonic() - started, ru_maxrss=usage.ru_maxrss * 1024,  # KiB on Linux
                  launcher_rss=_proc_status("VmRSS"))
    print(json.dumps(report))


def measured(step, registry, trash_dir):
    result = subprocess.run([sys.executable, __file__, "--launch", step, registry.url, str(trash_dir)],
                            stdout=subprocess.PIPE, check=True)
    return json.loads(result.stdout)


# --- the run ---

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--layer-mib", type=int, default=1024, help="size of the big layer's content, in MiB")
    parser.add_argument("--limit-mb", type=float, default=100, help="the bound on peak RSS, in MB (10^6 bytes)")
    parser.add_argument("--launch", nargs=3, metavar=("STEP", "URL", "TRASH"), help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs=3, metavar=("STEP", "URL", "TRASH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.launch:
        return launch(*args.launch)
    if args.child:
        return child(*args.child)

    from support.images import skopeo_manifest, skopeo_push
    from support.registry import Registry

    work = Path(tempfile.mkdtemp(prefix="keep-blobs-bench-"))
    registry = Registry(work / "registry")
    reports = {}
    try:
        started = time.monotonic()
        layer = write_big_layout(work / "layout", args.layer_mib * MIB)
        built = time.monotonic() - started
        registry.start()
        started = time.monotonic()
        digest = skopeo_push(work / "layout", registry, f"{REPOSITORY}:{TAG}", fmt="oci")
        pushed = time.monotonic() - started
        original = skopeo_manifest(registry, f"{REPOSITORY}:{TAG}")
        trash_dir = work / "trash"

        reports["baseline"] = measured("baseline", registry, trash_dir)
        reports["trash"] = measured("trash", registry, trash_dir)
        kept = trash_dir / "blobs" / "sha256" / layer["digest"].split(":")[1]
        assert kept.stat().st_size == layer["size"], "the trash does not hold the whole layer"
        # Offline, the safe way: the layer leaves the registry's storage for good.
        registry.stop()
        registry.garbage_collect()
        registry.start()
        assert layer["digest"] not in registry.stored_blobs(), "garbage collection kept the layer"
        reports["restore"] = measured("restore", registry, trash_dir)
        assert skopeo_manifest(registry, f"{REPOSITORY}:{TAG}") == original, "the restored manifest differs"
        assert layer["digest"] in registry.stored_blobs(), "the registry did not get the layer back"
    finally:
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)

    limit = args.limit_mb * 1e6
    moved = {"baseline": "-", "trash": f"{reports['trash']['kept_bytes'] / MIB:.0f} MiB kept",
             "restore": f"{layer['size'] / MIB:.0f} MiB uploaded"}
    print(f"## keep_blobs memory: an image with a {args.layer_mib} MiB layer\n")
    print(f"Python {platform.python_version()} on {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs. "
          f"Layer {layer['size']} bytes ({layer['digest'][:19]}…), image {digest[:19]}…; layout written in "
          f"{built:.1f} s, pushed by skopeo in {pushed:.1f} s.\n")
    print(f"| step | data | wall time | peak RSS (rusage) | VmHWM | under {args.limit_mb:g} MB |")
    print("|---|---|---:|---:|---:|:---:|")
    over = False
    for step, title in STEPS:
        report = reports[step]
        peak = max(report["ru_maxrss"], report["vm_hwm"])
        over = over or peak >= limit
        print(f"| {title} | {moved[step]} | {report['elapsed']:.1f} s | {report['ru_maxrss'] / 1e6:.1f} MB "
              f"| {report['vm_hwm'] / 1e6:.1f} MB | {'yes' if peak < limit else 'NO'} |")
    floor = max(r["launcher_rss"] for r in reports.values())
    print(f"\n1 MB = 10^6 bytes. Peak RSS (rusage): ru_maxrss of the measured child alone (os.wait4), which "
          f"starts at its launcher's RSS ({floor / 1e6:.1f} MB here). VmHWM: the child's own high-water mark, "
          "from /proc. The restored manifest was checked byte-identical with skopeo, and the layer found back "
          "in the registry's storage.")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
