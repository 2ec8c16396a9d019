"""What every command shares: the settings read once by the app's callback (kept in Typer's
context object, not in a global), the consoles, the store or the server it works through,
the metadata database, and the common options."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from rag.settings import Settings
from rag.wiring import Services

if TYPE_CHECKING:
    from ui.cli.remote import RemoteCitadel
    from ui.metadata import Metadata

CollectionOpt = Annotated[str, typer.Option("--collection", "-c", help="Collection name.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


@dataclass(frozen=True)
class Cli:
    settings: Settings

    def services(self) -> Services:
        """The data directory's store and models, opened by this process."""
        return Services(self.settings)

    def remote(self) -> RemoteCitadel | None:
        """The running server to go through, when `server.url` is configured."""
        server = self.settings.server
        if not server.url:
            return None
        from ui.cli.remote import RemoteCitadel

        key = server.api_key.get_secret_value() if server.api_key else None
        return RemoteCitadel(server.url, key)

    @contextmanager
    def metadata(self) -> Iterator[Metadata]:
        """The metadata database (accounts, catalog, audit log, feedback, failures), without
        opening the vector store. SQLite allows it while the server runs."""
        from ui.metadata import Metadata

        meta = Metadata.open(self.settings)
        try:
            yield meta
        finally:
            meta.close()


def cli(ctx: typer.Context) -> Cli:
    """The command's shared state, set by the app's callback."""
    state = ctx.find_root().obj
    assert isinstance(state, Cli), "the app's callback sets the context object"
    return state


def console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    # Piped into a file or grep: wide lines, so names are never folded or cut.
    width = None if stream.isatty() else 240
    return Console(stderr=stderr, highlight=False, emoji=False, soft_wrap=True, width=width)


def cli_actor() -> str:
    """Who runs a command, as the audit log shows it: the operating-system account (the
    command line has no Citadel login)."""
    return f"cli:{getpass.getuser()}"
