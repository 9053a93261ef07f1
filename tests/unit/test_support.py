"""The harness itself: a broken harness would make every other test meaningless."""

import json

import pytest
import requests

from support.images import (make_oci_layout, skopeo_manifest, skopeo_pullable, skopeo_push,
                            skopeo_tags)

DOCKER_V2S2 = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def test_registry_answers_v2(registry):
    answer = requests.get(f"{registry.url}/v2/", timeout=5)
    assert answer.status_code == 200
    assert answer.headers["Docker-Distribution-Api-Version"] == "registry/2.0"


def test_layout_is_deterministic_per_seed(tmp_path):
    def blob_names(seed, name):
        layout = make_oci_layout(tmp_path / name, seed, extra_layers=1)
        return sorted(p.name for p in (layout / "blobs" / "sha256").iterdir())

    assert blob_names("a", "first") == blob_names("a", "again")
    assert not set(blob_names("a", "first")) & set(blob_names("b", "other"))


@pytest.mark.parametrize("fmt, media_type", [("v2s2", DOCKER_V2S2), ("oci", OCI_MANIFEST)])
def test_push_reports_digest_and_media_type(registry, repo, image, fmt, media_type):
    digest = skopeo_push(image(f"push-{fmt}"), registry, f"{repo}:v1", fmt=fmt)

    found = skopeo_manifest(registry, f"{repo}:v1")
    assert found is not None
    assert found[0] == digest
    assert found[2] == media_type
    assert skopeo_manifest(registry, f"{repo}@{digest}")[1] == found[1]
    assert skopeo_tags(registry, repo) == ["v1"]


def test_missing_things_are_none_or_empty(registry, repo, image):
    skopeo_push(image("missing"), registry, f"{repo}:present")

    assert skopeo_manifest(registry, f"{repo}:absent") is None
    assert skopeo_manifest(registry, f"{repo}@sha256:{'0' * 64}") is None
    assert skopeo_manifest(registry, "test/never-pushed:latest") is None
    assert skopeo_tags(registry, "test/never-pushed") == []


def test_pullable_notices_a_missing_blob(registry_factory, repo, image, tmp_path):
    registry = registry_factory()
    digest = skopeo_push(image("pullable", extra_layers=1), registry, f"{repo}:v1")
    assert skopeo_pullable(registry, f"{repo}:v1", tmp_path / "ok")

    manifest = json.loads(skopeo_manifest(registry, f"{repo}@{digest}")[1])
    layer = manifest["layers"][0]["digest"].split(":")[1]
    blob = registry.storage_root / "docker/registry/v2/blobs/sha256" / layer[:2] / layer / "data"
    blob.unlink()
    assert not skopeo_pullable(registry, f"{repo}:v1", tmp_path / "broken")


def test_htpasswd_registry_checks_credentials(registry_factory, repo, image):
    registry = registry_factory(htpasswd_users={"alice": "s3cret"})

    assert requests.get(f"{registry.url}/v2/", timeout=5).status_code == 401
    assert requests.get(f"{registry.url}/v2/", auth=("alice", "wrong"), timeout=5).status_code == 401
    assert requests.get(f"{registry.url}/v2/", auth=("alice", "s3cret"), timeout=5).status_code == 200
    with pytest.raises(RuntimeError, match="unauthorized"):
        skopeo_push(image("auth"), registry, f"{repo}:v1", username="alice", password="wrong")

    digest = skopeo_push(image("auth"), registry, f"{repo}:v1", username="alice", password="s3cret")
    assert skopeo_manifest(registry, f"{repo}:v1", "alice", "s3cret")[0] == digest


def test_tls_registry_trusts_only_its_ca(registry_factory, repo, image):
    registry = registry_factory(tls=True)

    assert registry.url.startswith("https://")
    assert requests.get(f"{registry.url}/v2/", verify=str(registry.ca_cert), timeout=5).ok
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{registry.url}/v2/", timeout=5)
    digest = skopeo_push(image("tls"), registry, f"{repo}:v1", fmt="oci")
    assert skopeo_manifest(registry, f"{repo}:v1")[0] == digest


def test_restart_keeps_url_and_content(registry_factory, repo, image):
    registry = registry_factory()
    digest = skopeo_push(image("restart"), registry, f"{repo}:v1")
    url = registry.url

    registry.restart()

    assert registry.url == url
    assert skopeo_manifest(registry, f"{repo}:v1")[0] == digest


def test_garbage_collect_removes_unreferenced_blobs(registry_factory, repo, image):
    registry = registry_factory()
    digest = skopeo_push(image("gc"), registry, f"{repo}:v1")
    manifest_url = f"{registry.url}/v2/{repo}/manifests/{digest}"
    assert requests.delete(manifest_url, timeout=5).status_code == 202
    registry.stop()

    output = registry.garbage_collect()

    assert "blob eligible for deletion" in output
    blob_dir = registry.storage_root / "docker/registry/v2/blobs/sha256" / digest[7:9]
    assert not (blob_dir / digest[7:]).exists()
