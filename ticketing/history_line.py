"""A history line in the catalogue's words, so that each reader sees it in their language.

    say("担当者: %(before)s → %(after)s", before="未割当", after=user.name)
        + say("（再通知 %(at)s）", at=pending_until)

A line is a sequence of marked Japanese messages (``%(name)s`` placeholders) and
their values. ``text()`` is the Japanese sentence kept in ``ticket_events.what``
(the export's and the command line's text, and what a desk reads when the line
has no parts); the web desk calls ``text(gettext, moment)`` to show it in the
reader's language. A value is translated too when it is itself a marked label
(a state, "未割当"); a name or a number is not in the catalogue and stays as it
is. A moment is kept as a moment and written by the reader's clock format.
The parts are stored as JSON beside the line (``detail["line"]``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from madoguchi.ticketing.japanese import format_moment_ja

__all__ = ["Line", "say"]

Value = str | datetime
_JAPAN = ZoneInfo("Asia/Tokyo")


def _same(message: str) -> str:
    return message


@dataclass(frozen=True)
class Line:
    parts: tuple[tuple[str, tuple[tuple[str, Value], ...]], ...]

    def __add__(self, other: Line | str) -> Line:
        return Line(self.parts + (say(other) if isinstance(other, str) else other).parts)

    def text(self, translate: Callable[[str], str] = _same,
             moment: Callable[[datetime], str] | None = None, tz: ZoneInfo | None = None) -> str:
        """The sentence: in Japanese by default (moments in ``tz``, Japan's if None);
        ``translate`` and ``moment`` give another language."""
        def value(v: Value) -> str:
            if isinstance(v, datetime):
                return moment(v) if moment else format_moment_ja(v, tz or _JAPAN)
            return translate(v) if v else v
        out = []
        for message, params in self.parts:
            shown = translate(message)
            out.append(shown % {k: value(v) for k, v in params} if params else shown)
        return "".join(out)

    def to_json(self) -> list[list[Any]]:
        return [[m, {k: {"at": v.isoformat()} if isinstance(v, datetime) else v
                     for k, v in p}] for m, p in self.parts]

    @classmethod
    def from_json(cls, stored: object) -> Line | None:
        """The stored parts, or None when they are not what ``to_json`` wrote."""
        if not isinstance(stored, list):
            return None
        parts = []
        try:
            for message, params in stored:
                if not isinstance(message, str) or not isinstance(params, dict):
                    return None
                parts.append((message, tuple(
                    (str(k), datetime.fromisoformat(v["at"]) if isinstance(v, dict) else str(v))
                    for k, v in params.items())))
        except (TypeError, ValueError, KeyError):
            return None
        return cls(tuple(parts))


def say(message: str, /, **params: Value) -> Line:
    """One marked message (Japanese, ``%(name)s`` placeholders) and its values."""
    return Line(((message, tuple(params.items())),))
