"""Login with a directory password (LDAP, Active Directory) through ldap3: the user is found
(with the service account `bind_dn`, or bound directly through `user_dn_template`), their
password is checked by binding as them, and their groups are searched (groups whose `member`
is the user's DN, or posixGroups whose `memberUid` is the name: `group_filter`).

Every value put in a filter or a DN is escaped, so a user name cannot widen a search. An
empty password is refused before the directory sees it: LDAP takes a simple bind without a
password as an anonymous bind, which would succeed.
"""

from __future__ import annotations

import logging
import math
import ssl
from typing import Any

import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from rag.settings import LdapSettings
from ui.service.sso import Identity, ProviderUnavailable, as_groups

log = logging.getLogger(__name__)

# Bind results that mean "not these credentials" (or this account may not log in now), as
# opposed to a directory that does not work.
_REFUSED = {
    49,  # invalidCredentials (Active Directory: also disabled, expired, locked)
    50,  # insufficientAccessRights
    53,  # unwillingToPerform
}
UNREACHABLE = "the company directory cannot be reached right now; try again in a few minutes"


class Directory:
    def __init__(self, settings: LdapSettings) -> None:
        assert settings.url is not None
        self._s = settings
        tls = None
        if settings.url.startswith("ldaps://") or settings.start_tls:
            tls = ldap3.Tls(
                validate=ssl.CERT_REQUIRED,
                ca_certs_file=str(settings.ca_file) if settings.ca_file else None,
            )
        self._server = ldap3.Server(
            settings.url,
            use_ssl=settings.url.startswith("ldaps://"),
            tls=tls,
            get_info=ldap3.NONE,
            connect_timeout=settings.timeout_s,
        )

    def authenticate(self, username: str, password: str) -> Identity | None:
        """The user with their groups when the directory accepts the password; None when it
        does not (or knows no such user). ProviderUnavailable when it cannot be asked."""
        if not username or not password:
            return None
        try:
            return self._authenticate(username, password)
        except LDAPException as exc:
            log.warning("LDAP login of %r failed at %s: %s", username, self._s.url, exc)
            raise ProviderUnavailable(UNREACHABLE) from exc

    def _authenticate(self, username: str, password: str) -> Identity | None:
        s = self._s
        if s.bind_dn:
            password_s = s.bind_password.get_secret_value() if s.bind_password else ""
            with self._bound(s.bind_dn, password_s, service=True) as service:
                assert service is not None
                user_dn = self._find_user(service, username)
                if user_dn is None:
                    return None
                with self._bound(user_dn, password) as user:
                    if user is None:
                        return None
                return self._identity(service, username, user_dn)
        assert s.user_dn_template is not None
        bound_as = s.user_dn_template.format(username=escape_rdn(username))
        with self._bound(bound_as, password) as user:
            if user is None:
                return None
            user_dn = (self._find_user(user, username) if s.user_base else None) or bound_as
            return self._identity(user, username, user_dn)

    def _bound(self, who: str, password: str, service: bool = False) -> _Binding:
        connection = ldap3.Connection(
            self._server,
            user=who,
            password=password,
            auto_bind=ldap3.AUTO_BIND_NONE,
            read_only=True,
            receive_timeout=math.ceil(self._s.timeout_s),  # whole seconds: a socket option
            raise_exceptions=False,
        )
        return _Binding(connection, self._s.start_tls, service)

    def _find_user(self, connection: ldap3.Connection, username: str) -> str | None:
        query = self._s.user_filter.format(username=escape_filter_chars(username))
        connection.search(self._s.user_base, query, ldap3.SUBTREE, attributes=[], size_limit=2)
        found = [e["dn"] for e in connection.response or [] if e.get("type") == "searchResEntry"]
        # Two entries for one name: a filter too wide to tell who logs in, so nobody does.
        return str(found[0]) if len(found) == 1 else None

    def _identity(self, connection: ldap3.Connection, username: str, user_dn: str) -> Identity:
        s = self._s
        query = s.group_filter.format(
            user_dn=escape_filter_chars(user_dn), username=escape_filter_chars(username)
        )
        connection.search(
            s.group_base or s.user_base, query, ldap3.SUBTREE, attributes=[s.group_name_attribute]
        )
        result = connection.result or {}
        if result.get("result") not in (0, 32):  # 32: noSuchObject (no base)
            raise ProviderUnavailable(
                f"the directory refused to list your groups ({result.get('description')})"
            )
        groups: set[str] = set()
        for entry in connection.response or []:
            if entry.get("type") == "searchResEntry":
                groups |= as_groups(entry["attributes"].get(s.group_name_attribute))
        return Identity("ldap", user_dn.lower(), username, frozenset(groups))


class _Binding:
    """A connection bound as one account for the time of a `with` block: None inside when
    the directory refused the credentials (ProviderUnavailable for the service account)."""

    def __init__(self, connection: ldap3.Connection, start_tls: bool, service: bool) -> None:
        self._connection = connection
        self._start_tls = start_tls
        self._service = service

    def __enter__(self) -> ldap3.Connection | None:
        c = self._connection
        c.open()
        if self._start_tls and not c.start_tls():
            raise ProviderUnavailable("the directory refused StartTLS (sso.ldap.start_tls)")
        if c.bind():
            return c
        result: dict[str, Any] = c.result or {}
        if result.get("result") not in _REFUSED:
            raise LDAPException(f"bind failed: {result.get('description')}")
        if self._service:
            log.error("the directory refused sso.ldap.bind_dn: %s", result.get("description"))
            raise ProviderUnavailable(
                "Citadel cannot sign in to the company directory (its service account was "
                "refused): tell an administrator"
            )
        return None

    def __exit__(self, *exc: object) -> None:
        self._connection.unbind()
