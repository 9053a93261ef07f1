"""A small token issuer for distribution's ``auth: token``, signing JWTs with a test key.

It plays the part Docker Hub's, Harbor's or GitLab's token service plays: Basic
credentials in, a short-lived Bearer token for the requested scopes out.
"""

import base64
import datetime
import json
import secrets
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from support.local_server import LocalServer

SERVICE = "oci-registry-trash-tests"
ISSUER = "oci-registry-trash-test-issuer"
TOKEN_SECONDS = 300


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenIssuer(LocalServer):
    """Serves ``GET /token`` on 127.0.0.1; ``seen`` records (path, had Basic credentials)."""

    def __init__(self, workdir, users):
        self.users = dict(users)
        self.seen = []
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=30))
                     .sign(self.key, hashes.SHA256()))
        self.bundle_path = workdir / "token-rootcertbundle.pem"
        self.bundle_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        super().__init__(self._handler())

    @property
    def realm(self):
        return "http://%s/token" % self.address

    def registry_auth_config(self):
        return {"token": {"realm": self.realm, "service": SERVICE, "issuer": ISSUER,
                          "rootcertbundle": str(self.bundle_path)}}

    def issue(self, subject, scopes):
        header = {"typ": "JWT", "alg": "ES256",
                  "x5c": [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]}
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": subject, "aud": SERVICE, "iat": now, "nbf": now - 5,
                  "exp": now + TOKEN_SECONDS, "jti": secrets.token_hex(8), "access": [
                      {"type": kind, "name": name, "actions": actions.split(",")}
                      for kind, name, actions in (scope.split(":", 2) for scope in scopes)]}
        signing_input = "%s.%s" % (_b64url(json.dumps(header).encode()), _b64url(json.dumps(claims).encode()))
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return signing_input + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def _handler(self):
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urlsplit(self.path)
                authorization = self.headers.get("Authorization", "")
                issuer.seen.append((url.path, authorization.startswith("Basic ")))
                subject = ""
                if authorization.startswith("Basic "):
                    user, _colon, password = base64.b64decode(authorization[6:]).decode().partition(":")
                    if issuer.users.get(user) != password:
                        return self._answer(401, {"errors": [{"code": "UNAUTHORIZED",
                                                              "message": "wrong user name or password"}]})
                    subject = user
                # Anonymous callers get a token that grants nothing, as public services do.
                scopes = parse_qs(url.query).get("scope", []) if subject else []
                self._answer(200, {"token": issuer.issue(subject, scopes), "expires_in": TOKEN_SECONDS})

            def _answer(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        return Handler
