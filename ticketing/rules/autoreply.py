"""Is this mail written by a machine? Auto-replies, bulk mail, bounces and loops.

Such mail never opens a ticket and never gets an acknowledgement (RFC 3834
asks responders not to answer it, and answering a vacation notice starts a
mail loop). The signals are the ones RFC 3834, RFC 2919/2369, RFC 3464 and
the big mail systems use.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Protocol


class AutoKind(enum.StrEnum):
    BOUNCE = "bounce"
    AUTO_REPLY = "auto_reply"
    BULK = "bulk"
    LOOP = "loop"


class MailFacts(Protocol):
    """What the rule reads of a mail (``ingest.message.ParsedMessage`` is one)."""

    @property
    def from_addr(self) -> str: ...  # lower-cased
    @property
    def content_type(self) -> str: ...  # of the whole message
    @property
    def headers(self) -> Mapping[str, str]: ...  # lower-cased names, decoded values


_BOUNCE_SENDERS = ("mailer-daemon@", "postmaster@", "mail-daemon@")
_BULK_PRECEDENCE = {"bulk", "list", "junk"}


def classify_auto(message: MailFacts, desk_address: str) -> AutoKind | None:
    """The kind of machine-written mail this is, or None for a person's mail."""
    h = message.headers
    sender = message.from_addr

    # An empty Return-Path alone is no sign: files saved by clients have none.
    if (
        message.content_type == "multipart/report"
        or "x-failed-recipients" in h
        or sender.startswith(_BOUNCE_SENDERS)
    ):
        return AutoKind.BOUNCE
    if desk_address and sender == desk_address.lower():
        return AutoKind.LOOP
    if "x-loop" in h and desk_address and desk_address.lower() in h["x-loop"].lower():
        return AutoKind.LOOP

    auto_submitted = h.get("auto-submitted", "").strip().lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return AutoKind.AUTO_REPLY
    if "x-autoreply" in h or "x-autorespond" in h:
        return AutoKind.AUTO_REPLY
    suppress = h.get("x-auto-response-suppress", "").lower()
    if "oof" in suppress or suppress.strip() == "all":
        # Exchange marks its own out-of-office replies this way.
        return AutoKind.AUTO_REPLY

    precedence = h.get("precedence", "").strip().lower()
    if precedence == "auto_reply":
        return AutoKind.AUTO_REPLY
    if precedence in _BULK_PRECEDENCE or "list-id" in h or "list-unsubscribe" in h:
        return AutoKind.BULK
    return None
