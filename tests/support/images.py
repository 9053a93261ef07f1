"""Tiny deterministic test images, and skopeo as the independent registry client."""

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
import tempfile
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
PUSH_FORMATS = ("v2s2", "oci")  # skopeo --format names: Docker schema 2, OCI
FIXED_MTIME = 946684800  # 2000-01-01: any constant works, it only has to never change.
# How skopeo 1.9 words "no such manifest or repository": inspect quotes the
# registry's error code, list-tags only the HTTP status.
NOT_FOUND_MARKERS = ("manifest unknown", "name unknown", "404 (Not Found)")


def make_oci_layout(path, seed, layer_size=1024, extra_layers=0, base_layer=None, architectures=None):
    """Write an OCI image layout of a tiny image whose bytes depend only on the arguments.

    ``base_layer``: ``(seed, size)`` of a first layer, before the image's own; images
    built with the same ``base_layer`` share that blob, as images on one base image do.
    ``architectures``: a multi-platform image instead: index.json points at an OCI image
    index listing one image per architecture (each with layers and config of its own),
    which ``skopeo_push(all_images=True)`` pushes as an OCI index (``fmt="oci"``) or a
    Docker manifest list (``fmt="v2s2"``).
    """
    path = Path(path)
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def write_blob(data, media_type):
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    def write_image(image_seed, architecture):
        layer_specs = [(f"{image_seed}/{n}", layer_size) for n in range(1 + extra_layers)]
        if base_layer is not None:
            layer_specs.insert(0, base_layer)
        layers, diff_ids = [], []
        for layer_seed, size in layer_specs:
            tar = _layer_tar(layer_seed, size)
            diff_ids.append(f"sha256:{hashlib.sha256(tar).hexdigest()}")
            layers.append(write_blob(gzip.compress(tar, mtime=0), OCI_LAYER))
        config = {
            "architecture": architecture,
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": write_blob(_json_bytes(config), OCI_CONFIG),
            "layers": layers,
        }
        return write_blob(_json_bytes(manifest), OCI_MANIFEST)

    if architectures is None:
        top = write_image(seed, "amd64")
    else:
        # Each platform gets layers of its own, so no blob is shared between them and
        # losing any one child's blobs is visible.
        children = [dict(write_image(f"{seed}/{arch}", arch), platform={"architecture": arch, "os": "linux"})
                    for arch in architectures]
        top = write_blob(_json_bytes({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}),
                         OCI_INDEX)
    (path / "index.json").write_bytes(_json_bytes({"schemaVersion": 2, "manifests": [top]}))
    (path / "oci-layout").write_bytes(_json_bytes({"imageLayoutVersion": "1.0.0"}))
    return path


def _layer_tar(seed, size):
    content = _seeded_bytes(seed, size)
    info = tarfile.TarInfo(f"seed-{hashlib.sha256(seed.encode()).hexdigest()[:12]}.bin")
    info.size = len(content)
    info.mtime = FIXED_MTIME
    info.mode = 0o644
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _seeded_bytes(seed, size):
    blocks = (hashlib.sha256(f"{seed}#{n}".encode()).digest() for n in range(-(-size // 32)))
    return b"".join(blocks)[:size]


def _json_bytes(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def skopeo_push(layout, registry, ref, fmt="v2s2", username=None, password=None, all_images=False):
    """Copy the layout to ``registry`` as ``ref`` ('repo:tag'); return the pushed manifest digest.

    ``all_images`` (skopeo ``--all``) pushes a multi-platform layout whole, every child
    and the index (converted to a Docker manifest list by ``fmt="v2s2"``); the digest
    is then the index's.
    """
    if fmt not in PUSH_FORMATS:
        raise ValueError(f"fmt must be one of {PUSH_FORMATS}, not {fmt!r}")
    with tempfile.TemporaryDirectory() as tmp:
        digest_file = Path(tmp) / "digest"
        _skopeo("copy", *(["--all"] if all_images else []), "--format", fmt, "--digestfile", str(digest_file),
                *_registry_options(registry, username, password, prefix="dest-"),
                f"oci:{layout}", _docker_ref(registry, ref))
        return digest_file.read_text().strip()


def skopeo_manifest(registry, ref, username=None, password=None):
    """Return ``(digest, raw_bytes, media_type)`` of ``ref``, or None when it does not exist."""
    result = _skopeo("inspect", "--raw", *_registry_options(registry, username, password),
                     _docker_ref(registry, ref), not_found_ok=True, text=False)
    if result is None:
        return None
    raw = result.stdout
    return f"sha256:{hashlib.sha256(raw).hexdigest()}", raw, json.loads(raw).get("mediaType")


def skopeo_tags(registry, repo, username=None, password=None):
    """Return the sorted tags of ``repo``; [] when the registry does not know it."""
    result = _skopeo("list-tags", *_registry_options(registry, username, password),
                     _docker_ref(registry, repo), not_found_ok=True)
    return [] if result is None else sorted(json.loads(result.stdout)["Tags"] or [])


def skopeo_pullable(registry, ref, dest_dir, username=None, password=None, all_images=False):
    """Whether ``ref`` can be copied out completely, i.e. every blob it needs is really served.

    Of an index, skopeo copies only the host's platform unless ``all_images`` (``--all``).
    """
    result = _skopeo("copy", *(["--all"] if all_images else []),
                     *_registry_options(registry, username, password, prefix="src-"),
                     _docker_ref(registry, ref), f"oci:{dest_dir}", check=False)
    return result.returncode == 0


def _docker_ref(registry, ref):
    return f"docker://{registry.host}/{ref}"


def _registry_options(registry, username, password, prefix=""):
    """TLS and credential flags for one side of a skopeo command (``src-``, ``dest-`` or none)."""
    if registry.tls:
        options = [f"--{prefix}cert-dir", str(registry.cert_dir)]
    else:
        options = [f"--{prefix}tls-verify=false"]
    if username is not None:
        options += [f"--{prefix}creds", f"{username}:{password}"]
    return options


def _skopeo(*args, check=True, not_found_ok=False, text=True):
    """Run skopeo cut off from the machine's containers configuration and credentials.

    With ``not_found_ok`` a not-found failure returns None instead of raising.
    """
    isolation = _isolation_dir()
    argv = ["skopeo", "--policy", str(isolation / "policy.json"),
            "--registries.d", str(isolation / "registries.d"), *args]
    env = dict(os.environ,
               REGISTRY_AUTH_FILE=str(isolation / "auth.json"),
               CONTAINERS_REGISTRIES_CONF=str(isolation / "registries.conf"))
    result = subprocess.run(argv, capture_output=True, env=env, text=text, check=False)
    if result.returncode == 0 or not check:
        return result
    stderr = result.stderr if text else result.stderr.decode(errors="replace")
    if not_found_ok and any(marker in stderr for marker in NOT_FOUND_MARKERS):
        return None
    raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}):\n{stderr}")


_isolation = None


def _isolation_dir():
    global _isolation
    if _isolation is None:
        _isolation = tempfile.TemporaryDirectory(prefix="skopeo-")
        root = Path(_isolation.name)
        (root / "policy.json").write_text(
            json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        (root / "auth.json").write_text("{}")
        (root / "registries.conf").write_text("")
        (root / "registries.d").mkdir()
    return Path(_isolation.name)
