"""Attachment names made safe to store and download."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from madoguchi.ingest.filenames import MAX_FILENAME_BYTES, safe_filename


def test_japanese_name_is_kept_as_is():
    name = "議事録①（最終版）.docx"
    assert safe_filename(name, "application/octet-stream") == name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("/var/mail/見積書.pdf", "見積書.pdf"),
        ("C:\\Users\\yamada\\Desktop\\見積書.pdf", "見積書.pdf"),
        ("..\\..\\boot.ini", "boot.ini"),
    ],
)
def test_directory_parts_are_stripped(name, expected):
    assert safe_filename(name, "application/pdf") == expected


def test_control_and_bidi_override_characters_are_removed():
    assert safe_filename("請求書\x00\x1f\u202efdp.exe", "application/pdf") == "請求書fdp.exe"


def test_characters_windows_forbids_are_replaced():
    assert safe_filename('a:b?c*"d"<e>|.txt', "text/plain") == "a_b_c__d__e__.txt"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("CON", "_CON"),
        ("con.txt", "_con.txt"),
        ("Nul.tar.gz", "_Nul.tar.gz"),
        ("LPT9.log", "_LPT9.log"),
        ("COM1 .txt", "_COM1 .txt"),
        ("COM10.txt", "COM10.txt"),
        ("console.txt", "console.txt"),
    ],
)
def test_windows_device_names_are_defused_whatever_the_extension(name, expected):
    assert safe_filename(name, "text/plain") == expected


def test_trailing_dots_and_spaces_and_leading_dots_are_stripped():
    assert safe_filename("..見積書.pdf. . ", "application/pdf") == "見積書.pdf"


def test_long_japanese_name_is_cut_to_150_bytes_keeping_the_extension():
    name = safe_filename("お見積り" * 60 + ".xlsx", "application/vnd.ms-excel")
    assert name == "お見積り" * 12 + ".xlsx"  # 144 + 5 bytes; a 13th 3-byte character won't fit


def test_overlong_extension_is_not_treated_as_one():
    name = safe_filename("a." + "b" * 300, "application/octet-stream")
    assert name == ("a." + "b" * 300)[:MAX_FILENAME_BYTES]


def test_decomposed_kana_is_normalised_to_nfc():
    assert safe_filename("ハ\u309aンフレット.pdf", "application/pdf") == "パンフレット.pdf"


@pytest.mark.parametrize(
    ("name", "content_type", "expected"),
    [
        ("", "application/pdf", "attachment.pdf"),
        ("../", "image/png", "attachment.png"),
        ("...", "message/rfc822", "attachment.eml"),
        ("\u202e", "application/x-unheard-of", "attachment.bin"),
        ("", "text/plain; charset=utf-8", "attachment.txt"),
    ],
)
def test_empty_result_falls_back_to_attachment_with_type_extension(name, content_type, expected):
    assert safe_filename(name, content_type) == expected


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_any_name_becomes_a_safe_one(name):
    safe = safe_filename(name, "application/pdf")
    assert safe
    assert len(safe.encode("utf-8")) <= MAX_FILENAME_BYTES
    assert "/" not in safe and "\\" not in safe
    assert not safe.endswith((".", " ")) and not safe.startswith(".")
    assert all(unicodedata.category(char) not in ("Cc", "Cf") for char in safe)
    assert safe.split(".")[0].strip().upper() not in {"CON", "PRN", "AUX", "NUL", "COM1", "LPT1"}
    assert safe == unicodedata.normalize("NFC", safe) or len(name.encode()) > MAX_FILENAME_BYTES


def test_a_control_between_letter_and_combining_mark_leaves_a_stable_name():
    # Found by the atheris fuzzer: "e", NUL, U+0300 kept "e\u0300" apart from
    # NFC, so cleaning the cleaned name composed them to "è".
    name = safe_filename("e\x00\u0300.txt", "text/plain")
    assert name == "è.txt"
    assert safe_filename(name, "text/plain") == name
