"""A standards-speaking OpenID Connect provider for tests, built on authlib's server
components (the authorization code grant with its OpenID Connect extension, PKCE required,
bearer tokens), served over real HTTP by uvicorn on a loopback port: discovery, JWKS, an
authorize endpoint with its own login form, token and userinfo. What Keycloak, Entra ID or
Authentik do for Citadel, minus consent screens.

Tests change its users and their groups as a directory administrator would, and can make it
misbehave the way a forged or broken provider would (`forge`: ID tokens signed by a key its
JWKS does not publish, or for another nonce, another audience, or expired)."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl

import httpx
import uvicorn
from authlib.oauth2.rfc6749 import AuthorizationServer, ClientMixin, OAuth2Request
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from tests.live_server import ThreadedServer, free_port

CLIENT_ID = "citadel"
CLIENT_SECRET = "client-secret-for-tests"


@dataclass
class Person:
    sub: str
    username: str
    password: str
    groups: list[str]


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    client_secret: str
    redirect_uris: list[str] = field(default_factory=list)

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in scope.split() if s in {"openid", "profile", "email", "groups"})

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris  # exact match, as providers do

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "client_secret_basic"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    person: Person
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None

    def is_expired(self) -> bool:
        return time.time() - self.auth_time > 600


class _Request(OAuth2Request):  # type: ignore[misc]
    def __init__(self, method: str, uri: str, headers: Any, data: dict[str, str]) -> None:
        super().__init__(method, uri, headers=headers)
        self._data = data
        self.payload = BasicOAuth2Payload(data)

    @property
    def args(self) -> dict[str, str]:
        return self._data

    @property
    def form(self) -> dict[str, str]:
        return self._data


class Provider:
    """The provider, its users, and the uvicorn server that serves it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.people: dict[str, Person] = {}
        self.client = Client(CLIENT_ID, CLIENT_SECRET)
        self.groups_in_id_token = True
        self.forge: Literal["key", "nonce", "audience", "expired"] | None = None
        self.codes: dict[str, Code] = {}
        self.tokens: dict[str, Person] = {}
        self._key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"})
        self._rogue = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"})
        self._server = self._authorization_server()
        app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self._discovery),
                Route("/jwks", self._jwks),
                Route("/authorize", self._authorize, methods=["GET", "POST"]),
                Route("/token", self._token, methods=["POST"]),
                Route("/userinfo", self._userinfo),
            ]
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self._uvicorn = ThreadedServer(config, f"{self.issuer}/jwks")

    def __enter__(self) -> Provider:
        self._uvicorn.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._uvicorn.stop()

    def add_person(self, username: str, password: str, groups: list[str]) -> Person:
        person = Person(f"id-{secrets.token_hex(4)}", username, password, groups)
        self.people[username] = person
        return person

    def allow_redirect(self, url: str) -> None:
        self.client.redirect_uris.append(url)

    # -- authlib's server, as a framework integration builds it ----------------------------
    def _authorization_server(self) -> AuthorizationServer:
        provider = self

        class Server(AuthorizationServer):  # type: ignore[misc]
            def query_client(self, client_id: str) -> Client | None:
                return provider.client if client_id == provider.client.client_id else None

            def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
                provider.tokens[token["access_token"]] = request.user

            def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
                return request

            def handle_response(self, status: int, body: Any, headers: Any) -> Response:
                headers = dict(headers)
                if isinstance(body, dict):
                    return JSONResponse(body, status, headers)
                return Response(body or "", status, headers)

            def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
                pass

        class Grant(AuthorizationCodeGrant):  # type: ignore[misc]
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic"]  # noqa: RUF012

            def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
                data = request.payload.data
                provider.codes[code] = Code(
                    code,
                    request.client.client_id,
                    request.payload.redirect_uri,
                    request.payload.scope,
                    request.user,
                    data.get("nonce"),
                    data.get("code_challenge"),
                    data.get("code_challenge_method"),
                )

            def query_authorization_code(self, code: str, client: Client) -> Code | None:
                found = provider.codes.get(code)
                if found and found.client_id == client.client_id and not found.is_expired():
                    return found
                return None

            def delete_authorization_code(self, authorization_code: Code) -> None:
                provider.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: Code) -> Person:
                return authorization_code.person

        class OpenId(OpenIDCode):  # type: ignore[misc]
            def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
                return any(c.nonce == nonce for c in provider.codes.values())

            def resolve_client_private_key(self, client: Client) -> KeySet:
                return KeySet([provider._rogue if provider.forge == "key" else provider._key])

            def get_client_algorithm(self, client: Client) -> str:
                return "RS256"

            def get_encode_header(self, client: Client) -> dict[str, str]:
                return {"alg": "RS256", "kid": "k1"}

            def get_client_claims(self, client: Client) -> dict[str, Any]:
                claims: dict[str, Any] = {"iss": provider.issuer, "aud": [client.client_id]}
                if provider.forge == "audience":
                    claims["aud"] = ["another-client"]
                if provider.forge == "expired":
                    claims["exp"] = int(time.time()) - 3600
                return claims

            def get_authorization_code_claims(self, authorization_code: Code) -> dict[str, Any]:
                claims: dict[str, Any] = super().get_authorization_code_claims(authorization_code)
                if provider.forge == "nonce":
                    claims["nonce"] = "a-nonce-of-another-sign-in"
                return claims

            def generate_user_info(self, user: Person, scope: str) -> UserInfo:
                return provider.user_info(user, in_id_token=True)

        server = Server()
        server.register_grant(Grant, [CodeChallenge(required=True), OpenId(require_nonce=True)])
        server.register_token_generator(
            "default", BearerTokenGenerator(lambda *a, **k: secrets.token_urlsafe(24))
        )
        return server

    def user_info(self, person: Person, in_id_token: bool = False) -> UserInfo:
        info = UserInfo(sub=person.sub, preferred_username=person.username)
        if self.groups_in_id_token or not in_id_token:
            info["groups"] = list(person.groups)
        return info

    # -- the endpoints -----------------------------------------------------------------
    async def _discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "userinfo_endpoint": f"{self.issuer}/userinfo",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            }
        )

    async def _jwks(self, request: Request) -> Response:
        return JSONResponse(KeySet([self._key]).as_dict(private=False))

    async def _authorize(self, request: Request) -> Response:
        """GET: the provider's login form. POST (the form, with the same query): signs the
        person in and sends the browser back to the client with a code, or with
        error=access_denied for a wrong password."""
        args = dict(request.query_params)
        oauth = _Request(request.method, str(request.url), request.headers, args)
        if request.method == "GET":
            return HTMLResponse("<form method=post><input name=username><input name=password>")
        form = dict(parse_qsl((await request.body()).decode()))
        person = self.people.get(form.get("username", ""))
        if person is None or not secrets.compare_digest(person.password, form.get("password", "")):
            person = None
        grant = self._server.get_consent_grant(request=oauth, end_user=person)
        response: Response = self._server.create_authorization_response(
            oauth, grant_user=person, grant=grant
        )
        return response

    async def _token(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        oauth = _Request("POST", str(request.url), request.headers, form)
        response: Response = self._server.create_token_response(oauth)
        return response

    async def _userinfo(self, request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        person = self.tokens.get(token) if scheme.lower() == "bearer" else None
        if person is None:
            return JSONResponse({"error": "invalid_token"}, 401)
        return JSONResponse(dict(self.user_info(person)))


def redirected(response: httpx.Response) -> str:
    assert response.status_code in (302, 303), (response.status_code, response.text)
    return response.headers["location"]
