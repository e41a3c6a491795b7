"""The desk's languages: Japanese (the source text itself) and English (``locale/en``).

Every user-visible string is written in Japanese and passed through ``gettext``
(``_``); the Japanese text is the msgid, so the Japanese desk is the source
and needs no catalogue. English comes from ``locale/en/LC_MESSAGES/messages.po``,
read once at start (Babel's .po reader, compiled in memory): no build step,
and the .po in the repository is what runs.

The language of a request is a context variable, set by ``web.http`` from the
signed-in user's ``locale`` (or, before sign-in, the last choice made in this
browser's session); the worker thread of each request has its own copy, so
two users' pages never mix. Strings defined at import time (labels, rules'
messages) are marked with ``N_`` and translated where they are shown.
"""

from __future__ import annotations

import gettext as _gettext
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from functools import lru_cache
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
SOURCE_LOCALE = "ja"
LOCALES = ("ja", "en")
# How each language names itself in the language chooser (never translated).
LOCALE_NAMES = {"ja": "日本語", "en": "English"}

_current: ContextVar[str] = ContextVar("madoguchi_locale", default=SOURCE_LOCALE)


def N_(message: str) -> str:
    """Mark a string for the catalogue without translating it (translated when shown)."""
    return message


@lru_cache(maxsize=len(LOCALES))
def translations(locale: str) -> _gettext.NullTranslations:
    """The catalogue of ``locale``: the source language (and anything unknown) is itself."""
    if locale == SOURCE_LOCALE or locale not in LOCALES:
        return _gettext.NullTranslations()
    with (LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalog = read_po(fh, locale=locale)
    buffer = BytesIO()
    write_mo(buffer, catalog)  # fuzzy entries are left out: an unchecked guess is not shown
    buffer.seek(0)
    return _gettext.GNUTranslations(buffer)


def valid_locale(value: object) -> str | None:
    return value if isinstance(value, str) and value in LOCALES else None


def set_locale(locale: str | None) -> None:
    """The language of the rest of this request (the source language when unknown)."""
    _current.set(valid_locale(locale) or SOURCE_LOCALE)


def current_locale() -> str:
    return _current.get()


def gettext(message: str) -> str:
    return translations(_current.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(_current.get()).ngettext(singular, plural, n)


def pgettext(context: str, message: str) -> str:
    """A message whose English depends on where it stands (the same Japanese, two uses)."""
    return translations(_current.get()).pgettext(context, message)


_ = gettext


class Labels(Mapping[str, str]):
    """A table of marked labels (value -> Japanese) that answers in the current language."""

    def __init__(self, table: Mapping[str, str]) -> None:
        self._table = dict(table)

    def __getitem__(self, key: str) -> str:
        return gettext(self._table[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)


def error_text(exc: Exception) -> str:
    """A refusal from the desk's actions in the current language (``ActionError``'s marked
    message and values; a message without them is shown as it is)."""
    message = getattr(exc, "message", None)
    params = getattr(exc, "params", None)
    if not isinstance(message, str):
        return str(exc)
    if not params:
        return gettext(message)
    return gettext(message) % {k: gettext(v) if isinstance(v, str) else v
                               for k, v in params.items()}
