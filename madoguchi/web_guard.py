"""The HTTP server's guard against slow, endless and too many clients, and a flooded log.

uvicorn's own h11 protocol closes an idle keep-alive connection, but a
client that sends a byte now and then, or never finishes its headers, keeps
its connection for good; and its ``limit_concurrency`` counts idle
connections too, so half-open ones would turn every real request into a
503. Here, instead:

- ``guarded_protocol`` — uvicorn's h11 protocol with a deadline for the
  request line and headers (``header_timeout_seconds``) and another for the
  body, a cap on requests per connection, on open connections and on open
  connections per client address: beyond a cap a new connection is closed
  at once, before any byte is read. Given an ``early`` answerer
  (``web.refusal.RawRefusal``), a sign-in the throttle makes wait is
  answered from the raw bytes, before h11 and the application: a flood of
  guesses costs the event loop a few microseconds a request;
- ``ConcurrencyLimit`` — at most ``max_concurrent_requests`` requests in the
  application at once, ``max_concurrent_requests_per_client`` from one
  client address; more are answered 503 at once. The live desk's event
  streams (``/live/``, open as long as a page is) are counted apart, at most
  ``live_max_connections`` and ``live_max_connections_per_client``, so that
  open pages never take the places of requests; at shutdown they are closed
  (the browser reconnects to the next server);
- ``FloodFilter`` — the same log line from the same source at most ``burst``
  times in ``period`` seconds; the next one that passes says how many were
  left out, so a flood costs kilobytes of log, not megabytes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import h11
from h11._connection import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from madoguchi.config.web import WebSettings
from madoguchi.web.client import client_address
from madoguchi.web.http import security_headers
from madoguchi.web.live import PREFIX as LIVE_PREFIX

log = logging.getLogger("madoguchi.web.guard")

BODY_TIMEOUT_FACTOR = 6  # the body may take this many times the header deadline


@dataclass(frozen=True)
class GuardLimits:
    header_timeout: float
    body_timeout: float
    max_requests: int
    max_connections: int
    max_per_client: int

    @classmethod
    def of(cls, web: WebSettings) -> GuardLimits:
        return cls(web.header_timeout_seconds, web.header_timeout_seconds * BODY_TIMEOUT_FACTOR,
                   web.max_requests_per_connection, web.max_connections,
                   web.max_connections_per_client)


def _send_400(protocol: H11Protocol, msg: str) -> None:
    # uvicorn answers a request it cannot parse by itself, outside the
    # application and its SecurityHeaders: the same headers go on here.
    body = msg.encode("ascii", "replace")
    headers = [(b"content-type", b"text/plain; charset=utf-8"),
               (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    headers += security_headers({name for name, _ in headers}, static=False, hsts=None)
    for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
                  h11.Data(data=body), h11.EndOfMessage()):
        protocol.transport.write(protocol.conn.send(event) or b"")
    protocol.transport.close()


class EarlyAnswer(Protocol):
    """Answers some requests from their raw bytes (``web.refusal.RawRefusal``)."""

    def key_for(self, peer: str) -> str | None: ...

    def answer(self, data: bytes, key: str, *, tls: bool) -> tuple[bytes, int] | None: ...


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol under ``limits``, answering early what ``early`` can;
    ``guarded_protocol`` makes the class a server uses (its counts are its own)."""

    limits: ClassVar[GuardLimits]
    early: ClassVar[EarlyAnswer | None] = None
    per_client: ClassVar[Counter[str]]
    _deadline: asyncio.TimerHandle | None = None
    _phase = "headers"
    _served = 0
    _counted: str | None = None
    _early_key: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        host = self.client[0] if self.client else "-"
        if self.early is not None and self.client:
            self._early_key = self.early.key_for(host)
        # The connections kept (counted), not ``self.connections``: connections taken
        # in one go are all made before the refused ones among them are gone.
        if (self.per_client.total() >= self.limits.max_connections
                or self.per_client[host] >= self.limits.max_per_client):
            log.warning("refused a connection from %s: too many open", host)
            transport.abort()
            return
        self.per_client[host] += 1
        self._counted = host
        self._arm(self.limits.header_timeout, "headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._counted is not None:
            self.per_client[self._counted] -= 1
            if self.per_client[self._counted] <= 0:
                del self.per_client[self._counted]
            self._counted = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._early_key is not None and self._between_requests():
            data = self._answer_early(data, self._early_key)
            if not data:
                return
        super().data_received(data)
        state = self.conn.their_state
        if state is h11.SEND_BODY and self._phase == "headers":
            self._arm(self.limits.body_timeout, "body")
        elif state is not h11.IDLE and state is not h11.SEND_BODY:
            self._disarm()  # the whole request is in: the application has it

    def on_response_complete(self) -> None:
        self._served += 1
        if self._served >= self.limits.max_requests and not self.transport.is_closing():
            self.transport.close()
            return
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm(self.limits.header_timeout, "headers")

    def handle_events(self) -> None:
        # Between two requests, what h11 holds (a request split across reads, or
        # pipelined behind one just answered) is the front of the next request.
        if self._early_key is not None and self._between_requests(buffered=True):
            held = self.conn.trailing_data[0]
            rest = self._answer_early(held, self._early_key)
            if len(rest) < len(held) and not self.transport.is_closing():
                self.conn = h11.Connection(h11.SERVER, self._max_event)
                if rest:  # (no bytes would tell h11 the client closed)
                    self.conn.receive_data(rest)
            if self.transport.is_closing():
                return
        super().handle_events()

    @property
    def _max_event(self) -> int:
        size = self.config.h11_max_incomplete_event_size
        return size if size is not None else DEFAULT_MAX_INCOMPLETE_EVENT_SIZE

    def _between_requests(self, *, buffered: bool = False) -> bool:
        # Nothing under way; nothing buffered in h11 (or, ``buffered``, something):
        # the bytes start a request.
        conn = self.conn
        return (conn.their_state is h11.IDLE and conn.our_state is h11.IDLE
                and not self.flow.write_paused
                and bool(conn.trailing_data[0]) is buffered)

    def _answer_early(self, data: bytes, key: str) -> bytes:
        """Answers the requests at the front of ``data`` that ``early`` can; the rest."""
        early = self.early
        assert early is not None
        used = 0
        tls = self.scheme == "https"
        while used < len(data):
            found = early.answer(data[used:] if used else data, key, tls=tls)
            if found is None:
                break
            reply, length = found
            self._unset_keepalive_if_required()
            self.transport.write(reply)
            used += length
            self.server_state.total_requests += 1
            self._served += 1
            if self._served >= self.limits.max_requests:
                self.transport.close()
                return b""
            if self.flow.write_paused:
                break  # a client that does not read: the rest waits in h11, answered in turn
        if not used:
            return data
        self._arm(self.limits.header_timeout, "headers")  # the next request's deadline
        if used == len(data):
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler)
        return data[used:]

    def send_400_response(self, msg: str) -> None:
        _send_400(self, msg)

    def shutdown(self) -> None:
        super().shutdown()
        # A live stream never completes by itself: close it, or shutdown waits for it.
        scope = getattr(self, "scope", None)
        if (self.cycle is not None and not self.cycle.response_complete and scope
                and str(scope.get("path", "")).startswith(LIVE_PREFIX)
                and not self.transport.is_closing()):
            self.transport.close()

    def _arm(self, seconds: float, phase: str) -> None:
        self._disarm()
        self._phase = phase
        self._deadline = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        state = self.conn.their_state
        if (state is h11.IDLE or state is h11.SEND_BODY) and not self.transport.is_closing():
            log.warning("closed a connection from %s: its request's %s took too long",
                        self.client[0] if self.client else "-", self._phase)
            self.transport.abort()



def guarded_protocol(limits: GuardLimits, early: EarlyAnswer | None = None
                     ) -> type[H11Protocol]:
    """uvicorn's h11 protocol under ``limits`` (a class per server: its counts are its own);
    ``early`` answers what it can from the raw bytes, before h11."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,),
                {"limits": limits, "early": early, "per_client": Counter()})


@dataclass
class _Places:
    """Requests under way, overall and per client address, against their caps."""

    limit: int
    per_client: int
    active: int = 0

    def __post_init__(self) -> None:
        self.by_client: Counter[str] = Counter()

    def take(self, client: str) -> bool:
        if self.active >= self.limit or self.by_client[client] >= self.per_client:
            return False
        self.active += 1
        self.by_client[client] += 1
        return True

    def give_back(self, client: str) -> None:
        self.active -= 1
        self.by_client[client] -= 1
        if self.by_client[client] <= 0:
            del self.by_client[client]


class ConcurrencyLimit:
    """At most ``limit`` requests inside the application at once, and ``per_client`` from
    one client address (as ``[web] trusted_proxies`` tell it); the rest get 503 at once.

    The per-client cap keeps one place's flood from taking every place: staff
    elsewhere are still served while it lasts. Live streams have places of
    their own (``live``, ``live_per_client``).
    """

    def __init__(self, app: ASGIApp, limit: int, per_client: int | None = None,
                 proxies: tuple[str, ...] = (), *, live: int = 0,
                 live_per_client: int = 0) -> None:
        self.app = app
        self.requests = _Places(limit, per_client or limit)
        self.live = _Places(live, live_per_client or live)
        self.proxies = proxies

    @property
    def active(self) -> int:
        return self.requests.active

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = client_address(scope, self.proxies)
        places = self.live if str(scope["path"]).startswith(LIVE_PREFIX) else self.requests
        if not places.take(client):
            log.warning("answered 503: %d requests under way, %d live", self.requests.active,
                        self.live.active)
            body = "混み合っています。しばらくしてからお試しください。\n".encode()
            headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"retry-after", b"5"),
                       (b"content-length", str(len(body)).encode())]
            # Outside the application, so outside its SecurityHeaders: added here.
            headers += security_headers({name for name, _ in headers}, static=False, hsts=None)
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        try:
            await self.app(scope, receive, send)
        finally:
            places.give_back(client)


class FloodFilter(logging.Filter):
    """Lets the same line from the same source through ``burst`` times per ``period`` seconds."""

    def __init__(self, burst: int = 20, period: float = 10.0, max_keys: int = 1000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.burst, self.period, self.max_keys = burst, period, max_keys
        self._clock = clock
        self._seen: dict[tuple[str, str, str], list[float]] = {}  # key → [window start, n, left]
        self._lock = threading.Lock()

    @staticmethod
    def _source(record: logging.LogRecord) -> str:
        args: Any = record.args
        if isinstance(args, tuple) and args and isinstance(args[0], str):
            return args[0].rsplit(":", 1)[0]  # uvicorn.access: "host:port"
        return ""

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg), self._source(record))
        now = self._clock()
        with self._lock:
            slot = self._seen.get(key)
            if slot is None or now - slot[0] > self.period:
                left = int(slot[2]) if slot is not None else 0
                if len(self._seen) >= self.max_keys:
                    self._seen.clear()
                self._seen[key] = [now, 1, 0]
                if left:
                    record.msg = f"{record.msg} [{left} more like this left out]"
                return True
            if slot[1] < self.burst:
                slot[1] += 1
                return True
            slot[2] += 1
            return False


# What a flood writes to at the server's level; the desk's own sign-in lines are
# bounded by the throttle (only attempts it lets through are logged).
GUARDED_LOGGERS = ("uvicorn.error", "uvicorn.access", "madoguchi.web.guard")


def install_flood_filter() -> FloodFilter:
    """One filter on the loggers a flood of requests writes to (idempotent)."""
    for name in GUARDED_LOGGERS:
        for existing in logging.getLogger(name).filters:
            if isinstance(existing, FloodFilter):
                return existing
    flood = FloodFilter()
    for name in GUARDED_LOGGERS:
        logging.getLogger(name).addFilter(flood)
    return flood
