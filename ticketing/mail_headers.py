"""Headers of the mail the desk writes: customer text made safe, and the thread headers.

The acknowledgement and staff replies both answer a customer's message:
``thread_headers`` is the one place that writes In-Reply-To and References
from the message answered.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from functools import lru_cache

# Line breaks of every kind (str.splitlines splits on all of them) and other
# controls: none may reach a header from the customer's text.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")
# A Message-ID between its angle brackets: printable ASCII, no space, no < >.
_MSG_ID = re.compile(r"[!-;=?-~]+")
MAX_REFERENCES = 20


def one_line(text: str, limit: int | None = None) -> str:
    """Customer text made safe for a header: one line, and no RFC 2047 syntax.

    A decoded subject or name may itself spell an encoded word ("=?UTF-8?B?…?=");
    Python's header code would decode it again, line breaks included, and
    write them out raw. A word joiner after "=" keeps it literal text.
    """
    flat = _CONTROLS.sub(" ", text).replace("=?", "=\u2060?").strip()
    if limit is not None and len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return flat


@lru_cache(maxsize=4096)
def usable_address(addr: str) -> bool:
    """An address the desk may write to: one @, ASCII, no controls, and it parses."""
    # Cached: the header parser is slow, and the same senders write again and again.
    if not addr or not addr.isascii() or addr.count("@") != 1 or _CONTROLS.search(addr):
        return False
    try:
        Address(addr_spec=addr)
    except (ValueError, IndexError, HeaderParseError):  # the parser raises any on bad input
        return False
    return True


def msg_ids(ids: Sequence[str]) -> list[str]:
    """The well-formed Message-IDs of ``ids`` (brackets off), once each, at most 20."""
    good = list(dict.fromkeys(i.strip("<> ") for i in ids))
    good = [i for i in good if _MSG_ID.fullmatch(i)]
    if len(good) > MAX_REFERENCES:
        # RFC 5322 3.6.4: keep the thread's root and the nearest ancestors.
        good = [good[0], *good[-(MAX_REFERENCES - 1):]]
    return good


def thread_headers(msg: EmailMessage, message_id: str | None, references: Sequence[str]) -> None:
    """In-Reply-To and References of ``msg``, answering the message with ``message_id``
    (and ``references``); a message with no usable ids gets none.
    """
    own = msg_ids([message_id or ""])
    if own:
        msg["In-Reply-To"] = f"<{own[0]}>"
    chain = msg_ids([*references, *own])
    if chain:
        msg["References"] = " ".join(f"<{r}>" for r in chain)
