"""Secrets stay secret, the trash stays private, TLS is verified, credentials stay with the registry.

- A playbook runs every module with known passwords (as an option, from the environment,
  and a wrong one) at -vvv with ANSIBLE_LOG_PATH set; then every byte the run left (its
  output, its log, its task results, the trash, the home directory) is scanned for the
  passwords, their Basic authorization form and, with token auth, every token issued.
- The same run, started with umask 000, leaves directories 0700 and files 0600.
- A TLS registry whose CA the controller does not know is refused without ca_path.
- Blob downloads that the registry redirects to another host (as registries do to object
  storage) reach that host without the registry's credentials, Basic or Bearer.

Every host is a loopback address; 127.0.0.2 plays "another host".
"""

import base64
import http.server
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.ansible_process import PlaybookRun
from support.fault_proxy import FORWARD, Fault, FaultProxy
from support.images import skopeo_push
from support.local_server import LocalServer
from support.registry import Registry
from support.reliability import PLAYBOOKS
from support.token_issuer import TokenIssuer
from support.trash_witness import TrashView

from ansible_collections.oci_registry.trash.plugins.module_utils._errors import TrashError
from ansible_collections.oci_registry.trash.plugins.module_utils._registry_client import RegistryClient
from ansible_collections.oci_registry.trash.plugins.module_utils._trash_manifests import trash
from ansible_collections.oci_registry.trash.plugins.module_utils._trash_store import TrashStore

USER = "reliability"
ANOTHER_HOST = "127.0.0.2"  # loopback too, but another host to a client: a different origin
BLOB_PATH = re.compile(r"^/v2/.+/blobs/(sha256:[a-f0-9]{64})$")


@dataclass
class AuthRegistry:
    registry: Registry
    password: str
    tokens: list  # every Bearer token the issuer handed out (empty for Basic)
    layouts: list  # two OCI layouts, whose blobs/ hold every blob's bytes
    tags = ["one", "two"]

    @property
    def credentials(self):
        return {"username": USER, "password": self.password}

    def push(self, repository):
        """A repository of the test's own: each layout pushed by skopeo under one of ``tags``."""
        for layout, tag in zip(self.layouts, self.tags):
            skopeo_push(layout, self.registry, "%s:%s" % (repository, tag), fmt="oci", **self.credentials)
        return repository


def recording_tokens(issuer):
    """Keep every token the issuer signs, so a scan can look for them."""
    tokens, issue = [], issuer.issue

    def issue_and_remember(subject, scopes):
        token = issue(subject, scopes)
        tokens.append(token)
        return token
    issuer.issue = issue_and_remember
    return tokens


@pytest.fixture(scope="module", params=["basic", "bearer"])
def auth_registry(request, tmp_path_factory, image):
    """A registry that wants credentials, by htpasswd (Basic) or by a token issuer (Bearer),
    with a random password."""
    workdir = tmp_path_factory.mktemp("auth-" + request.param)
    password = "pw-" + secrets.token_hex(16)
    tokens = []
    if request.param == "basic":
        registry = Registry(workdir, htpasswd_users={USER: password})
    else:
        issuer = TokenIssuer(workdir, {USER: password}).start()
        request.addfinalizer(issuer.stop)
        tokens = recording_tokens(issuer)
        registry = Registry(workdir / "registry", token_issuer=issuer)
    request.addfinalizer(registry.stop)
    registry.start()
    return AuthRegistry(registry, password, tokens, [image("reliability-secrets-" + tag) for tag in AuthRegistry.tags])


# --- scanning a run for secrets ---

def secret_forms(secret):
    """A secret as it could leak: itself, and inside a Basic authorization header."""
    basic = base64.b64encode(("%s:%s" % (USER, secret)).encode()).decode()
    return [secret, basic]


def leaks(root, secrets_):
    """(file, secret) for every file under root that holds one of the secrets."""
    found = []
    for path in sorted(Path(root).rglob("*")):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            found += [(str(path), s[:12] + "...") for s in secrets_ if s.encode() in data]
    return found


@pytest.fixture(scope="module")
def lifecycle(auth_registry, tmp_path_factory):
    """lifecycle.yml run at -vvv, with a log file and umask 000; returns (run, trash_dir, secrets)."""
    tmp_path = tmp_path_factory.mktemp("lifecycle")
    wrong = "wrong-" + secrets.token_hex(16)
    trash_dir = tmp_path / "trash"
    run = PlaybookRun(PLAYBOOKS / "lifecycle.yml", tmp_path, "lifecycle", verbosity=3, umask=0, extra_vars={
        "registry_url": auth_registry.registry.url, "username": USER,
        "repository": auth_registry.push("reliability/lifecycle"),
        "batch_tags": auth_registry.tags, "trash_dir": str(trash_dir)}, env={
        "ANSIBLE_LOG_PATH": str(tmp_path / "ansible.log"), "RELIABILITY_PASSWORD": auth_registry.password,
        "RELIABILITY_WRONG_PASSWORD": wrong, "REGISTRY_USERNAME": USER,
        "REGISTRY_PASSWORD": auth_registry.password}).run()
    run.assert_succeeded()
    known = secret_forms(auth_registry.password) + secret_forms(wrong) + auth_registry.tokens
    return run, trash_dir, known


def test_no_password_or_token_in_the_trash_the_results_or_the_logs(lifecycle, auth_registry):
    run, trash_dir, known = lifecycle
    # The premise: the run used the credentials, was refused the wrong ones, and logged verbosely.
    assert run.result("Trash with the password as an option")["changed"]
    assert run.result("Restore one tag with the credentials from the environment")["changed"]
    assert "authentication failed" in run.result("Trash with a wrong password")["msg"]
    assert auth_registry.tokens or auth_registry.registry.token_issuer is None
    assert (run.workdir / "ansible.log").stat().st_size > 0

    assert leaks(run.workdir, known) == []
    assert [s for s in known if s in run.output] == []


def test_trash_directories_are_0700_and_files_0600_even_under_umask_000(lifecycle):
    _run, trash_dir, _known = lifecycle
    modes = {str(p.relative_to(trash_dir)): stat.S_IMODE(p.lstat().st_mode) for p in [trash_dir, *trash_dir.rglob("*")]}
    assert any(TrashView(trash_dir).entries), "the run left no entry to check"
    wrong = {path: oct(mode) for path, mode in modes.items()
             if mode != (0o700 if (trash_dir / path).is_dir() else 0o600)}
    assert wrong == {}


@pytest.mark.parametrize("shape", ["{user}:{pw}@127.0.0.1:5000", "ftp://{user}:{pw}@127.0.0.1:5000",
                                   "http://{user}:{pw}@"])
def test_a_registry_url_refused_for_its_shape_never_repeats_its_password(shape):
    password = "pw-" + secrets.token_hex(16)
    with pytest.raises(TrashError) as refused:
        RegistryClient(shape.format(user=USER, pw=password))
    assert password not in refused.value.msg


def test_a_password_slipped_into_registry_url_appears_in_no_result_or_log(make_batch, tmp_path):
    password = "pw-" + secrets.token_hex(16)
    batch = make_batch("secret-url", 1)
    # The scheme forgotten: the most common way credentials end up in a URL by mistake.
    run = PlaybookRun(PLAYBOOKS / "trash.yml", tmp_path, "slip", verbosity=3, extra_vars={
        "registry_url": "%s:%s@127.0.0.1:5000" % (USER, password), "repository": batch.repository,
        "batch_tags": batch.tags, "trash_dir": str(tmp_path / "trash")},
        env={"ANSIBLE_LOG_PATH": str(tmp_path / "ansible.log")}).run()

    assert run.returncode != 0  # refused, as it must be; what matters is what it says
    # The variables file is the test's own input; everything else is what the run wrote.
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "slip.vars.json"]
    assert [str(p) for p in written if password.encode() in p.read_bytes()] == []


# --- TLS ---

def test_tls_is_verified_by_default_and_a_private_ca_needs_ca_path(registry_factory, image, tmp_path, witness):
    tls = registry_factory(tls=True)
    digest = skopeo_push(image("reliability-tls"), tls, "reliability/tls:v1", fmt="oci")
    trash_dir = tmp_path / "trash"
    run = PlaybookRun(PLAYBOOKS / "tls.yml", tmp_path, "tls", extra_vars={
        "registry_url": tls.url, "repository": "reliability/tls", "batch_tags": ["v1"],
        "trash_dir": str(trash_dir), "ca_path": str(tls.ca_cert)}).run()

    run.assert_succeeded()  # the refusal is ignore_errors; the second task must work
    refused, = run.results("Trash with default TLS settings")
    assert refused["event"] == "failed"
    assert re.search(r"TLS|certificate", refused["result"]["msg"]) and "ca_path" in refused["result"]["msg"]
    accepted = run.result("Trash with the registry's CA")
    assert accepted["changed"] and accepted["entries"][0]["digest"] == digest
    # Nothing was written for the refused run: the one entry is the second task's.
    assert [e["id"] for e in TrashView(trash_dir).of("reliability/tls")] == [accepted["entries"][0]["id"]]


# --- credentials and redirects ---

class StorageServer(LocalServer):
    """Object storage on another host: serves blob bytes from OCI layouts, and records
    every request's method, path and Authorization header."""

    def __init__(self, host, layouts):
        self.seen = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.seen.append((self.command, self.path, self.headers.get("Authorization")))
                digest = self.path.rsplit("/", 1)[-1]
                data = next((p.read_bytes() for p in (Path(l, "blobs", *digest.split(":")) for l in layouts)
                             if p.exists()), None)
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                ranged = re.match(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
                body = data[int(ranged[1]):int(ranged[2]) + 1] if ranged else data
                self.send_response(206 if ranged else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command == "GET":
                    self.wfile.write(body)

            do_HEAD = do_GET

            def log_message(self, *args):
                pass

        super().__init__(Handler, host)

    @property
    def origin(self):
        return "http://" + self.address


@pytest.mark.parametrize("storage_host", [ANOTHER_HOST, "127.0.0.1"], ids=["another-address", "another-port"])
def test_credentials_never_follow_a_blob_redirect_to_another_host(auth_registry, storage_host, request, tmp_path):
    storage = StorageServer(storage_host, auth_registry.layouts).start()
    request.addfinalizer(storage.stop)

    def to_storage(method, path, headers):
        blob = BLOB_PATH.match(path)
        return Fault("redirect", location="%s/storage/%s" % (storage.origin, blob[1])) if blob else FORWARD
    proxy = FaultProxy(auth_registry.registry, rule=to_storage).start()
    request.addfinalizer(proxy.stop)
    trash_dir = tmp_path / "trash"
    repository = auth_registry.push("reliability/redirect-" + storage_host.replace(".", "-"))

    with RegistryClient(proxy.url, **auth_registry.credentials) as client:
        result = trash(client, TrashStore(str(trash_dir)), repository, tags=auth_registry.tags, keep_blobs=True)

    assert result["changed"]
    # The premise: credentials went to the registry, and the blobs came from the storage host.
    assert {a.auth for a in proxy.attempts if a.fault is None} - {None}
    assert storage.seen and not TrashView(trash_dir).problems()
    assert [(method, path) for method, path, authorization in storage.seen if authorization] == []
