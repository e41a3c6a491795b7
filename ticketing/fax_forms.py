"""A contract's FAX request form: what it is pre-filled with, and the signed link that serves it.

The link is the one way a customer (who has no sign-in) fetches the form
pre-filled for their contract: ``/fax-form/<contract id>/<expiry>/<signature>``
on the desk's ``public_url``. The signature is an HMAC-SHA256 over the
contract's id, its support number and the expiry, keyed by a key derived from
the web desk's secret; it is checked in constant time, and a link whose
contract number changed, whose expiry passed or whose signature differs by a
single character is no link at all. ``madoguchi form --link`` and the web
desk's contract page both make links here; the public route checks them here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from madoguchi.ticketing.models import Contract

LINK_PATH = "/fax-form"
# Keeps the link key apart from every other use of the web secret (session cookies).
_PURPOSE = b"madoguchi fax-form link v1"


@dataclass(frozen=True)
class FormFill:
    """What a form printed for a known contract carries besides its number (form field keys)."""

    company: str = ""
    department: str = ""
    contact: str = ""
    address: str = ""
    contract_code: str = ""
    product: str = ""

    def values(self) -> dict[str, str]:
        """Field key → text, only the fields that have one."""
        out = {
            "company": self.company, "department": self.department, "contact": self.contact,
            "address": self.address, "contract_code": self.contract_code,
            "product": self.product,
        }
        return {key: value for key, value in out.items() if value}


def form_fill(contract: Contract) -> FormFill:
    """The form's fields for ``contract`` (its customer and customer's first contact loaded).

    The contract's own department and address win over the customer's; the
    contact is the contract's first registered contact, else the customer's.
    """
    customer = contract.customer
    contacts = sorted(contract.contacts or customer.contacts, key=lambda c: c.id)
    return FormFill(
        company=customer.company,
        department=contract.department or customer.department,
        contact=contacts[0].name if contacts else "",
        address=contract.address or customer.address,
        contract_code=contract.contract_code,
        product=contract.product,
    )


def _key(secret: bytes) -> bytes:
    return hmac.new(secret, _PURPOSE, hashlib.sha256).digest()


def _signature(secret: bytes, contract_id: int, support_number: str, expires: int) -> str:
    message = f"{contract_id}:{support_number}:{expires}".encode()
    digest = hmac.new(_key(secret), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def link_path(secret: bytes, contract: Contract, expires: datetime) -> str:
    """The path of a link to ``contract``'s form, valid until ``expires``."""
    stamp = int(expires.timestamp())
    sig = _signature(secret, contract.id, contract.support_number, stamp)
    return f"{LINK_PATH}/{contract.id}/{stamp}/{sig}"


def link_url(public_url: str, secret: bytes, contract: Contract, now: datetime,
             days: int) -> tuple[str, datetime]:
    """The full link on ``public_url`` and when it expires (``days`` from ``now``).

    ValueError when the desk has no ``public_url`` (a link to nowhere helps nobody).
    """
    if not public_url:
        raise ValueError("[web] public_url is not set: the link needs the desk's address")
    expires = (now + timedelta(days=days)).astimezone(UTC).replace(microsecond=0)
    return public_url.rstrip("/") + link_path(secret, contract, expires), expires


def parse_link(contract_id: str, expires: str) -> tuple[int, int] | None:
    """The contract id and expiry of a link's path parts; None when they are not numbers."""
    if not (contract_id.isascii() and contract_id.isdigit() and expires.isascii()
            and expires.isdigit()) or len(contract_id) > 18 or len(expires) > 12:
        return None
    return int(contract_id), int(expires)


def link_valid(secret: bytes, contract_id: int, support_number: str, expires: int,
               signature: str, now: datetime) -> bool:
    """The link is this contract's, signed with our key, and not expired (constant-time)."""
    expected = _signature(secret, contract_id, support_number, expires)
    signed = hmac.compare_digest(expected.encode("ascii"),
                                 signature.encode("utf-8", "replace"))
    return signed and now.timestamp() < expires
