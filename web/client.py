"""Who is asking, and over what: the client's address and whether it came over HTTPS.

Behind a reverse proxy every connection comes from the proxy; only when the
connection's peer is one of ``[web] trusted_proxies`` does the desk read
``X-Forwarded-For`` (the right-most address that is not itself a trusted
proxy: the one the proxy saw) and ``X-Forwarded-Proto``. From anyone else
those headers are ignored, since anyone can send them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache

from starlette.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=32)
def networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _trusted(host: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(host.strip())
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def from_trusted_proxy(peer: str, proxies: tuple[str, ...]) -> bool:
    """Is this connection's peer one of the trusted proxies (its client is in the headers)?"""
    trusted = networks(proxies)
    return bool(trusted) and _trusted(peer, trusted)


def _header(scope: Scope, name: bytes) -> str:
    values = [v.decode("latin-1") for k, v in scope.get("headers", []) if k == name]
    return ",".join(values)


def client_address(scope: Scope, proxies: tuple[str, ...]) -> str:
    """The client's address, as the desk's trusted proxy saw it (or the peer's own)."""
    client = scope.get("client")
    peer = client[0] if client else ""
    if not from_trusted_proxy(peer, proxies):
        return peer or "-"
    trusted = networks(proxies)
    hops = [h.strip() for h in _header(scope, b"x-forwarded-for").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # garbage from beyond the proxy: the proxy is all we know
    return peer


def over_https(scope: Scope, proxies: tuple[str, ...], public_url: str) -> bool:
    """Served over TLS: uvicorn's own, the trusted proxy's word, or an https public_url."""
    if public_url.lower().startswith("https://") or scope.get("scheme") == "https":
        return True
    client = scope.get("client")
    trusted = networks(proxies)
    if client and trusted and _trusted(client[0], trusted):
        proto = _header(scope, b"x-forwarded-proto").split(",")[-1].strip().lower()
        return proto == "https"
    return False
