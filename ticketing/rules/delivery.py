"""What became of a mail of ours: its delivery state, and what a bounce (DSN) says.

Pure: the outbox row's facts in, a state out; a delivery report's text in
(RFC 3464 ``message/delivery-status``), its verdict out. The outbox
(``ticketing.outbox``) writes the facts, ``ticketing.delivery`` acts on them.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

# The start of last_error when the server may have the message and nobody can tell.
INTERRUPTED = (
    "delivery state unknown after a crash; check the recipient's mailbox before resending"
)
UNCONFIRMED = "delivery state unknown: the server did not answer the end of the message"


class DeliveryState(enum.StrEnum):
    QUEUED = "queued"  # waiting for its first attempt
    SENDING = "sending"  # a sender has it (SMTP under way)
    SENT = "sent"  # the server took it (its answer kept)
    RETRYING = "retrying"  # an attempt failed for now; the next one is due at next_attempt_at
    FAILED = "failed"  # refused for good, or given up after the configured attempts
    UNKNOWN = "unknown"  # interrupted during DATA or no answer to it: check by hand
    BOUNCED = "bounced"  # taken by the server, then reported undeliverable (a DSN)
    CANCELLED = "cancelled"  # taken back by a supervisor: never sent


# What leaves the customer without our mail: the ticket is marked for it.
UNDELIVERED = frozenset({DeliveryState.FAILED, DeliveryState.UNKNOWN, DeliveryState.BOUNCED})
# What a supervisor may send again (an unknown one only after checking the mailbox).
RETRYABLE = frozenset({DeliveryState.FAILED, DeliveryState.UNKNOWN, DeliveryState.CANCELLED})
# What a supervisor may take back before it goes.
CANCELLABLE = frozenset({DeliveryState.QUEUED, DeliveryState.RETRYING})


def delivery_state(status: str, attempts: int, last_error: str | None,
                   bounced: bool) -> DeliveryState:
    """The state an outbox row shows (``status`` is its ``OutboxStatus`` value)."""
    if status == "pending":
        return DeliveryState.RETRYING if attempts else DeliveryState.QUEUED
    if status in ("sending", "delivering"):
        return DeliveryState.SENDING
    if status == "sent":
        return DeliveryState.BOUNCED if bounced else DeliveryState.SENT
    if status == "cancelled":
        return DeliveryState.CANCELLED
    if last_error and last_error.startswith((INTERRUPTED, UNCONFIRMED)):
        return DeliveryState.UNKNOWN
    return DeliveryState.FAILED


@dataclass(frozen=True)
class DsnRecipient:
    recipient: str
    action: str  # failed, delayed, delivered, relayed, expanded ("" when not given)
    status: str  # e.g. 5.1.1
    diagnostic: str


@dataclass(frozen=True)
class DeliveryReport:
    """What a bounce says about the mail it returns."""

    recipients: tuple[DsnRecipient, ...]
    # The per-message Original-Message-ID some MTAs add (X-Original-Message-ID too).
    original_message_id: str | None

    @property
    def failed(self) -> tuple[DsnRecipient, ...]:
        """Recipients it did not reach: action failed, or a 5.x.x status without an action."""
        return tuple(r for r in self.recipients
                     if r.action == "failed" or (not r.action and r.status.startswith("5")))

    @property
    def undelivered(self) -> bool:
        """A report of failure: some recipient failed, or a report with no readable fields
        (a bounce all the same: an MTA's plain-text notice)."""
        return bool(self.failed) or not self.recipients

    def summary(self) -> str:
        """One line for staff: who, the status, the server's words."""
        shown = self.failed or self.recipients
        if not shown:
            return "不達通知（詳細は通知メールを参照）"
        return "; ".join(
            " ".join(p for p in (r.recipient, r.status, r.diagnostic) if p) for r in shown[:5]
        )[:1000]


_FOLD = re.compile(r"\r?\n[ \t]+")
_TYPED = re.compile(r"^\s*[A-Za-z0-9.-]+\s*;\s*")  # "rfc822;", "smtp;"
_ID = re.compile(r"<([^<>\s]+)>")


def _fields(block: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in _FOLD.sub(" ", block).splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() and " " not in name.strip():
            found.setdefault(name.strip().lower(), " ".join(value.split()))
    return found


def parse_delivery_status(text: str) -> DeliveryReport:
    """An RFC 3464 delivery-status body: the per-message block, then one per recipient."""
    blocks = [b for b in re.split(r"\r?\n[ \t]*\r?\n", text.strip()) if b.strip()]
    fields = [_fields(b) for b in blocks]
    message = fields[0] if fields else {}
    original = message.get("original-message-id") or message.get("x-original-message-id")
    match = _ID.search(original or "")
    recipients = tuple(
        DsnRecipient(
            recipient=_TYPED.sub("", f.get("final-recipient") or f.get("original-recipient", "")),
            action=f.get("action", "").lower(),
            status=f.get("status", "").split(" ")[0],
            diagnostic=_TYPED.sub("", f.get("diagnostic-code", ""))[:300],
        )
        for f in fields
        if "final-recipient" in f or "original-recipient" in f or "action" in f
    )
    return DeliveryReport(recipients, match.group(1) if match else None)
