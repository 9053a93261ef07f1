"""The name grammar guards every URL and every trash path: what it admits and refuses."""

import hashlib
import json
import re

import pytest

from ansible_collections.oci_registry.trash.plugins.module_utils._errors import TrashError
from ansible_collections.oci_registry.trash.plugins.module_utils._reference import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    check_digest,
    check_repository,
    check_tag,
    compute_digest,
    digest_matches,
    manifest_references,
)

SHA256 = "sha256:" + "a" * 64
SHA512 = "sha512:" + "b" * 128


@pytest.mark.parametrize("name", [
    "a", "busybox", "library/ubuntu", "a.b_c__d---e/f0/9", "x" * 255, "my-org/team.app/web_ui",
])
def test_repository_grammar_accepts_distribution_names(name):
    assert check_repository(name) == name


@pytest.mark.parametrize("name", [
    "", "Upper", "library/Ubuntu", "../../etc", "/etc/passwd", "a/../b", "a/./b", "..", "a//b", "a/", "/a",
    "-a", "a-", "_a", "a___b", "a..b", "a b", "a:b", "a\\b", "a\nb", "x" * 256, None, 42,
])
def test_repository_grammar_refuses_traversal_case_and_malformed_names(name):
    with pytest.raises(TrashError, match="invalid repository name"):
        check_repository(name)


@pytest.mark.parametrize("tag", ["latest", "v1.2.3", "_private", "A-b.C_d", "0", "t" * 128])
def test_tag_grammar_accepts_tags(tag):
    assert check_tag(tag) == tag


@pytest.mark.parametrize("tag", ["", ".hidden", "-x", "..", "../etc", "a/b", "a:b", "a@b", "t" * 129, None])
def test_tag_grammar_refuses_malformed_tags(tag):
    with pytest.raises(TrashError, match="invalid tag"):
        check_tag(tag)


@pytest.mark.parametrize("digest", [SHA256, SHA512])
def test_digest_grammar_accepts_registered_algorithms(digest):
    assert check_digest(digest) == digest


@pytest.mark.parametrize("digest", [
    "", "sha256", "sha256:", "a" * 64, "sha256:" + "A" * 64, "sha256:" + "a" * 63, "sha256:" + "a" * 65,
    "sha256:" + "g" * 64, "md5:" + "a" * 32, "sha512:" + "b" * 64, "sha256:../../" + "a" * 58, None,
])
def test_digest_grammar_refuses_unknown_algorithms_and_bad_hex(digest):
    with pytest.raises(TrashError, match="invalid digest"):
        check_digest(digest)


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_digest_of_bytes_is_the_algorithm_hex_of_exactly_those_bytes(algorithm):
    data = b'{"schemaVersion": 2}\n'
    digest = compute_digest(data, algorithm)

    assert digest == "%s:%s" % (algorithm, hashlib.new(algorithm, data).hexdigest())
    assert digest_matches(digest, data)
    assert not digest_matches(digest, data.rstrip(b"\n"))


def test_digest_matches_refuses_an_unregistered_algorithm():
    assert not digest_matches("md5:" + hashlib.md5(b"x").hexdigest(), b"x")


def _descriptor(seed):
    return {"mediaType": "application/octet-stream", "digest": compute_digest(seed.encode()), "size": len(seed)}


@pytest.mark.parametrize("media_type", [DOCKER_MANIFEST, OCI_MANIFEST])
def test_image_manifest_references_its_config_and_layers(media_type):
    config, layers = _descriptor("config"), [_descriptor("layer-1"), _descriptor("layer-2")]
    body = json.dumps({"schemaVersion": 2, "mediaType": media_type, "config": config, "layers": layers})

    blobs, children = manifest_references(body.encode(), media_type)

    assert [b["digest"] for b in blobs] == [config["digest"]] + [layer["digest"] for layer in layers]
    assert [b["size"] for b in blobs] == [6, 7, 7]
    assert children == []


@pytest.mark.parametrize("media_type", [DOCKER_MANIFEST_LIST, OCI_INDEX])
def test_index_references_its_child_manifests(media_type):
    manifests = [_descriptor("amd64"), _descriptor("arm64")]
    body = json.dumps({"schemaVersion": 2, "mediaType": media_type, "manifests": manifests})

    blobs, children = manifest_references(body.encode(), media_type)

    assert blobs == []
    assert [c["digest"] for c in children] == [m["digest"] for m in manifests]


@pytest.mark.parametrize("body, expected", [
    (b"not json", re.escape(OCI_MANIFEST)),
    (b'{"config": {"size": 1}}', re.escape(OCI_MANIFEST)),
    (b'{"layers": [{"digest": "../x"}]}', "invalid digest"),
])
def test_malformed_manifest_is_a_trash_error_not_a_traceback(body, expected):
    with pytest.raises(TrashError, match=expected):
        manifest_references(body, OCI_MANIFEST)
