"""The registry client against a real distribution 2.8 registry, checked with skopeo."""

import json

import pytest
import requests

from support.images import skopeo_manifest, skopeo_tags
from support.registry import free_port

from ansible_collections.oci_registry.trash.plugins.module_utils import _registry_client
from ansible_collections.oci_registry.trash.plugins.module_utils._errors import RegistryError, TrashError
from ansible_collections.oci_registry.trash.plugins.module_utils._reference import OCI_MANIFEST, compute_digest
from ansible_collections.oci_registry.trash.plugins.module_utils._registry_client import registry_base_url

ALICE = {"username": "alice", "password": "s3cret"}
# What requests and urllib3 wrap a failure in; a person needs only the innermost reason.
WRAPPER_NOISE = ("Max retries exceeded", "Caused by", "ConnectionPool(")
# requests lets these variables replace a session's verify setting unless the client guards against it.
CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


# --- manifests ---

@pytest.mark.parametrize("fmt", ["v2s2", "oci"])
def test_get_manifest_returns_the_bytes_type_and_digest_skopeo_sees(client, registry, push, repo, fmt):
    digest = push(f"get-{fmt}", "v1", fmt=fmt)

    by_tag = client.get_manifest(repo, "v1")

    assert (by_tag.digest, by_tag.body, by_tag.media_type) == skopeo_manifest(registry, f"{repo}:v1")
    assert by_tag.digest == digest
    assert client.get_manifest(repo, digest) == by_tag
    assert client.manifest_digest(repo, "v1") == digest


def test_missing_tag_digest_or_repository_is_none(client, registry, push, repo):
    push("present", "v1")
    unknown = "sha256:" + "0" * 64
    assert skopeo_manifest(registry, f"{repo}:absent") is None

    assert client.get_manifest(repo, "absent") is None
    assert client.get_manifest(repo, unknown) is None
    assert client.get_manifest("test/never-pushed", "latest") is None
    assert client.manifest_digest(repo, "absent") is None
    assert client.manifest_digest(repo, unknown) is None


def test_deleted_manifest_is_put_back_byte_identical(client, registry, push, repo):
    digest = push("roundtrip", "v1")
    original = client.get_manifest(repo, "v1")

    assert client.delete_manifest(repo, digest) is True
    assert skopeo_manifest(registry, f"{repo}@{digest}") is None
    assert client.delete_manifest(repo, digest) is False, "a manifest already gone is not an error"

    assert client.put_manifest(repo, "v1", original.body, original.media_type) == digest
    assert skopeo_manifest(registry, f"{repo}:v1") == (digest, original.body, original.media_type)


def test_delete_by_tag_on_distribution_2_8_is_a_400_digest_invalid_error(client, registry, push, repo):
    push("by-tag", "v1")

    with pytest.raises(RegistryError) as caught:
        client.delete_manifest(repo, "v1")

    assert (caught.value.status, caught.value.code) == (400, "DIGEST_INVALID")
    assert f"{registry.url}/v2/{repo}/manifests/v1" in caught.value.msg
    assert skopeo_tags(registry, repo) == ["v1"]


def test_delete_by_tag_removes_only_that_tag_where_the_registry_supports_it(
        tag_delete_proxy, connect, registry, push, repo):
    digest = push("tag-delete", "a", "b")
    client = connect(tag_delete_proxy())

    assert client.delete_manifest(repo, "a") is True

    assert skopeo_tags(registry, repo) == ["b"]
    assert skopeo_manifest(registry, f"{repo}:b")[0] == digest
    assert client.delete_manifest(repo, "a") is False, "a tag already gone is not an error"


def test_delete_by_tag_through_the_proxy_still_needs_the_registry_credentials(
        auth_registry, tag_delete_proxy, connect, push, repo):
    push("tag-delete-auth", "a", "b", target=auth_registry, **ALICE)
    proxy = tag_delete_proxy(auth_registry)

    with pytest.raises(RegistryError) as caught:
        connect(proxy, username="alice", password="wrong").delete_manifest(repo, "a")
    assert caught.value.status == 401
    assert skopeo_tags(auth_registry, repo, **ALICE) == ["a", "b"]

    assert connect(proxy, **ALICE).delete_manifest(repo, "a") is True
    assert skopeo_tags(auth_registry, repo, **ALICE) == ["b"]


# --- tags ---

@pytest.mark.parametrize("paginate, pages", [(True, 4), (False, 1)], ids=["paginating", "ignoring-n"])
def test_list_tags_gets_every_tag_whether_or_not_the_registry_paginates(
        monkeypatch, tag_delete_proxy, connect, registry, push, repo, paginate, pages):
    tags = ["t%d" % n for n in range(7)]
    push("many-tags", *tags)
    monkeypatch.setattr(_registry_client, "TAG_PAGE_SIZE", 2)
    proxy = tag_delete_proxy(tag_delete=False, paginate_tags=paginate)

    found = connect(proxy).list_tags(repo)

    assert sorted(found) == skopeo_tags(registry, repo) == tags
    assert len(found) == len(tags), "a tag listed twice"
    requests_made = [e for e in proxy.seen("GET") if "/tags/list" in e.path]
    assert len(requests_made) == pages
    assert all("n=2" in e.path for e in requests_made)


def test_list_tags_is_empty_after_the_last_tag_goes_and_for_unknown_repositories(client, registry, push, repo):
    digest = push("null-tags", "only")
    assert requests.delete(f"{registry.url}/v2/{repo}/manifests/{digest}", timeout=5).status_code == 202
    assert requests.get(f"{registry.url}/v2/{repo}/tags/list", timeout=5).json()["tags"] is None

    assert client.list_tags(repo) == [] == skopeo_tags(registry, repo)
    assert client.list_tags("test/never-pushed") == []


# --- blobs ---

def test_blob_exists_for_pushed_config_and_after_an_upload(client, registry, push, repo):
    digest = push("blobs", "v1")
    config = json.loads(skopeo_manifest(registry, f"{repo}@{digest}")[1])["config"]["digest"]
    data = b"uploaded by " + repo.encode()
    uploaded = compute_digest(data)
    assert not client.blob_exists(repo, uploaded)

    assert client.upload_blob(repo, data) == uploaded

    assert client.blob_exists(repo, config)
    assert client.blob_exists(repo, uploaded)
    assert requests.get(f"{registry.url}/v2/{repo}/blobs/{uploaded}", timeout=5).content == data


# --- authentication ---

@pytest.fixture
def auth_registry(registry_factory):
    return registry_factory(htpasswd_users={ALICE["username"]: ALICE["password"]})


def test_basic_auth_with_the_right_password_reads_manifests(auth_registry, connect, push, repo):
    digest = push("auth", "v1", target=auth_registry, **ALICE)

    assert connect(auth_registry, **ALICE).get_manifest(repo, "v1").digest == digest


def test_wrong_password_is_a_401_authentication_error_that_never_shows_the_password(auth_registry, connect, repo):
    client = connect(auth_registry, username="alice", password="not-the-password")

    with pytest.raises(RegistryError) as caught:
        client.get_manifest(repo, "v1")

    assert caught.value.status == 401
    assert "authentication failed" in caught.value.msg
    assert "not-the-password" not in caught.value.msg + repr(caught.value.details)


def test_no_credentials_says_the_registry_requires_authentication(auth_registry, connect, repo):
    with pytest.raises(RegistryError) as caught:
        connect(auth_registry).list_tags(repo)

    assert caught.value.status == 401
    assert "requires authentication" in caught.value.msg


# --- TLS ---

@pytest.fixture
def tls_registry(registry_factory):
    return registry_factory(tls=True)


@pytest.fixture
def tls_connect(connect):
    """A client without retries: a certificate that fails once fails every time, only slower."""
    return lambda target, **options: connect(target, retries=0, **options)


@pytest.fixture(params=[
    "unset",
    "set",
], ids=lambda p: f"ca-bundle-env-{p}")
def ca_bundle_env(request, monkeypatch):
    """Both ways a controller can be: without, and with, a CA bundle variable in its environment."""
    for name in CA_BUNDLE_VARIABLES:
        if request.param == "set":
            monkeypatch.setenv(name, requests.certs.where())
        else:
            monkeypatch.delenv(name, raising=False)


def test_tls_registry_is_trusted_through_ca_path(tls_registry, tls_connect, push, repo, ca_bundle_env):
    digest = push("tls", "v1", target=tls_registry)

    assert tls_connect(tls_registry, ca_path=str(tls_registry.ca_cert)).get_manifest(repo, "v1").digest == digest


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_registry_is_reached_without_validation_when_validate_certs_is_false(
        tls_registry, tls_connect, push, repo, ca_bundle_env):
    digest = push("tls", "v1", target=tls_registry)

    assert tls_connect(tls_registry, validate_certs=False).get_manifest(repo, "v1").digest == digest


def _tls_failure(tls_registry, tls_connect):
    with pytest.raises(RegistryError) as caught:
        tls_connect(tls_registry).ping()
    return caught.value


def test_tls_registry_without_its_ca_fails_with_a_tls_message_suggesting_ca_path(tls_registry, tls_connect):
    error = _tls_failure(tls_registry, tls_connect)

    assert error.status is None
    assert "TLS error" in error.msg and "certificate verify failed" in error.msg
    assert "ca_path" in error.msg
    assert f"{tls_registry.url}/v2/" in error.msg


def test_tls_failure_is_told_without_the_wrappers_of_requests(tls_registry, tls_connect):
    error = _tls_failure(tls_registry, tls_connect)

    assert not [noise for noise in WRAPPER_NOISE if noise in error.msg], error.msg


def test_missing_ca_path_file_is_refused(tmp_path):
    with pytest.raises(TrashError, match="ca_path .* does not exist"):
        _registry_client.RegistryClient("https://127.0.0.1:1", ca_path=str(tmp_path / "missing.crt"))


# --- connection errors ---

def _refused():
    """The error of a registry URL with nothing listening; no retries, which would only add backoff."""
    url = "http://127.0.0.1:%d" % free_port()
    with pytest.raises(RegistryError) as caught:
        _registry_client.RegistryClient(url, retries=0).ping()
    return url, caught.value


def test_connection_refused_says_it_cannot_connect_and_names_the_url():
    url, error = _refused()

    assert "cannot connect to the registry" in error.msg
    assert "Connection refused" in error.msg
    assert f"{url}/v2/" in error.msg


def test_connection_refused_is_told_without_the_wrappers_of_requests():
    error = _refused()[1]

    assert not [noise for noise in WRAPPER_NOISE if noise in error.msg], error.msg


# --- registry_url ---

@pytest.mark.parametrize("url, expected", [
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("http://127.0.0.1:5000/", "http://127.0.0.1:5000"),
    ("HTTPS://Registry.Example.COM/", "https://registry.example.com"),
    ("https://registry.example.com/mirror/", "https://registry.example.com/mirror"),
])
def test_registry_url_is_normalised_without_a_trailing_slash(url, expected):
    assert registry_base_url(url) == expected


@pytest.mark.parametrize("url", [
    "https://alice:hunter2@registry.example.com",
    "http://alice:hunter2@127.0.0.1:5000/",
    "https://hunter2@registry.example.com",
])
def test_registry_url_with_credentials_is_refused_without_echoing_them(url):
    with pytest.raises(TrashError, match="must not contain credentials") as caught:
        registry_base_url(url)

    assert "hunter2" not in caught.value.msg + repr(caught.value.details)


@pytest.mark.parametrize("url", [
    "", None, "registry.example.com", "127.0.0.1:5000", "ftp://registry.example.com", "file:///etc/passwd",
    "http://", "https://registry.example.com/?x=1", "https://registry.example.com/#frag",
])
def test_registry_url_without_http_scheme_and_host_is_refused(url):
    with pytest.raises(TrashError, match="invalid registry_url"):
        registry_base_url(url)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:99999",
    "http://127.0.0.1:port",
    "http://127.0.0.1:-1",
    "http://127.0.0.1:0",
])
def test_registry_url_with_a_bad_port_is_refused(url):
    with pytest.raises(TrashError, match="port"):
        registry_base_url(url)


# --- deletes ---

def test_deletes_enabled_on_a_normal_registry_and_the_probe_deletes_nothing(client, registry, push, repo):
    digest = push("probe", "v1")

    assert client.deletes_enabled(repo) is True

    assert skopeo_manifest(registry, f"{repo}:v1")[0] == digest


@pytest.mark.parametrize("options", [{"delete": False}, {"readonly": True}], ids=["delete-disabled", "read-only"])
def test_deletes_enabled_is_false_where_the_registry_refuses_deletes(registry_factory, connect, repo, options):
    assert connect(registry_factory(**options)).deletes_enabled(repo) is False


def test_delete_where_deletes_are_disabled_is_a_405_that_says_so(registry_factory, connect, push, repo):
    target = registry_factory(delete=False)
    digest = push("no-delete", "v1", target=target)

    with pytest.raises(RegistryError) as caught:
        connect(target).delete_manifest(repo, digest)

    assert caught.value.status == 405
    assert "deletes are disabled" in caught.value.msg
    assert f"{target.url}/v2/{repo}/manifests/{digest}" in caught.value.msg
    assert skopeo_manifest(target, f"{repo}:v1")[0] == digest


def test_put_on_a_read_only_registry_is_a_405_that_says_it_may_be_read_only(registry_factory, connect, repo):
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}).encode()

    with pytest.raises(RegistryError) as caught:
        connect(registry_factory(readonly=True)).put_manifest(repo, "v1", body, OCI_MANIFEST)

    assert caught.value.status == 405
    assert "read-only" in caught.value.msg
