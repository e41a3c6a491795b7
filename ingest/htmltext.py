"""HTML mail bodies: readable text for the desk, and safe HTML for the web view."""

from __future__ import annotations

import re
from html.parser import HTMLParser

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


def html_to_text(html: str) -> str:
    """The text a reader sees in an HTML mail: blocks and <br> as line breaks,
    list items as "- " / "1. ", quotes as "> ", link targets in parentheses,
    no script/style content, entities decoded."""
    extractor = _TextExtractor()
    try:
        extractor.feed(html)
        extractor.close()
    except AssertionError:  # html.parser gives up on some malformed markup; keep what it read
        pass
    return extractor.text()


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._lines: list[str] = []
        self._line: list[str] = []
        self._breaks = 0  # line breaks owed before the next text
        self._hidden: list[str] = []
        self._pre = 0
        self._quote = 0
        self._lists: list[list[int]] = []  # per open list: [next number] or [] when bulleted
        self._cell_in_row = 0
        # The open link: (href, where its text starts in the current line).
        self._link: tuple[str, int] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self._hidden.clear()  # an unclosed <head> must not hide the body
        if self._hidden or tag in _HIDDEN:
            if tag in _HIDDEN:
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
            self._link = (href, self._written())

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in ("br", "hr"):
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
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

    def handle_data(self, data: str) -> None:
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
        indent = "  " * max(0, len(self._lists) - 1)
        numbering = self._lists[-1] if self._lists else []
        if numbering:
            marker = f"{numbering[0]}. "
            numbering[0] += 1
        else:
            marker = "- "
        self._write(indent + marker)

    def _close_link(self, href: str, start: int) -> None:
        self._link = None
        label = "".join(self._line)[start:].strip()
        if href.startswith(("http://", "https://")) and href != label:
            self._write(f" ({href})")

    def _written(self) -> int:
        return sum(map(len, self._line))

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
            self._line.append("> " * self._quote)
        self._line.append(text)

    def text(self) -> str:
        lines = [*self._lines, "".join(self._line)]
        text = "\n".join(line.replace("\xa0", " ").rstrip() for line in lines)
        return _BLANK_LINES.sub("\n\n", text).strip("\n")


_URL_SCHEMES = frozenset(("http", "https", "mailto", "tel", "cid"))


def sanitize_html(html: str) -> str:
    """HTML safe to show staff: no scripts, event handlers, styles or
    ``javascript:`` URLs; images only from the mail itself (cid:), never fetched
    from a sender's server; links open with rel="noopener noreferrer"."""
    return nh3.clean(
        html,
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
