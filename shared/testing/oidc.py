"""A hospital identity provider for tests: keys made by the test, published by a real HTTP(S) server on loopback.

``FakeIdentityProvider`` answers what an OpenID Connect provider publishes (its discovery document and its JWK
set, at Keycloak's paths); ``SigningKey`` signs the tokens it would issue. Nothing of the verification is mocked.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from shared.devservers import free_port

REALM_PATH = "/realms/ward"
DISCOVERY_PATH = f"{REALM_PATH}/.well-known/openid-configuration"
JWKS_PATH = f"{REALM_PATH}/protocol/openid-connect/certs"


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: Any

    @classmethod
    def rsa(cls, kid: str, alg: str = "RS256") -> SigningKey:
        return cls(kid, alg, rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @classmethod
    def ec(cls, kid: str, alg: str = "ES256") -> SigningKey:
        return cls(kid, alg, ec.generate_private_key(ec.SECP256R1()))

    @property
    def jwk(self) -> dict[str, Any]:
        kind = RSAAlgorithm if self.alg.startswith(("RS", "PS")) else ECAlgorithm
        return {**json.loads(kind.to_jwk(self.private.public_key())), "kid": self.kid, "use": "sig", "alg": self.alg}

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(claims, self.private, algorithm=self.alg, headers={"kid": self.kid, **header})


class FakeIdentityProvider:
    """``with FakeIdentityProvider() as idp``: serving on a free loopback port until the block ends. With
    ``tls_dir``, over HTTPS with a self-signed certificate for 127.0.0.1 (``ca_file``, for SSL_CERT_FILE).
    Not started, it stands for a provider out of reach (nothing listens on its port)."""

    def __init__(self, *, tls_dir: Path | None = None) -> None:
        self.port = free_port()
        self.documents: dict[str, tuple[int, Any]] = {}
        self.requests: list[str] = []
        self.delay_s = 0.0
        self.ca_file = self_signed_certificate(tls_dir) if tls_dir is not None else None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def issuer(self) -> str:
        scheme = "https" if self.ca_file is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}{REALM_PATH}"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer.removesuffix(REALM_PATH)}{JWKS_PATH}"

    def publish(self, *keys: dict[str, Any]) -> None:
        """The key set, and the discovery document that names it."""
        self.documents[JWKS_PATH] = (200, {"keys": list(keys)})
        self.documents[DISCOVERY_PATH] = (200, {"issuer": self.issuer, "jwks_uri": self.jwks_url})

    def __enter__(self) -> FakeIdentityProvider:
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                state.requests.append(self.path)
                time.sleep(state.delay_s)
                status, body = state.documents.get(self.path, (404, {"error": "not found"}))
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        if self.ca_file is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.ca_file, self.ca_file.with_suffix(".key"))
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def self_signed_certificate(directory: Path) -> Path:
    """A certificate for 127.0.0.1 (``<directory>/idp.pem``, its key beside it as ``idp.key``), its own CA."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "oncofollow test identity provider")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = directory / "idp.pem"
    pem.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    pem.with_suffix(".key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return pem
