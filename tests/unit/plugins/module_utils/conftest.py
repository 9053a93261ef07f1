"""Fixtures shared by the unit tests of the core: clients, stores, tagged images and the proxy."""

import pytest

from support.images import skopeo_push
from support.tag_delete_proxy import TagDeleteProxy

from ansible_collections.oci_registry.trash.plugins.module_utils._registry_client import RegistryClient
from ansible_collections.oci_registry.trash.plugins.module_utils._trash_store import TrashStore


@pytest.fixture
def connect(request):
    """``connect(target, **RegistryClient options)``: a client of a registry or proxy, closed after the test."""
    def make(target, **options):
        client = RegistryClient(target.url, **options)
        request.addfinalizer(client.close)
        return client
    return make


@pytest.fixture
def client(connect, registry):
    return connect(registry)


@pytest.fixture
def store(trash_dir):
    return TrashStore(str(trash_dir))


@pytest.fixture
def push(image, registry, repo):
    """``push(seed, *tags, fmt=, target=, repository=, layout=)``: one image under every tag, by skopeo; its digest.

    ``layout``: options of make_oci_layout; with ``architectures`` the whole index is pushed.
    """
    def run(seed, *tags, fmt="v2s2", target=registry, repository=repo, layout=None, **credentials):
        layout = layout or {}
        every_platform = bool(layout.get("architectures"))
        digests = {skopeo_push(image(seed, **layout), target, f"{repository}:{tag}", fmt=fmt,
                               all_images=every_platform, **credentials)
                   for tag in tags}
        assert len(digests) == 1, f"one image pushed under {tags} gave several digests: {digests}"
        return digests.pop()
    return run


@pytest.fixture
def tag_delete_proxy(request, registry):
    """``tag_delete_proxy(target=registry, tag_delete=True, paginate_tags=True)``: a started proxy."""
    def start(target=registry, **features):
        proxy = TagDeleteProxy(target, **features)
        request.addfinalizer(proxy.stop)
        return proxy.start()
    return start
