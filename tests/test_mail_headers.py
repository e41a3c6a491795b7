"""The one builder of thread headers, and the header-safety helpers it shares."""

from __future__ import annotations

from email.message import EmailMessage

from madoguchi.ticketing.mail_headers import (
    MAX_REFERENCES,
    msg_ids,
    one_line,
    thread_headers,
    usable_address,
)


def test_a_reply_names_the_message_it_answers_and_its_ancestors() -> None:
    msg = EmailMessage()
    thread_headers(msg, "<c@x>", ["<a@x>", "b@x", "<a@x>"])
    assert msg["In-Reply-To"] == "<c@x>"
    assert msg["References"] == "<a@x> <b@x> <c@x>"


def test_an_answered_message_without_usable_ids_gives_no_thread_headers() -> None:
    msg = EmailMessage()
    thread_headers(msg, None, ["not an id", "<with space@x>"])
    assert msg["In-Reply-To"] is None and msg["References"] is None


def test_a_long_chain_keeps_its_root_and_the_nearest_ancestors() -> None:
    ids = [f"{i}@x" for i in range(50)]
    kept = msg_ids(ids)
    assert len(kept) == MAX_REFERENCES and kept[0] == "0@x" and kept[-1] == "49@x"


def test_customer_text_reaches_a_header_on_one_line_and_without_encoded_words() -> None:
    assert one_line("件名\r\nBcc: x@evil\u2028続き") == "件名 Bcc: x@evil 続き"
    assert "=?" not in one_line("=?UTF-8?B?5Lu2?=")
    assert one_line("あ" * 10, 5) == "ああああ…"


def test_only_a_plain_single_address_is_usable() -> None:
    assert usable_address("yamada@sakura-shoji.example.jp")
    for bad in ("", "a@b@c", "山田@example.jp", "a@b\n.jp", "<a@b>"):
        assert not usable_address(bad), bad
