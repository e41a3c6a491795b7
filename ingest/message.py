"""The parsed form of an inbound message: what every later step reads.

Produced by ``ingest.parse.parse_message`` from raw bytes; a plain frozen
dataclass so it can cross process boundaries (parsing runs in a pool).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


class ParseError(Exception):
    """The message cannot be read as mail; ``reason_code`` names why."""

    def __init__(self, reason_code: str, reason: str) -> None:
        # Both in args: the error crosses process boundaries by pickling.
        super().__init__(reason_code, reason)
        self.reason_code = reason_code
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True)
class ParsedAttachment:
    filename: str  # decoded (RFC 2231 / RFC 2047), not yet made safe
    content_type: str  # lower-case "type/subtype"
    payload: bytes
    content_id: str | None = None
    inline: bool = False


@dataclass(frozen=True)
class ParsedMessage:
    # Message-ID without angle brackets; None when the header is missing.
    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    subject: str
    from_addr: str  # lower-cased address, "" when none could be read
    from_name: str
    to: tuple[str, ...]  # lower-cased addresses
    cc: tuple[str, ...]
    reply_to: tuple[str, ...]
    date: datetime | None  # the Date: header, timezone-aware
    received_date: datetime | None  # the topmost Received: header's date
    text: str  # the readable text (text/plain, or text/html turned into text)
    html: str | None  # the first decoded HTML part, unsanitised
    attachments: tuple[ParsedAttachment, ...]
    # Lower-cased header names to decoded values, for the rules that read
    # them (auto-submitted, precedence, list-id, x-autoreply, return-path...).
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "text/plain"  # of the whole message
    # For a delivery report (multipart/report): the Message-ID of the mail
    # that bounced, when the report carries its headers.
    bounced_message_id: str | None = None
    # Its message/delivery-status part as text (RFC 3464), when it has one.
    delivery_status: str | None = None
    defects: tuple[str, ...] = ()
    # The message's other HTML parts, in order (a second HTML part beside the
    # first, an HTML part of each forwarded block), unsanitised.
    more_html: tuple[str, ...] = ()
