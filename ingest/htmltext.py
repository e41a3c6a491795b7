"""HTML mail bodies: readable text for the desk, and safe HTML for the web view.

Both read the markup through one small tokenizer (``_tokens``) whose time is
linear in its input whatever the input holds. Python's ``html.parser`` (3.11)
and html5ever (under nh3) each take quadratic time on some hostile markup:
25 KB of unclosed ``<b`` tags kept html.parser busy 6 s, 200 KB of nested
``<div>`` kept html5ever 5 s, and the time grows with the square of the size.
So the text is read from our tokens, and nh3 is handed our well-formed
rewrite of the markup, nested at most ``MAX_NESTING`` deep and cut at
``MAX_SANITIZED_CHARS``; what is safe to show is still nh3's decision.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import escape, unescape
from typing import Literal

import nh3

# Elements whose content is never text a person reads in the mail.
_HIDDEN = frozenset(("script", "style", "head", "title", "template", "svg", "math", "xml"))
_BLOCKS = frozenset(
    ("address", "article", "aside", "blockquote", "caption", "center", "dd", "details", "div",
     "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4",
     "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "summary",
     "table", "tr", "ul")
)
_CELLS = frozenset(("td", "th"))
# HTML whitespace (not \s: a no-break space is content, e.g. Outlook's blank lines).
_SPACE_RUN = re.compile(r"[ \t\r\n\f]+")
# Browsers drop a line break between two East Asian wide characters (CSS Text 3).
_WIDE = r"[\u2e80-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff01-\uff60\uffe0-\uffe6]"
_BREAK_BETWEEN_WIDE = re.compile(rf"(?<={_WIDE})[ \t\r\f]*\n[ \t\r\n\f]*(?={_WIDE})")
_BLANK_LINES = re.compile(r"\n{3,}")
# Quote marks and list indents show this many levels at most: one per level
# would make the text grow with the square of a hostile mail's nesting.
_MAX_LEVELS = 20


# -- the tokenizer ---------------------------------------------------------------
#
# What a browser's tokenizer sees, as far as reading and rewriting need it:
# start and end tags with their attributes, text with its character references
# decoded, the raw content of <script>-like elements; comments, doctypes and
# processing instructions are dropped, and so is a tag the input ends inside.

_Attrs = list[tuple[str, str | None]]
_Token = (
    tuple[Literal["text"], str]  # text, references decoded
    | tuple[Literal["raw"], str, str]  # element, its raw content (<script>, <style>...)
    | tuple[Literal["start"], str, _Attrs, bool]  # name, attributes, self-closing
    | tuple[Literal["end"], str]
)

_TAG_REST = re.compile(r"[^\t\n\f\r />]*")
_GAP = re.compile(r"[\t\n\f\r /]*")
_ATTR_NAME = re.compile(r"[^\t\n\f\r />][^\t\n\f\r /=>]*")
_EQUALS = re.compile(r"[\t\n\f\r ]*=[\t\n\f\r ]*")
_UNQUOTED = re.compile(r"[^\t\n\f\r >]*")
# Their content is text up to their own end tag, never markup.
_RAW_TEXT = frozenset(("script", "style", "xmp", "iframe", "noembed", "noframes"))
_RCDATA = frozenset(("title", "textarea"))
_CLOSING = {
    name: re.compile(rf"</{name}[\t\n\f\r />]", re.IGNORECASE) for name in _RAW_TEXT | _RCDATA
}


def _tokens(html: str) -> Iterator[_Token]:
    """The tokens of ``html``, in time linear in its length."""
    html = html.replace("\0", "")
    n = len(html)
    pos = 0
    while pos < n:
        lt = html.find("<", pos)
        if lt < 0:
            lt = n
        if lt > pos:
            yield ("text", unescape(html[pos:lt]))
        if lt == n:
            return
        following = html[lt + 1 : lt + 2]
        if following.isascii() and following.isalpha():
            tag = _tag(html, lt + 1)
            if tag is None:
                return
            pos, name, attrs, self_closing = tag
            yield ("start", name, attrs, self_closing)
            if name in _CLOSING:
                closing = _CLOSING[name].search(html, pos)
                end = closing.start() if closing else n
                content = html[pos:end]
                if content and name in _RCDATA:
                    yield ("text", unescape(content))
                elif content:
                    yield ("raw", name, content)
                pos = end
            elif name == "plaintext":  # the rest of the document is its text
                yield ("raw", name, html[pos:])
                return
        elif following == "/":
            after = html[lt + 2 : lt + 3]
            if after.isascii() and after.isalpha():
                tag = _tag(html, lt + 2)
                if tag is None:
                    return
                pos, name = tag[0], tag[1]
                yield ("end", name)
            else:
                pos = _past(html, ">", lt + 2, n)  # "</>" and bogus comments
        elif html.startswith("<!--", lt):
            pos = _comment_end(html, lt, n)
        elif following in ("!", "?"):
            pos = _past(html, ">", lt + 2, n)
        else:
            yield ("text", "<")
            pos = lt + 1


def _end(pattern: re.Pattern[str], html: str, pos: int) -> int:
    """Where ``pattern`` (which also matches nothing) stops matching from ``pos``."""
    match = pattern.match(html, pos)
    return match.end() if match else pos


def _past(html: str, mark: str, start: int, n: int) -> int:
    found = html.find(mark, start)
    return n if found < 0 else found + len(mark)


def _comment_end(html: str, lt: int, n: int) -> int:
    for abrupt in ("<!-->", "<!--->"):
        if html.startswith(abrupt, lt):
            return lt + len(abrupt)
    return _past(html, "-->", lt + 4, n)


def _tag(html: str, pos: int) -> tuple[int, str, _Attrs, bool] | None:
    """A tag whose name starts at ``pos``: (position after it, name, attributes,
    self-closing); None when the input ends inside it."""
    n = len(html)
    name_end = _end(_TAG_REST, html, pos + 1)
    name = html[pos:name_end].lower()
    attrs: _Attrs = []
    pos = name_end
    while True:
        gap = _end(_GAP, html, pos)
        if gap >= n:
            return None
        if html[gap] == ">":
            return gap + 1, name, attrs, gap > pos and html[gap - 1] == "/"
        attr = _ATTR_NAME.match(html, gap)
        assert attr is not None  # html[gap] is neither a gap character nor ">"
        pos = attr.end()
        value: str | None = None
        equals = _EQUALS.match(html, pos)
        if equals:
            pos = equals.end()
            quote = html[pos : pos + 1]
            if quote in ('"', "'"):
                closing = html.find(quote, pos + 1)
                if closing < 0:
                    return None
                value, pos = html[pos + 1 : closing], closing + 1
            else:
                value_end = _end(_UNQUOTED, html, pos)
                value, pos = html[pos:value_end], value_end
        attrs.append((attr.group().lower(), unescape(value) if value is not None else None))


# -- text ------------------------------------------------------------------------


def html_to_text(html: str) -> str:
    """The text a reader sees in an HTML mail: blocks and <br> as line breaks,
    list items as "- " / "1. ", quotes as "> ", link targets in parentheses,
    no script/style content, entities decoded."""
    extractor = _TextExtractor()
    for token in _tokens(html):
        if token[0] == "text":
            extractor.data(token[1])
        elif token[0] == "raw":
            extractor.data(token[2])
        elif token[0] == "start":
            extractor.start(token[1], token[2], self_closing=token[3])
        else:
            extractor.end(token[1])
    return extractor.text()


class _TextExtractor:
    def __init__(self) -> None:
        self._lines: list[str] = []
        self._line: list[str] = []
        self._breaks = 0  # line breaks owed before the next text
        self._hidden: list[str] = []
        self._pre = 0
        self._quote = 0
        self._lists: list[list[int]] = []  # per open list: [next number] or [] when bulleted
        self._cell_in_row = 0
        # The open link: (href, index in the current line's pieces where its text starts).
        self._link: tuple[str, int] | None = None

    def start(self, tag: str, attrs: _Attrs, *, self_closing: bool = False) -> None:
        self._start(tag, attrs)
        if self_closing and tag not in ("br", "hr"):
            self.end(tag)

    def _start(self, tag: str, attrs: _Attrs) -> None:
        if tag == "body":
            self._hidden.clear()  # an unclosed <head> must not hide the body
        if self._hidden or tag in _HIDDEN:
            if tag in _HIDDEN and len(self._hidden) < MAX_NESTING:
                self._hidden.append(tag)
            return
        if tag in _BLOCKS:
            self._block()
        if tag == "br":
            self._breaks += 1
        elif tag == "pre":
            self._pre += 1
        elif tag == "blockquote":
            self._quote += 1
        elif tag in ("ul", "ol"):
            self._lists.append([1] if tag == "ol" else [])
        elif tag == "li":
            self._list_item()
        elif tag == "tr":
            self._cell_in_row = 0
        elif tag in _CELLS:
            if self._cell_in_row:
                self._write(" ")
            self._cell_in_row += 1
        elif tag == "a":
            href = dict(attrs).get("href") or ""
            self._link = (href, len(self._line))

    def end(self, tag: str) -> None:
        if self._hidden:
            if tag in self._hidden:
                del self._hidden[len(self._hidden) - 1 - self._hidden[::-1].index(tag) :]
            return
        if tag in _BLOCKS:
            self._block()
        if tag == "pre":
            self._pre = max(0, self._pre - 1)
        elif tag == "blockquote":
            self._quote = max(0, self._quote - 1)
        elif tag in ("ul", "ol") and self._lists:
            self._lists.pop()
        elif tag == "a" and self._link:
            self._close_link(*self._link)

    def data(self, data: str) -> None:
        if self._hidden or not data:
            return
        if self._pre:
            for i, line in enumerate(data.split("\n")):
                if i:
                    self._breaks += 1
                self._write(line)
            return
        data = _SPACE_RUN.sub(" ", _BREAK_BETWEEN_WIDE.sub("", data))
        if data.startswith(" ") and (self._at_line_start() or self._line[-1].endswith(" ")):
            data = data[1:]
        if data:
            self._write(data)

    def _block(self) -> None:
        self._breaks = max(self._breaks, 1)

    def _list_item(self) -> None:
        indent = "  " * min(max(0, len(self._lists) - 1), _MAX_LEVELS)
        numbering = self._lists[-1] if self._lists else []
        if numbering:
            marker = f"{numbering[0]}. "
            numbering[0] += 1
        else:
            marker = "- "
        self._write(indent + marker)

    def _close_link(self, href: str, start: int) -> None:
        self._link = None
        label = "".join(self._line[start:]).strip()
        if href.startswith(("http://", "https://")) and href != label:
            self._write(f" ({href})")

    def _at_line_start(self) -> bool:
        return self._breaks > 0 or not self._line

    def _write(self, text: str) -> None:
        if self._breaks:
            if self._line or self._lines:
                self._lines.append("".join(self._line))
                self._lines.extend([""] * (self._breaks - 1))
            self._line = []
            self._breaks = 0
            if self._link:
                self._link = (self._link[0], 0)
        if not self._line and self._quote:
            self._line.append("> " * min(self._quote, _MAX_LEVELS))
        self._line.append(text)

    def text(self) -> str:
        lines = [*self._lines, "".join(self._line)]
        text = "\n".join(line.replace("\xa0", " ").rstrip() for line in lines)
        return _BLANK_LINES.sub("\n\n", text).strip("\n")


# -- safe HTML --------------------------------------------------------------------

_URL_SCHEMES = frozenset(("http", "https", "mailto", "tel", "cid"))
# Deeper than any mail client nests (Outlook's tables go some 20 deep); html5ever's
# time grows with the depth times the number of tags.
MAX_NESTING = 100
# Gmail clips a message's HTML at 102 KB; the text and the raw message keep the rest.
MAX_SANITIZED_CHARS = 512 * 1024
_VOID = frozenset(
    ("area", "base", "br", "col", "embed", "hr", "img", "input", "keygen", "link", "meta",
     "param", "source", "track", "wbr")
)
_NAME = re.compile(r"[a-z][a-z0-9:_.-]*")
_DROPPED_CONTENT = frozenset(("script", "style"))


def sanitize_html(html: str) -> str:
    """HTML safe to show staff: no scripts, event handlers, styles or
    ``javascript:`` URLs; images only from the mail itself (cid:), never fetched
    from a sender's server; links open with rel="noopener noreferrer"."""
    return nh3.clean(
        _well_formed(html),
        tags=nh3.ALLOWED_TAGS,
        attributes=nh3.ALLOWED_ATTRIBUTES,
        attribute_filter=_keep_attribute,
        url_schemes=set(_URL_SCHEMES),
        url_relative="deny",
        link_rel="noopener noreferrer",
        strip_comments=True,
    )


def _keep_attribute(tag: str, attribute: str, value: str) -> str | None:
    if tag == "img" and attribute == "src" and not value.strip().lower().startswith("cid:"):
        return None  # a remote image is a read receipt for the sender
    return value


def _well_formed(html: str) -> str:
    """``html`` rewritten from its tokens: every tag closed, every attribute quoted,
    every text escaped, nesting at most ``MAX_NESTING`` deep (deeper tags are
    dropped, their text kept), cut at about ``MAX_SANITIZED_CHARS``."""
    out: list[str] = []
    room = MAX_SANITIZED_CHARS
    open_elements: list[str] = []
    for token in _tokens(html):
        match token:
            case ("text", text):
                piece = _cut(escape(text, quote=False), room)
            case ("raw", element, text) if element not in _DROPPED_CONTENT:
                piece = _cut(escape(text, quote=False), room)
            case ("start", name, attrs, _):
                if not _NAME.fullmatch(name) or (
                    name not in _VOID and len(open_elements) >= MAX_NESTING
                ):
                    continue
                piece = f"<{name}{_attributes(attrs)}>"
                if len(piece) > room:
                    break
                if name not in _VOID:
                    open_elements.append(name)
            case ("end", name) if name in open_elements:
                closed = []
                while open_elements:
                    closed.append(open_elements.pop())
                    if closed[-1] == name:
                        break
                piece = "".join(f"</{element}>" for element in closed)
            case _:
                continue
        out.append(piece)
        room -= len(piece)
        if room <= 0:
            break
    out.extend(f"</{name}>" for name in reversed(open_elements))
    return "".join(out)


def _attributes(attrs: _Attrs) -> str:
    seen: set[str] = set()
    written = []
    for name, value in attrs:
        if name in seen or not _NAME.fullmatch(name):
            continue
        seen.add(name)
        written.append(f" {name}" if value is None else f' {name}="{escape(value)}"')
    return "".join(written)


def _cut(text: str, room: int) -> str:
    """``text`` (escaped) cut to ``room`` characters, never inside a character reference."""
    if len(text) <= room:
        return text
    text = text[: max(room, 0)]
    amp = text.rfind("&")
    return text[:amp] if amp >= 0 and ";" not in text[amp:] else text
