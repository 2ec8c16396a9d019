"""OpenID Connect login (authorization code with PKCE) through authlib's client, with the
provider's metadata from its discovery document.

`begin` makes the authorization URL and keeps what the callback needs (state, nonce, PKCE
verifier) here on the server, keyed by the state, which the browser also carries in a
short-lived cookie: a callback is accepted once, within `PENDING_S`, from the browser that
started it. `finish` exchanges the code and verifies the ID token: its signature with the
provider's published keys (JWKS), its issuer, audience, expiry and nonce. Groups come from
the ID token, or from the userinfo endpoint when the token does not carry them.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.integrations.httpx_client import OAuth2Client, OAuthError
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from rag.settings import OidcSettings
from rag.text import escape_invisible
from ui.service.sso import Identity, ProviderUnavailable, SsoRefused, as_groups

log = logging.getLogger(__name__)

PENDING_S = 600.0  # a sign-in at the provider must end within this time
MAX_PENDING = 2000  # sign-ins started and not finished, kept at most (the oldest go first)
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")
LEEWAY_S = 60  # clocks of the provider and of Citadel may differ this much
UNREACHABLE = "the sign-in service cannot be reached right now; try again in a few minutes"
EXPIRED = "this sign-in was not started here or took too long: start it again"


@dataclass(frozen=True)
class _Pending:
    nonce: str
    verifier: str
    redirect_url: str
    started: float


class OidcLogin:
    def __init__(self, settings: OidcSettings, clock: Callable[[], float] = time.time) -> None:
        assert settings.issuer is not None
        self._s = settings
        self._issuer = settings.issuer
        self._clock = clock
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None

    @property
    def label(self) -> str:
        return self._s.label

    def begin(self, redirect_url: str) -> tuple[str, str]:
        """The provider's authorization URL to send the browser to, and the state the
        browser must bring back (kept in its cookie)."""
        redirect_url = self._s.redirect_url or redirect_url
        metadata = self._discover()
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)  # 64 characters: RFC 7636 wants 43 to 128
        with self._client(redirect_url) as client:
            url, _ = client.create_authorization_url(
                metadata["authorization_endpoint"],
                state=state,
                code_verifier=verifier,
                nonce=nonce,
            )
        with self._lock:
            self._expire()
            self._pending[state] = _Pending(nonce, verifier, redirect_url, self._clock())
            while len(self._pending) > MAX_PENDING:
                self._pending.popitem(last=False)
        return str(url), state

    def finish(self, cookie_state: str | None, params: dict[str, str]) -> Identity:
        """The user the provider signed in, from the callback's query parameters."""
        state = params.get("state", "")
        if not cookie_state or not hmac.compare_digest(cookie_state, state):
            raise SsoRefused(EXPIRED)
        with self._lock:
            self._expire()
            pending = self._pending.pop(state, None)  # once only
        if pending is None:
            raise SsoRefused(EXPIRED)
        if "error" in params:
            said = escape_invisible(
                " ".join(v for v in (params["error"], params.get("error_description")) if v)
            )[:200]
            raise SsoRefused(f"the sign-in service refused the sign-in: {said}")
        code = params.get("code", "")
        if not code or len(code) > 2048:
            raise SsoRefused("the sign-in service sent no usable authorization code")
        metadata = self._discover()
        try:
            with self._client(pending.redirect_url) as client:
                token = client.fetch_token(
                    metadata["token_endpoint"], code=code, code_verifier=pending.verifier
                )
                claims = self._verified(str(token.get("id_token", "")), pending.nonce)
                if self._s.groups_claim not in claims and metadata.get("userinfo_endpoint"):
                    claims = {**self._userinfo(client, metadata, claims), **claims}
        except OAuthError as exc:
            log.warning("the OIDC token request failed: %s", exc)
            said = escape_invisible(str(exc))[:200]
            raise SsoRefused(f"the sign-in service refused Citadel's request ({said})") from exc
        except httpx.HTTPError as exc:
            log.warning("the OIDC provider %s failed: %s", self._issuer, exc)
            raise ProviderUnavailable(UNREACHABLE) from exc
        return self._identity(claims)

    # -- the provider's metadata and keys ----------------------------------------------------
    def _discover(self) -> dict[str, Any]:
        """The discovery document, fetched at the first sign-in (not at start: the server
        starts while the provider is down) and kept."""
        if self._metadata is None:
            metadata = self._get_json(f"{self._issuer}/.well-known/openid-configuration")
            if metadata.get("issuer") != self._issuer:  # OpenID Connect Discovery, 4.3
                raise ProviderUnavailable(
                    f"the sign-in service calls itself {metadata.get('issuer')!r}, not "
                    f"{self._issuer!r} (sso.oidc.issuer)"
                )
            for needed in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(metadata.get(needed), str):
                    raise ProviderUnavailable(f"the sign-in service publishes no {needed}")
            self._metadata = metadata
        return self._metadata

    def _signing_keys(self, refresh: bool) -> KeySet:
        if self._keys is None or refresh:
            try:
                published = self._get_json(self._discover()["jwks_uri"])
                self._keys = KeySet.import_key_set(published)  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError) as exc:
                raise ProviderUnavailable("the sign-in service's keys (JWKS) are unusable") from exc
        return self._keys

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            with self._http() as http:
                response = http.get(url)
                response.raise_for_status()
                loaded = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("the OIDC provider's %s failed: %s", url, exc)
            raise ProviderUnavailable(UNREACHABLE) from exc
        if not isinstance(loaded, dict):
            raise ProviderUnavailable(f"the sign-in service's {url} is not a JSON object")
        return loaded

    # -- the token -----------------------------------------------------------------------
    def _verified(self, id_token: str, nonce: str) -> dict[str, Any]:
        if not id_token or len(id_token) > 64 * 1024:
            raise SsoRefused("the sign-in service sent no ID token (is `openid` a scope?)")
        try:
            try:
                decoded = jwt.decode(id_token, self._signing_keys(False), SIGNING_ALGORITHMS)
            except JoseError:
                # A key rotated since the keys were fetched: fetch them again, once.
                decoded = jwt.decode(id_token, self._signing_keys(True), SIGNING_ALGORITHMS)
            jwt.JWTClaimsRegistry(
                now=int(self._clock()),
                leeway=LEEWAY_S,
                iss={"essential": True, "value": self._issuer},
                aud={"essential": True, "value": self._s.client_id},
                exp={"essential": True},
                sub={"essential": True},
                nonce={"essential": True, "value": nonce},
            ).validate(decoded.claims)
        except (JoseError, ValueError) as exc:
            log.warning("an ID token from %s was refused: %s", self._issuer, exc)
            raise SsoRefused(f"the sign-in service's ID token is not valid ({exc})") from exc
        claims = dict(decoded.claims)
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self._s.client_id:  # OIDC Core 3.1.3.7
            raise SsoRefused("the sign-in service's ID token was issued to another client")
        return claims

    def _userinfo(
        self, client: OAuth2Client, metadata: dict[str, Any], claims: dict[str, Any]
    ) -> dict[str, Any]:
        response = client.get(metadata["userinfo_endpoint"])
        response.raise_for_status()
        info = response.json()
        # OIDC Core 5.3.2: the userinfo's sub must be the ID token's, or it is not used.
        if not isinstance(info, dict) or info.get("sub") != claims["sub"]:
            raise SsoRefused("the sign-in service's userinfo names another user")
        return info

    def _identity(self, claims: dict[str, Any]) -> Identity:
        name = claims.get(self._s.username_claim)
        if not isinstance(name, str) or not name:
            raise SsoRefused(
                f"the sign-in service gave no {self._s.username_claim!r} "
                "(sso.oidc.username_claim) for this user"
            )
        groups = as_groups(claims.get(self._s.groups_claim))
        return Identity("oidc", f"{self._issuer}|{claims['sub']}", name, groups)

    # -- helpers ---------------------------------------------------------------------------
    def _expire(self) -> None:
        oldest = self._clock() - PENDING_S
        for state in [s for s, p in self._pending.items() if p.started < oldest]:
            del self._pending[state]

    def _verify(self) -> str | bool:
        return str(self._s.ca_file) if self._s.ca_file else True

    def _http(self) -> httpx.Client:
        # trust_env off: the provider is reached directly, never through a proxy named by
        # the environment.
        return httpx.Client(timeout=self._s.timeout_s, verify=self._verify(), trust_env=False)

    def _client(self, redirect_url: str) -> OAuth2Client:
        secret = self._s.client_secret
        return OAuth2Client(
            client_id=self._s.client_id,
            client_secret=secret.get_secret_value() if secret else None,
            token_endpoint_auth_method="client_secret_basic" if secret else "none",
            scope=" ".join(dict.fromkeys(["openid", *self._s.scopes])),
            redirect_uri=redirect_url,
            code_challenge_method="S256",
            timeout=self._s.timeout_s,
            verify=self._verify(),
            trust_env=False,
        )
