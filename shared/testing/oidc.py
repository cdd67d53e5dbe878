"""A hospital identity provider for tests: keys made by the test, published by a real HTTP(S) server on loopback.

``FakeIdentityProvider`` answers what an OpenID Connect provider publishes (its discovery document and its JWK
set, at Keycloak's paths); ``SigningKey`` signs the tokens it would issue. Nothing of the verification is mocked.
With ``sign_in``, it also signs a browser in as a public client would be (authorization code with PKCE S256):
``/auth`` redirects back with a code bound to the ``code_challenge``, ``/token`` checks the ``code_verifier``,
``redirect_uri`` and ``client_id`` (with CORS for the page's origin) and answers an access token for ``user``.
Its end-session endpoint sends the browser back to the page only with a valid ``id_token_hint`` (an ID token it
issued for that client), as Keycloak does without asking; without one it shows Keycloak's "Do you want to log out?".
``outage()`` takes it out of reach for a while, then back on the same port as it was.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import secrets
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from shared.devservers import port_of

REALM_PATH = "/realms/ward"
DISCOVERY_PATH = f"{REALM_PATH}/.well-known/openid-configuration"
JWKS_PATH = f"{REALM_PATH}/protocol/openid-connect/certs"
AUTH_PATH = f"{REALM_PATH}/protocol/openid-connect/auth"
TOKEN_PATH = f"{REALM_PATH}/protocol/openid-connect/token"
LOGOUT_PATH = f"{REALM_PATH}/protocol/openid-connect/logout"


@dataclass
class SignIn:
    """What the provider knows of the page it signs people in to, and who signs in (``user``: the claims of the
    access token besides iss, aud, exp, iat, jti; ``refuse``: the error the next sign-in is answered with)."""

    key: SigningKey
    client_id: str
    redirect_uri: str
    origin: str
    audience: str
    user: dict[str, Any]
    ttl_s: int = 600
    refuse: str | None = None
    # Whether it gives refresh tokens (each good once: a refresh answers a new one, as Keycloak's rotation does).
    refresh_tokens: bool = False
    refreshable: set[str] = field(default_factory=set)
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    exchanges: list[dict[str, str]] = field(default_factory=list)
    # Each sign-out: the hint's subject (None: no hint, hence the confirmation page) and where it went back to.
    sign_outs: list[dict[str, str | None]] = field(default_factory=list)


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
        # Bound from now but not listening (a connection is refused, as by a provider out of reach): no other
        # process can take the port that the services are told before the provider starts.
        self._held: socket.socket | None = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._held.bind(("127.0.0.1", 0))
        self.port = port_of(self._held)
        self.documents: dict[str, tuple[int, Any]] = {}
        self.requests: list[str] = []
        self.delay_s = 0.0
        self.sign_in: SignIn | None = None
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

    @property
    def base(self) -> str:
        return self.issuer.removesuffix(REALM_PATH)

    def publish(self, *keys: dict[str, Any]) -> None:
        """The key set, and the discovery document that names it."""
        self.documents[JWKS_PATH] = (200, {"keys": list(keys)})
        self.documents[DISCOVERY_PATH] = (200, {"issuer": self.issuer, "jwks_uri": self.jwks_url})

    def enable_sign_in(
        self, key: SigningKey, *, client_id: str, redirect_uri: str, audience: str, user: dict[str, Any]
    ) -> SignIn:
        """Publish ``key`` and sign people in to the page at ``redirect_uri`` (a public client, PKCE S256)."""
        parts = urlsplit(redirect_uri)
        self.sign_in = SignIn(key, client_id, redirect_uri, f"{parts.scheme}://{parts.netloc}", audience, user)
        self.publish(key.jwk)
        self.documents[DISCOVERY_PATH][1].update(
            authorization_endpoint=self.base + AUTH_PATH,
            token_endpoint=self.base + TOKEN_PATH,
            end_session_endpoint=self.base + LOGOUT_PATH,
            code_challenge_methods_supported=["S256"],
        )
        return self.sign_in

    def access_token(self, **overrides: Any) -> str:
        assert self.sign_in is not None
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.sign_in.audience,
            "iat": now,
            "exp": now + self.sign_in.ttl_s,
            "jti": str(uuid.uuid4()),
            **self.sign_in.user,
            **overrides,
        }
        return self.sign_in.key.sign(claims)

    def _authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        """The browser comes to sign in: back to the page with a code, or with the error the test set."""
        sign_in = self.sign_in
        if sign_in is None or query.get("client_id") != sign_in.client_id:
            return 400, {}, b"unknown client"
        if query.get("redirect_uri") != sign_in.redirect_uri:
            return 400, {}, b"redirect_uri not registered"
        back: dict[str, str] = {}
        if sign_in.refuse is not None:
            back["error"] = sign_in.refuse
        elif (
            query.get("response_type") != "code"
            or query.get("code_challenge_method") != "S256"
            or not query.get("code_challenge")
        ):
            back["error"] = "invalid_request"
        else:
            code = secrets.token_urlsafe(24)
            sign_in.codes[code] = {
                "challenge": query["code_challenge"],
                "nonce": query.get("nonce", ""),
                "scope": query.get("scope", ""),
            }
            back["code"] = code
        if "state" in query:
            back["state"] = query["state"]
        return 302, {"Location": f"{sign_in.redirect_uri}?{urlencode(back)}"}, b""

    def _token(self, form: dict[str, str]) -> tuple[int, Any]:
        sign_in = self.sign_in
        if sign_in is None:
            return 404, {"error": "not found"}
        sign_in.exchanges.append({k: v for k, v in form.items() if k in ("grant_type", "client_id", "redirect_uri")})
        if form.get("grant_type") == "refresh_token":
            token = form.get("refresh_token", "")
            if token not in sign_in.refreshable or form.get("client_id") != sign_in.client_id:
                return 400, {"error": "invalid_grant"}
            sign_in.refreshable.discard(token)
            return 200, self._tokens(sign_in)
        pending = sign_in.codes.pop(form.get("code", ""), None)  # a code is good once
        if form.get("grant_type") != "authorization_code" or pending is None:
            return 400, {"error": "invalid_grant"}
        if form.get("client_id") != sign_in.client_id or form.get("redirect_uri") != sign_in.redirect_uri:
            return 400, {"error": "invalid_grant", "error_description": "client_id or redirect_uri differ"}
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if not verifier or challenge != pending["challenge"]:
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        now = int(time.time())
        id_token = sign_in.key.sign(
            {
                "iss": self.issuer,
                "aud": sign_in.client_id,
                "sub": sign_in.user["sub"],
                "iat": now,
                "exp": now + sign_in.ttl_s,
                "nonce": pending["nonce"],
            }
        )
        return 200, {**self._tokens(sign_in), "id_token": id_token, "scope": pending["scope"]}

    def _end_session(self, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        """RP-initiated logout: back to the page at once with a hint this provider issued for that client; without
        a hint, the confirmation page (the browser stays there); with a hint that is not one, or another client's
        address, an error page."""
        sign_in = self.sign_in
        assert sign_in is not None
        back = query.get("post_logout_redirect_uri", "")
        if back != sign_in.redirect_uri or query.get("client_id", sign_in.client_id) != sign_in.client_id:
            return 400, {}, b"post_logout_redirect_uri or client_id not registered"
        hint = query.get("id_token_hint")
        if hint is None:
            sign_in.sign_outs.append({"sub": None, "back": None})
            page = b"<!doctype html><title>Logging out</title><p>Do you want to log out?</p><button>Logout</button>"
            return 200, {"Content-Type": "text/html; charset=utf-8"}, page
        try:
            claims = jwt.decode(
                hint,
                sign_in.key.private.public_key(),
                algorithms=[sign_in.key.alg],
                audience=sign_in.client_id,
                issuer=self.issuer,
                options={"verify_exp": False, "require": ["sub"]},  # an expired ID token still names the session
            )
        except jwt.PyJWTError:
            return 400, {}, b"invalid id_token_hint"
        sign_in.sign_outs.append({"sub": claims["sub"], "back": back})
        return 302, {"Location": back}, b""

    def _tokens(self, sign_in: SignIn) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "access_token": self.access_token(),
            "token_type": "Bearer",
            "expires_in": sign_in.ttl_s,
        }
        if sign_in.refresh_tokens:
            answer["refresh_token"] = secrets.token_urlsafe(32)
            sign_in.refreshable.add(answer["refresh_token"])
        return answer

    def __enter__(self) -> FakeIdentityProvider:
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                state.requests.append(path)
                time.sleep(state.delay_s)
                if path == AUTH_PATH:
                    self._answer(*state._authorize({k: v[0] for k, v in parse_qs(query).items()}))
                    return
                if path == LOGOUT_PATH and state.sign_in is not None:
                    self._answer(*state._end_session({k: v[0] for k, v in parse_qs(query).items()}))
                    return
                status, body = state.documents.get(path, (404, {"error": "not found"}))
                self._answer(status, {"Content-Type": "application/json"}, json.dumps(body).encode())

            def do_OPTIONS(self) -> None:  # the page's preflight, before its POST to the token endpoint
                self._answer(204, self._cors(), b"")

            def do_POST(self) -> None:
                path = self.path.partition("?")[0]
                state.requests.append(path)
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                status, body = state._token(form) if path == TOKEN_PATH else (404, {"error": "not found"})
                headers = {"Content-Type": "application/json", "Cache-Control": "no-store", **self._cors()}
                self._answer(status, headers, json.dumps(body).encode())

            def _cors(self) -> dict[str, str]:
                origin = self.headers.get("Origin")
                if state.sign_in is None or origin != state.sign_in.origin:
                    return {}
                return {
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Methods": "POST",
                    "Access-Control-Allow-Headers": "Content-Type",
                    "Vary": "Origin",
                }

            def _answer(self, status: int, headers: dict[str, str], raw: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                try:
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client left first (a service that timed out, a page navigated away): nothing to answer

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler, bind_and_activate=False)
        if self._held is not None:
            server.socket.close()
            server.socket, self._held = self._held, None
        else:
            server.server_bind()
        server.server_activate()
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

    @contextmanager
    def outage(self) -> Iterator[FakeIdentityProvider]:
        """Out of reach for the block (nothing listens on its port: a connection is refused), then serving again
        on the same port, with what it knew (its keys, its clients, the sign-ins under way)."""
        self.__exit__()
        try:
            yield self
        finally:
            self.__enter__()


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
