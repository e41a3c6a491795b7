"""DKIM signatures (dkimpy) on the desk's outgoing mail, by the From address's domain.

Signed as the mail is handed to SMTP (``OutboxSender``), so the signature's
time is the sending time and a key renewed meanwhile is the one used. The
key is read once per signer from ``config.secrets`` (a file or a variable).
"""

from __future__ import annotations

from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parseaddr

import dkim

from madoguchi.config.outgoing import SIGNED_HEADERS, DkimSettings


class DkimSigner:
    """Signs mail whose From domain has a configured key; leaves other mail as it is."""

    def __init__(self, keys: list[DkimSettings]) -> None:
        self.keys = {k.domain: k for k in keys}
        self._pem: dict[str, bytes] = {}

    def sign(self, raw: bytes) -> bytes:
        if not self.keys:
            return raw
        head = BytesHeaderParser(policy=compat32).parsebytes(raw)
        domain = parseaddr(str(head.get("From", "")))[1].rpartition("@")[2].lower()
        key = self.keys.get(domain)
        if key is None:
            return raw
        if domain not in self._pem:
            self._pem[domain] = key.private_key()
        present = {name.lower() for name in head}
        signed = [h.encode() for h in SIGNED_HEADERS if h.lower() in present]
        try:
            header: bytes = dkim.sign(
                raw, key.selector.encode(), domain.encode(), self._pem[domain],
                include_headers=signed, canonicalize=(b"relaxed", b"relaxed"))
        except dkim.DKIMException as exc:
            raise ValueError(f"dkim.{domain}: cannot sign: {exc}") from exc
        return header + raw
