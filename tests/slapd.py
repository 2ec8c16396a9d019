"""A real OpenLDAP server for tests: Debian's slapd on a free loopback port, with an mdb
database in a temporary folder, seeded and changed through ldap3 as its root DN, stopped at
the end. Users are inetOrgPersons under ou=people, groups groupOfNames (member: user DNs, as
Active Directory keeps them) under ou=groups."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import ldap3

from tests.live_server import free_port

SLAPD = "/usr/sbin/slapd"
SUFFIX = "dc=example,dc=org"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "root-secret-for-tests"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"

_CONFIG = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {folder}/slapd.pid
database mdb
maxsize 10485760
suffix "{suffix}"
rootdn "{root_dn}"
rootpw {root_password}
directory {folder}/db
access to attrs=userPassword by self write by anonymous auth by * none
access to * by users read by * none
"""


class Slapd:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"ldap://127.0.0.1:{self.port}"
        (folder / "db").mkdir(parents=True)
        self._config = folder / "slapd.conf"
        self._config.write_text(
            _CONFIG.format(
                folder=folder, suffix=SUFFIX, root_dn=ROOT_DN, root_password=ROOT_PASSWORD
            )
        )
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Slapd:
        # -d 0: in the foreground, so the test owns the process and stops it.
        self._log = (self.folder / "slapd.log").open("wb")
        self._process = subprocess.Popen(
            [SLAPD, "-h", f"{self.url}/", "-f", str(self._config), "-d", "0"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                with self._root():
                    break
            except ldap3.core.exceptions.LDAPException:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    said = (self.folder / "slapd.log").read_text(errors="replace")
                    raise RuntimeError(f"slapd did not start: {said}") from None
                time.sleep(0.1)
        with self._root() as root:
            root.add(SUFFIX, ["dcObject", "organization"], {"o": "Example", "dc": "example"})
            root.add(PEOPLE, ["organizationalUnit"], {"ou": "people"})
            root.add(GROUPS, ["organizationalUnit"], {"ou": "groups"})
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._log.close()

    def _root(self) -> ldap3.Connection:
        server = ldap3.Server(self.url, get_info=ldap3.NONE, connect_timeout=2)
        return ldap3.Connection(server, ROOT_DN, ROOT_PASSWORD, auto_bind=True)

    @staticmethod
    def user_dn(uid: str) -> str:
        return f"uid={uid},{PEOPLE}"

    def add_user(self, uid: str, password: str) -> None:
        with self._root() as root:
            assert root.add(
                self.user_dn(uid),
                ["inetOrgPerson"],
                {"uid": uid, "cn": uid, "sn": uid, "userPassword": password},
            ), root.result

    def add_group(self, cn: str, *members: str) -> None:
        with self._root() as root:
            # groupOfNames needs a member: the root DN stands in for an empty group.
            dns = [self.user_dn(m) for m in members] or [ROOT_DN]
            assert root.add(f"cn={cn},{GROUPS}", ["groupOfNames"], {"cn": cn, "member": dns}), (
                root.result
            )

    def add_posix_group(self, cn: str, gid: int, *uids: str) -> None:
        """A posixGroup, whose members are named by uid (memberUid), as Unix directories do."""
        with self._root() as root:
            attributes = {"cn": cn, "gidNumber": gid, "memberUid": list(uids)}
            assert root.add(f"cn={cn},{GROUPS}", ["posixGroup"], attributes), root.result

    def remove_member(self, cn: str, uid: str) -> None:
        with self._root() as root:
            change = {"member": [(ldap3.MODIFY_DELETE, [self.user_dn(uid)])]}
            assert root.modify(f"cn={cn},{GROUPS}", change), root.result

    def add_member(self, cn: str, uid: str) -> None:
        with self._root() as root:
            change = {"member": [(ldap3.MODIFY_ADD, [self.user_dn(uid)])]}
            assert root.modify(f"cn={cn},{GROUPS}", change), root.result
