"""What uvicorn's HTTP/1.1 protocol lacks against idle and slow clients.

uvicorn times out a connection only between two requests (`timeout_keep_alive`): one that
never finishes sending its first request's headers (or sends them a byte at a time) is
held for ever, and every held connection counts toward `limit_concurrency`. 200 such
sockets from one stranger made every request, `/healthz` included, get 503. So:

- a request's headers must arrive within `header_timeout_s` of the connection opening or
  of the previous response (else the connection is closed, after a 408);
- one client address holds at most `connections_per_address` connections at once (more
  are answered 429 and closed at once), so no one address can take the server's
  connections. Reverse proxies named in `trusted_proxies` are not capped: every user
  arrives through them.

Given to uvicorn as its `http` protocol class (a documented setting), one class per
server: the count of connections per address is the server's own.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections import Counter
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


def _plain(status: str, message: str) -> bytes:
    """A whole response written straight to the socket, the connection closed after it."""
    body = f"{message}\n".encode()
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


_REFUSED = _plain("429 Too Many Requests", "too many connections from this address")
_TOO_SLOW = _plain("408 Request Timeout", "the request's headers took too long to arrive")


def guarded_protocol(
    header_timeout_s: float, connections_per_address: int, uncapped: str = ""
) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a deadline on each request's headers and a cap on the
    connections of one address (`uncapped`: trusted proxies, as in `trusted_proxies`)."""
    networks = _networks(uncapped)
    held: Counter[str] = Counter()  # open connections per client address, this server's

    class GuardedH11Protocol(H11Protocol):
        _address: str | None = None
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            address = self.client[0] if self.client else None
            if address is not None and not _within(address, networks):
                if held[address] >= connections_per_address:
                    transport.write(_REFUSED)
                    transport.close()
                    return
                held[address] += 1
                self._address = address
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._disarm()  # the headers are in: the request is being served
            elif self._deadline is None:
                self._arm()  # the first bytes of the next request on a kept-alive connection

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._disarm()  # between requests, uvicorn's keep-alive timeout applies

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self._address is not None:
                held[self._address] -= 1
                if held[self._address] <= 0:
                    del held[self._address]
                self._address = None
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(header_timeout_s, self._too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
                return
            self.transport.write(_TOO_SLOW)
            self.transport.close()

    return GuardedH11Protocol


def _networks(spec: str) -> list[Any]:
    """The networks of a comma-separated list of addresses or networks ("*": all; what
    is neither, uvicorn's literal Unix-socket entries say, is not an address to exempt)."""
    if spec.strip() == "*":
        return [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
    networks = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            continue
    return networks


def _within(address: str, networks: list[Any]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False  # a Unix socket's "address": not a proxy
    return any(ip.version == n.version and ip in n for n in networks)
