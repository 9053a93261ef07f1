"""Fixtures of the reliability tests: the seed to replay them, batches of tags, the witnesses."""

import itertools
from dataclasses import dataclass

import pytest
import requests

from support.images import skopeo_push
from support.manifests import put_variants
from support.reliability import SEED, Batch
from support.trash_witness import RegistryWitness


_repositories = itertools.count(1)


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line("reliability seed: %d (replay with RELIABILITY_SEED=%d)" % (SEED, SEED))


@pytest.fixture
def seed(request):
    """This test's seed: the run's seed and the test's name, so each test draws its own sequence."""
    value = "%d/%s" % (SEED, request.node.name)
    print("seed %s (replay with RELIABILITY_SEED=%d)" % (value, SEED))
    return value


@pytest.fixture(scope="module")
def module_seed(request):
    """The seed of what a module's tests share: the run's seed and the module's name."""
    return "%d/%s" % (SEED, request.module.__name__)


@dataclass(frozen=True)
class Base:
    repository: str
    digest: str
    blobs: tuple


@pytest.fixture(scope="session")
def base(registry, image):
    """One small OCI image, pushed once by skopeo; every batch's manifests use its blobs."""
    repository = "reliability/base"
    digest = skopeo_push(image("reliability-base"), registry, repository + ":base", fmt="oci")
    manifest = requests.get("%s/v2/%s/manifests/%s" % (registry.url, repository, digest),
                            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}, timeout=30).json()
    return Base(repository, digest, tuple(d["digest"] for d in [manifest["config"], *manifest["layers"]]))


@pytest.fixture(scope="session")
def make_batch(registry, base):
    """``make_batch(name, count, prefix="t")``: a new repository with ``count`` tags on distinct manifests.

    The blobs are mounted from the base repository and the manifests PUT with plain
    requests (support.manifests), which costs a few milliseconds a tag where a skopeo
    push per tag would cost a third of a second.
    """
    def make(name, count, prefix="t"):
        repository = "reliability/%s-%d" % (name, next(_repositories))
        with requests.Session() as session:
            for blob in base.blobs:
                answer = session.post("%s/v2/%s/blobs/uploads/?mount=%s&from=%s"
                                      % (registry.url, repository, blob, base.repository), timeout=30)
                assert answer.status_code == 201, answer.text
            raw = session.get("%s/v2/%s/manifests/%s" % (registry.url, base.repository, base.digest),
                              headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}, timeout=30)
            put = session.put("%s/v2/%s/manifests/%s" % (registry.url, repository, base.digest), data=raw.content,
                              headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, timeout=30)
            assert put.status_code == 201, put.text
        tags = ["%s%03d" % (prefix, n) for n in range(count)]
        return Batch(repository, put_variants(registry, repository, base.digest, tags))
    return make


@pytest.fixture(scope="session")
def witness(registry):
    reader = RegistryWitness(registry)
    yield reader
    reader.close()
