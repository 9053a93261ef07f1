"""A real Docker distribution registry (``docker-registry``) run for tests."""

import datetime
import ipaddress
import os
import socket
import subprocess
import time
from pathlib import Path

import bcrypt
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REGISTRY_BIN = "docker-registry"
START_TIMEOUT = 20
STOP_TIMEOUT = 10
LOG_TAIL_LINES = 40


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Registry:
    """One registry process with its own config, storage, log and credentials.

    Everything lives under ``workdir``; the port is picked once so that
    ``restart()`` keeps ``url`` valid.
    """

    def __init__(self, workdir, *, htpasswd_users=None, tls=False, delete=True,
                 blob_cache=True, readonly=False, token_issuer=None, config=None):
        """``config``: serve this existing config file as it is, instead of writing one.

        The port and the storage root are then read from it (``http.addr`` must name a port
        on 127.0.0.1); the options that only shape a written config must stay at their
        defaults, and TLS is not supported. Only the log is kept under ``workdir``.
        """
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.storage_root = self.workdir / "storage"
        self.config_path = self.workdir / "config.yml"
        if config is not None:
            if htpasswd_users or tls or not delete or not blob_cache or readonly or token_issuer:
                raise ValueError("the options that shape a written config do not go with config")
            self._adopt_config(Path(config))
        self.log_path = self.workdir / "registry.log"
        self.htpasswd_users = dict(htpasswd_users or {})
        self.token_issuer = token_issuer
        self.tls = tls
        # skopeo's --cert-dir takes every *.crt in a directory as a CA, so the
        # CA gets a directory of its own.
        self.cert_dir = self.workdir / "ca" if tls else None
        self.ca_cert = self.cert_dir / "ca.crt" if tls else None
        self._process = None
        if config is None:
            self._write_config(delete=delete, blob_cache=blob_cache, readonly=readonly)

    @property
    def host(self):
        return f"127.0.0.1:{self.port}"

    @property
    def url(self):
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def running(self):
        return self._process is not None and self._process.poll() is None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def start(self):
        if self.running:
            return
        with open(self.log_path, "ab") as log:
            # setpriv --pdeathsig: a test run killed outright (SIGKILL skips every finalizer) takes
            # its registries with it instead of leaving them running, listening, for good.
            self._process = subprocess.Popen(
                ["setpriv", "--pdeathsig", "KILL", REGISTRY_BIN, "serve", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=_registry_env())
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self):
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self):
        self.stop()
        self.start()

    def garbage_collect(self, delete_untagged=False):
        """Run the offline garbage collector; stopping the registry first is up to the caller."""
        argv = [REGISTRY_BIN, "garbage-collect", str(self.config_path)]
        if delete_untagged:
            argv.insert(2, "--delete-untagged")
        result = subprocess.run(argv, capture_output=True, text=True, env=_registry_env(), check=False)
        if result.returncode:
            raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}):\n"
                               f"{result.stdout}{result.stderr}")
        return result.stdout + result.stderr

    def stored_blobs(self):
        """Digests of every blob whose content is in the storage now, read from disk.

        What a garbage collection left, seen without asking the registry, whose
        blob-descriptor cache may still claim blobs the storage lost.
        """
        root = self.storage_root / "docker/registry/v2/blobs"
        return {f"{data.parents[2].name}:{data.parent.name}" for data in root.glob("*/*/*/data")}

    def log_tail(self, lines=LOG_TAIL_LINES):
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _wait_until_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"registry exited with {self._process.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                answer = requests.get(f"{self.url}/v2/", timeout=1,
                                      verify=str(self.ca_cert) if self.tls else True)
                # 401 is the answer of a registry that requires credentials.
                if answer.status_code in (200, 401):
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"registry at {self.url} not ready after {START_TIMEOUT}s:\n"
                                   f"{self.log_tail()}")
            time.sleep(0.05)

    def _adopt_config(self, path):
        settings = yaml.safe_load(path.read_text())
        host, port = settings["http"]["addr"].rsplit(":", 1)
        if host != "127.0.0.1" or "tls" in settings["http"]:
            raise ValueError(f"{path}: only plain HTTP on 127.0.0.1 is supported, not {settings['http']}")
        self.port = int(port)
        self.storage_root = Path(settings["storage"]["filesystem"]["rootdirectory"])
        self.config_path = path

    def _write_config(self, *, delete, blob_cache, readonly):
        storage = {
            "filesystem": {"rootdirectory": str(self.storage_root)},
            "delete": {"enabled": delete},
            "maintenance": {
                # The purger would delete upload directories behind the tests' backs.
                "uploadpurging": {"enabled": False},
                "readonly": {"enabled": readonly},
            },
        }
        if blob_cache:
            storage["cache"] = {"blobdescriptor": "inmemory"}
        # A fixed secret keeps upload sessions valid across restart().
        http = {"addr": self.host, "secret": "oci-registry-trash-tests"}
        config = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text"},
            "storage": storage,
            "http": http,
        }
        if self.htpasswd_users:
            htpasswd = self.workdir / "htpasswd"
            _write_htpasswd(htpasswd, self.htpasswd_users)
            config["auth"] = {"htpasswd": {"realm": "test-registry", "path": str(htpasswd)}}
        if self.token_issuer:
            config["auth"] = self.token_issuer.registry_auth_config()
        if self.tls:
            http["tls"] = _write_tls_files(self.workdir / "tls", self.ca_cert)
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))


def _registry_env():
    # distribution reads REGISTRY_* variables as config overrides; keep them out.
    return {key: value for key, value in os.environ.items() if not key.startswith("REGISTRY_")}


def _write_htpasswd(path, users):
    # distribution only accepts bcrypt entries; the lowest cost keeps start-up fast.
    lines = []
    for user, password in users.items():
        digest = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
        lines.append(f"{user}:$2y${digest[4:]}\n")
    path.write_text("".join(lines))


def _write_tls_files(directory, ca_path):
    """Write a test CA to ``ca_path`` and a server cert/key under ``directory``.

    Returns the ``http.tls`` config section.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca_path.parent.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "oci_registry.trash test CA")])
    ca_cert = (
        _certificate_builder(ca_name, ca_name, ca_key.public_key(), ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    server_cert = (
        _certificate_builder(server_name, ca_name, server_key.public_key(), ca_key.public_key())
        .add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path = directory / "server.crt"
    key_path = directory / "server.key"
    cert_path.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return {"certificate": str(cert_path), "key": str(key_path)}


def _certificate_builder(subject, issuer, public_key, issuer_public_key):
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key),
                       critical=False)
    )
