"""GET /metrics: the desk's numbers in Prometheus' text exposition format 0.0.4.

This is the HTTP side: who may scrape, and the format. What is counted is
the application's (``madoguchi.health.metric_families``), handed to
``create_app`` as its ``metrics`` collector. It is collected from the
database at each scrape, never counted in a process: the daemon, the web
desk and one-off commands all write to the database, so any process that
serves /metrics tells the same totals, and a restart loses nothing. The
format is a few lines of text; writing it here spares a dependency
(prometheus_client) whose registry of in-process metrics the desk would not
use.

Access: with ``[web] metrics_token_env`` or ``metrics_token_file`` set, a
scrape must send ``Authorization: Bearer TOKEN``; with neither, only
loopback clients may scrape. A configured token that cannot be read
refuses every scrape (503) rather than leaving /metrics open.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from madoguchi.config import ConfigError
from madoguchi.config.web import WebSettings
from madoguchi.ticketing.storage import Storage

if TYPE_CHECKING:
    from madoguchi.web.http import DeskWeb

log = logging.getLogger("madoguchi.web.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Family:
    """One metric: its samples as (name suffix, labels, value)."""

    name: str
    kind: str  # counter, gauge, summary
    help: str
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    def add(self, value: float, suffix: str = "", **labels: str) -> Family:
        self.samples.append((suffix, labels, value))
        return self


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _escape_label(value: str) -> str:
    return _escape_help(value).replace('"', r"\"")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


# What a scrape reports: the desk's numbers at that moment.
Collector = Callable[[Storage, datetime], list[Family]]


def exposition(families: list[Family]) -> str:
    lines: list[str] = []
    for f in families:
        lines.append(f"# HELP {f.name} {_escape_help(f.help)}")
        lines.append(f"# TYPE {f.name} {f.kind}")
        for suffix, labels, value in f.samples:
            body = ",".join(f'{k}="{_escape_label(v)}"' for k, v in sorted(labels.items()))
            lines.append(f"{f.name}{suffix}{{{body}}} {_number(value)}" if body
                         else f"{f.name}{suffix} {_number(value)}")
    return "\n".join(lines) + "\n"


def _loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def refusal(request: Request, web: WebSettings) -> Response | None:
    """Why this request may not scrape, as the response to send; None if it may."""
    try:
        token = web.metrics_token()
    except ConfigError as exc:
        log.error("/metrics refused: %s", exc)
        return PlainTextResponse("metrics token not available\n", 503)
    if token is None:
        client = request.client.host if request.client else ""
        if _loopback(client):
            return None
        return PlainTextResponse("metrics are served to loopback clients only "
                                 "(set web.metrics_token_env or metrics_token_file)\n", 403)
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return None
    return PlainTextResponse("a bearer token is required\n", 401,
                             headers={"WWW-Authenticate": 'Bearer realm="metrics"'})


async def metrics(request: Request) -> Response:
    state: DeskWeb = request.app.state.desk
    if state.metrics is None:
        return PlainTextResponse("no metrics are collected here\n", 404)
    refused = refusal(request, state.web)
    if refused is not None:
        return refused
    # The queries block: off the event loop, like every page of the desk.
    families = await run_in_threadpool(state.metrics, state.storage, datetime.now(UTC))
    return Response(exposition(families), media_type=CONTENT_TYPE)
