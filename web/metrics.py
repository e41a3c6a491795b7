"""GET /metrics: the desk's numbers in Prometheus' text exposition format 0.0.4.

Collected from the database at each scrape (madoguchi/health.py), never
counted in a process: the daemon, the web desk and one-off commands all
write to the database, so any process that serves /metrics tells the same
totals, and a restart loses nothing. The format is a few lines of text;
writing it here spares a dependency (prometheus_client) whose registry of
in-process metrics the desk would not use.

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
from dataclasses import dataclass, field
from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from madoguchi.app import Desk
from madoguchi.config import ConfigError
from madoguchi.config.web import WebSettings
from madoguchi.health import counters, desk_status
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


def collect(desk: Desk, now: datetime) -> list[Family]:
    with desk.factory() as session:
        status = desk_status(desk.settings, session, now, history=False)
        totals = counters(session)
    ingested = Family("madoguchi_messages_ingested_total", "counter",
                      "Inbound messages stored on tickets, by channel.")
    for channel, n in totals.ingested_by_channel.items():
        ingested.add(n, channel=channel)
    quarantined = Family("madoguchi_quarantined_total", "counter",
                         "Inbound input kept in quarantine, by reason code.")
    for reason, n in totals.quarantined_by_reason.items():
        quarantined.add(n, reason=reason)
    outbox = Family("madoguchi_outbox_backlog", "gauge",
                    "Outgoing mail not delivered, by status (sending: in flight, DATA "
                    "included; failed waits for staff).")
    for state, n in status.outbox.items():
        outbox.add(n, status=state)
    triage = Family("madoguchi_triage_queue", "gauge",
                    "Tickets waiting in triage: fax (number unreadable) or mail (flagged).")
    triage.add(status.triage_fax, kind="fax").add(status.triage_mail, kind="mail")
    families = [
        ingested,
        quarantined,
        Family("madoguchi_ocr_seconds", "summary",
               "Wall seconds spent reading FAX documents (OCR), per FAX message.")
        .add(totals.ocr_seconds_sum, "_sum").add(totals.ocr_count, "_count"),
        Family("madoguchi_fax_tickets_total", "counter", "Tickets opened by a FAX.")
        .add(totals.fax_tickets),
        Family("madoguchi_fax_tickets_triaged_total", "counter",
               "Tickets opened by a FAX whose support number could not be read (sent to "
               "triage), including those staff have numbered since.")
        .add(totals.fax_tickets_triaged),
        triage,
        outbox,
        Family("madoguchi_tickets_open", "gauge", "Tickets not closed (open or pending).")
        .add(status.open_tickets),
        Family("madoguchi_tickets_awaiting_first_response", "gauge",
               "Tickets not closed and not yet answered.")
        .add(status.awaiting_first_response),
        Family("madoguchi_tickets_overdue", "gauge",
               "Tickets not closed, not answered, past their first-response due time.")
        .add(status.overdue),
    ]
    waiting = Family("madoguchi_source_files_waiting", "gauge",
                     "Files a folder source (Maildir, .eml folder, FAX spool) has not taken.")
    owed = Family("madoguchi_imap_marks_owed", "gauge",
                  "Messages stored but not yet moved or flagged on the IMAP server.")
    claimed = Family("madoguchi_imap_claimed_uids", "gauge",
                     "UIDs handed out to an IMAP poller and not yet stored (ingest_claims).")
    for s in status.sources:
        if s.files_waiting is not None:
            waiting.add(s.files_waiting, source=s.name)
        if s.marks_owed is not None:
            owed.add(s.marks_owed, source=s.name)
        if s.claims is not None:
            claimed.add(s.claims.uids, source=s.name)
    families += [f for f in (waiting, owed, claimed) if f.samples]
    return families


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
    refused = refusal(request, state.web)
    if refused is not None:
        return refused
    # The queries block: off the event loop, like every page of the desk.
    families = await run_in_threadpool(collect, state.desk, datetime.now(UTC))
    return Response(exposition(families), media_type=CONTENT_TYPE)
