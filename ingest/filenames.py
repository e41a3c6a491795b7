"""Attachment names that are safe to store and to offer for download."""

from __future__ import annotations

import mimetypes
import re
import unicodedata

MAX_FILENAME_BYTES = 150

# Windows refuses these as a name, whatever the extension (CON.txt too).
_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{port}{n}" for port in ("COM", "LPT") for n in [*"123456789", "¹", "²", "³"]]
)
# Characters Windows forbids in names; path separators go first, below.
_FORBIDDEN = re.compile(r'[<>:"|?*]')
# Only the types' own table: the system's /etc/mime.types differs between hosts.
_MIME = mimetypes.MimeTypes()
_MAX_EXTENSION_BYTES = 16
# Unicode categories never kept: controls, format characters (bidi overrides),
# line and paragraph separators, surrogates (which cannot even be encoded).
_DROPPED = frozenset(("Cc", "Cf", "Zl", "Zp", "Cs"))
# Cut from both ends: every character str.isspace() knows, and dots. A character
# set, not a pattern: a pattern anchored at the end takes quadratic time on a
# long run of blanks inside a name.
_BLANKS_AND_DOTS = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000."
)


def safe_filename(name: str, content_type: str) -> str:
    """A file name for an attachment, safe on Unix and Windows, Japanese kept.

    Drops directory parts; control, format (bidi override) and line-separator
    characters and lone surrogates (8-bit bytes no charset could read);
    characters Windows forbids; dots and blanks at either end. Defuses
    Windows device names; cuts to 150 UTF-8 bytes keeping the extension; falls
    back to ``attachment.<ext>`` (from the content type) when nothing is left.
    """
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(char for char in name if unicodedata.category(char) not in _DROPPED)
    # Composed after the drop: a control between a letter and its combining
    # mark would otherwise leave them to compose on a second pass.
    name = unicodedata.normalize("NFC", name)
    name = _FORBIDDEN.sub("_", name).strip(_BLANKS_AND_DOTS)
    if not name:
        return "attachment" + _extension_for(content_type)
    if name.split(".", 1)[0].rstrip(" ").upper() in _RESERVED:
        name = "_" + name
    return _truncate(name, MAX_FILENAME_BYTES)


def _truncate(name: str, limit: int) -> str:
    if len(name.encode("utf-8")) <= limit:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension.encode("utf-8")) > _MAX_EXTENSION_BYTES:
        stem, extension = name, ""
    suffix = f".{extension}" if extension else ""
    room = limit - len(suffix.encode("utf-8"))
    cut = stem.encode("utf-8")[:room].decode("utf-8", "ignore")  # never half a character
    return cut.rstrip(_BLANKS_AND_DOTS) + suffix


def _extension_for(content_type: str) -> str:
    content_type = content_type.split(";", 1)[0].strip().lower()
    return _MIME.guess_extension(content_type) or ".bin"
