"""What a decision about a FAX returns: a value or none, the reads it made, its problems.

Every decision (the forms, the page text, the 問合せ番号) returns a
``Verdict`` instead of appending to lists it was handed: the reader puts the
reads and problems of its decisions together in the order it made them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from madoguchi.ticketing.support_number import SupportNumber

# "boxes": the digit boxes read box by box (PP-OCR), decided by the registered numbers.
Method = Literal["qr", "zonal", "fullpage", "qr+zonal", "boxes"]

T = TypeVar("T")


@dataclass(frozen=True)
class MethodRead:
    """One attempt to read one field, kept for the record."""

    method: Literal["qr", "zonal", "fullpage"]
    field: Literal["support_number", "ticket_number"]
    page: int  # 1-based
    raw: str  # what the method saw, digits or text
    value: str | None  # the validated value, or None
    confidence: float  # 0..1
    note: str = ""


@dataclass(frozen=True)
class Accepted:
    """A support number accepted, and how."""

    number: SupportNumber
    method: Method
    confidence: float


@dataclass(frozen=True)
class Verdict(Generic[T]):
    """A decision: its value (None: nothing accepted), the reads made, and the problems.

    ``problems`` are reasons for triage: a decision with problems accepted
    nothing, and the caller must not look further (no guessing).
    """

    value: T | None = None
    reads: tuple[MethodRead, ...] = ()
    problems: tuple[str, ...] = ()
