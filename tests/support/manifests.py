"""Many tags, cheaply: manifests of their own that share one pushed image's blobs.

A batch test needs tens of tags, each on a distinct digest. Pushing that many images
with skopeo would dominate the run; instead one image is pushed (by skopeo) and each
tag gets a copy of its manifest with one annotation added: a new digest, the same
blobs, one PUT. The registry is spoken to with plain ``requests``, not with the
collection's client, so the tests' set-up never depends on the code under test.
"""

import hashlib
import json

import requests

ACCEPT_MANIFESTS = ", ".join((
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
))
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ANNOTATION = "oci_registry.trash.test/variant"


def put_variants(registry, repository, base, tags, username=None, password=None):
    """Point each of ``tags`` at a variant of the OCI manifest at ``base`` (a tag or digest).

    Returns ``{tag: digest}``; every digest is checked against the one the registry reports.
    """
    with requests.Session() as session:
        session.verify = str(registry.ca_cert) if registry.tls else True
        if username is not None:
            session.auth = (username, password)
        url = f"{registry.url}/v2/{repository}/manifests/"
        answer = session.get(url + base, headers={"Accept": ACCEPT_MANIFESTS}, timeout=30)
        answer.raise_for_status()
        manifest = answer.json()
        # Docker schema 2 has no annotations field; only OCI manifests stay valid with one added.
        if manifest.get("mediaType") != OCI_MANIFEST:
            raise ValueError(f"{repository}:{base} is {manifest.get('mediaType')}; push the base with fmt='oci'")
        digests = {}
        for tag in tags:
            variant = dict(manifest, annotations={ANNOTATION: f"{repository}:{tag}"})
            body = json.dumps(variant, sort_keys=True).encode()
            put = session.put(url + tag, data=body, headers={"Content-Type": OCI_MANIFEST}, timeout=30)
            put.raise_for_status()
            digest = f"sha256:{hashlib.sha256(body).hexdigest()}"
            if put.headers.get("Docker-Content-Digest") != digest:
                raise RuntimeError(f"{repository}:{tag}: the registry stored "
                                   f"{put.headers.get('Docker-Content-Digest')}, not {digest}")
            digests[tag] = digest
        return digests


def blob_descriptors(raw_manifest):
    """The config and layer descriptors of an image manifest's bytes: ``[{digest, size, ...}, ...]``."""
    manifest = json.loads(raw_manifest)
    return [manifest["config"], *manifest["layers"]]
