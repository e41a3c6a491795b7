"""Charset decoding: each Japanese encoding with its hard characters, and the fallbacks."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from madoguchi.ingest.decode import (
    b64decode_lenient,
    charset_codec,
    decode_bytes,
    decode_header_value,
    decode_text,
    parse_params,
)
from tests.mailfactory import eucjp, iso2022jp

HARD = "①②㈱～―髙﨑"  # NEC row 13, wave dash, horizontal bar, IBM extensions
TEXT = "お問い合わせ: サポート番号の件。"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def escaped(raw: bytes) -> str:
    """Raw header bytes as the stdlib parser hands them over."""
    return raw.decode("ascii", "surrogateescape")


# -- ISO-2022-JP ---------------------------------------------------------------


def test_factory_iso2022jp_matches_python_codec_for_plain_jis():
    assert iso2022jp(TEXT) == TEXT.encode("iso2022_jp")


def test_iso2022jp_nec_row13_decodes_like_cp932():
    # ① is JIS 0x2D21 ("-!"), ㈱ is 0x2D6A ("-j"): NEC row 13, unknown to Python's codec.
    assert decode_bytes(b"\x1b$B-!-j\x1b(B", "ISO-2022-JP") == "①㈱"


def test_iso2022jp_ibm_extensions_in_nec_selected_rows_decode():
    # 髙 (0x7C62) and 﨑 (0x7975) as CP50220 writes them.
    assert decode_bytes(b"\x1b$B|byu\x1b(B", "iso-2022-jp") == "髙﨑"


def test_iso2022jp_halfwidth_kana_after_esc_paren_i_decodes():
    assert decode_bytes(b"\x1b$B%+%J\x1b(I6E\x1b(B!", "iso-2022-jp") == "カナｶﾅ!"


def test_iso2022jp_halfwidth_kana_in_shift_out_decodes():
    assert decode_bytes(b"\x1b$B%+%J\x1b(B\x0e6E\x0f!", "iso-2022-jp") == "カナｶﾅ!"


def test_iso2022jp_hard_characters_round_trip_through_factory():
    assert decode_bytes(iso2022jp(HARD + "ｶﾅ\r\n" + TEXT), "iso-2022-jp") == HARD + "ｶﾅ\r\n" + TEXT


def test_iso2022jp_jis_roman_reads_as_ascii_like_windows():
    assert decode_bytes(b"\x1b$B$\"\x1b(JC:\\dir~\x1b(B", "iso-2022-jp") == "あC:\\dir~"


def test_iso2022jp_2_designations_fall_back_to_python_codec():
    assert decode_bytes("Ωあ".encode("iso2022_jp_2"), "iso-2022-jp-2") == "Ωあ"


# -- one character, every encoding ---------------------------------------------


@pytest.mark.parametrize(
    ("raw", "charset"),
    [
        (b"\x1b$B!A!]\x1b(B", "iso-2022-jp"),
        (b"\x81\x60\x81\x7c", "shift_jis"),
        (b"\xa1\xc1\xa1\xdd", "euc-jp"),
    ],
)
def test_wave_dash_and_minus_read_the_same_in_every_japanese_encoding(raw, charset):
    assert decode_bytes(raw, charset) == "～－"


# -- Shift_JIS / CP932 ---------------------------------------------------------


@pytest.mark.parametrize("label", ["Shift_JIS", "shift-jis", "x-sjis", "Windows-31J", "CP932"])
def test_shift_jis_labels_decode_as_cp932_with_windows_characters(label):
    assert decode_bytes((HARD + "ｶﾅ" + TEXT).encode("cp932"), label) == HARD + "ｶﾅ" + TEXT


def test_declared_shift_jis_with_only_halfwidth_kana_is_trusted():
    assert decode_bytes("ｶﾅｶﾅ".encode("cp932"), "shift_jis") == "ｶﾅｶﾅ"


# -- EUC-JP --------------------------------------------------------------------


def test_euc_jp_plain_text_decodes():
    assert decode_bytes(TEXT.encode("euc_jp"), "EUC-JP") == TEXT


def test_euc_jp_nec_row13_and_ibm_rows_decode_as_eucjp_ms():
    assert decode_bytes(eucjp(HARD), "euc-jp") == HARD


def test_euc_jp_jis_x_0212_three_byte_characters_decode():
    assert decode_bytes(b"\xa4\xa2\x8f\xb0\xa1", "euc-jp") == "あ丂"


def test_euc_jp_halfwidth_kana_decodes():
    assert decode_bytes(b"\x8e\xb6\x8e\xc5", "euc-jp") == "ｶﾅ"


# -- wrong or missing declarations ---------------------------------------------


def test_declared_us_ascii_but_utf8_bytes_read_as_utf8():
    result = decode_text(TEXT.encode("utf-8"), "us-ascii")
    assert (result.text, result.charset, result.exact) == (TEXT, "utf-8", True)


def test_declared_us_ascii_but_shift_jis_bytes_read_as_cp932():
    assert decode_text((TEXT + "①").encode("cp932"), "us-ascii").text == TEXT + "①"


def test_declared_utf8_but_shift_jis_bytes_read_as_cp932():
    assert decode_bytes(TEXT.encode("cp932"), "utf-8") == TEXT


def test_undeclared_seven_bit_iso2022jp_is_recognised_by_its_escapes():
    assert decode_bytes(iso2022jp(TEXT), None) == TEXT
    assert decode_bytes(iso2022jp(TEXT), "us-ascii") == TEXT


def test_undeclared_euc_jp_is_not_mistaken_for_cp932_halfwidth_kana():
    assert decode_bytes(TEXT.encode("euc_jp"), None) == TEXT


def test_declared_latin1_with_shift_jis_bytes_is_not_mojibake():
    assert decode_bytes(TEXT.encode("cp932"), "iso-8859-1") == TEXT


def test_declared_latin1_keeps_real_latin1_text():
    assert decode_bytes("Café crème".encode("latin-1"), "ISO-8859-1") == "Café crème"


@pytest.mark.parametrize(
    "label", ["x-unknown", "unknown-8bit", "no-such-charset", "rot13", '"utf-8"']
)
def test_unknown_or_bogus_labels_fall_back_to_detection(label):
    assert decode_bytes(TEXT.encode("utf-8"), label) == TEXT


def test_undecodable_bytes_keep_the_readable_part_with_replacements():
    result = decode_text("あいうえお".encode("cp932") + b"\x82", "shift_jis")
    assert result.text.startswith("あいうえお")
    assert not result.exact


def test_charset_codec_folds_japanese_aliases():
    assert charset_codec("SJIS") == charset_codec("ms_kanji") == "cp932"
    assert charset_codec("CP50220") == charset_codec("ISO-2022-JP") == "iso2022_jp"
    assert charset_codec("x-euc-jp") == "euc_jp"
    assert charset_codec(None) is None
    assert charset_codec("unicode_escape") is None


# -- header values (RFC 2047) --------------------------------------------------


def test_encoded_words_split_in_the_middle_of_a_character_are_joined():
    data = "日本語の件名".encode()
    first, second = data[:4], data[4:]  # 日 whole, 本 cut after its first byte
    value = f"=?UTF-8?B?{b64(first)}?=\r\n =?UTF-8?B?{b64(second)}?="
    assert decode_header_value(value) == "日本語の件名"


def test_iso2022jp_encoded_word_with_nec_specials_decodes():
    jis = b'\x1b$B-!-"%F%9%H\x1b(B'
    value = f"=?ISO-2022-JP?B?{b64(jis)}?="
    assert decode_header_value(value) == "①②テスト"


def test_shift_jis_encoded_word_with_cp932_characters_decodes():
    value = f"=?shift_jis?B?{b64('㈱サンプル①～'.encode('cp932'))}?="
    assert decode_header_value(value) == "㈱サンプル①～"


def test_space_between_encoded_words_dropped_but_plain_text_kept():
    word = f"=?UTF-8?B?{b64('問い合わせ'.encode())}?="
    assert decode_header_value(f"Re: {word} {word} (2)") == "Re: 問い合わせ問い合わせ (2)"


def test_q_encoded_lowercase_word_decodes():
    assert decode_header_value("=?utf-8?q?=E3=81=82_x?=") == "あ x"


def test_encoded_word_with_rfc2231_language_decodes():
    assert decode_header_value(f"=?UTF-8*ja?B?{b64('件名'.encode())}?=") == "件名"


def test_encoded_word_with_bad_base64_padding_decodes():
    assert decode_header_value(f"=?UTF-8?B?{b64('件名'.encode()).rstrip('=')}?=") == "件名"


@pytest.mark.parametrize("charset", ["utf-8", "cp932"])
def test_raw_8bit_header_bytes_are_decoded(charset):
    assert decode_header_value(escaped("件名①".encode(charset))) == "件名①"


def test_folded_header_is_unfolded():
    assert decode_header_value("long\r\n\tsubject\r\n  line") == "long subject line"


# -- MIME parameters (RFC 2231) ------------------------------------------------


def test_rfc2231_utf8_filename_decodes():
    value = "attachment; filename*=UTF-8''%E8%A6%8B%E7%A9%8D%E6%9B%B8.pdf"
    assert parse_params(value) == ("attachment", {"filename": "見積書.pdf"})


def test_rfc2231_continuations_split_inside_a_character_are_joined():
    value = (
        "attachment;\r\n filename*0*=UTF-8''%E8%A6%8B%E7;\r\n"
        " filename*1*=%A9%8D%E6%9B%B8;\r\n filename*2=.pdf"
    )
    assert parse_params(value)[1]["filename"] == "見積書.pdf"


def test_rfc2231_iso2022jp_filename_with_nec_specials_decodes():
    encoded = "".join(f"%{byte:02X}" for byte in b"\x1b$B-!;qNA\x1b(B.xlsx")
    assert parse_params(f"attachment; filename*=iso-2022-jp'ja'{encoded}")[1] == {
        "filename": "①資料.xlsx"
    }


def test_rfc2047_word_in_quoted_filename_decodes():
    word = f"=?ISO-2022-JP?B?{b64(iso2022jp('議事録①.docx'))}?="
    assert parse_params(f'attachment; filename="{word}"')[1]["filename"] == "議事録①.docx"


def test_rfc2047_word_split_over_plain_continuations_decodes():
    word = f"=?UTF-8?B?{b64('議事録.txt'.encode())}?="
    value = f'text/plain; name*0="{word[:20]}"; name*1="{word[20:]}"'
    assert parse_params(value)[1]["name"] == "議事録.txt"


def test_quoted_parameter_keeps_semicolons_and_escaped_quotes():
    value = 'attachment; filename="a\\"b;c.txt"; size=10'
    assert parse_params(value)[1] == {"filename": 'a"b;c.txt', "size": "10"}


def test_raw_utf8_filename_decodes():
    assert parse_params(escaped('attachment; filename="報告書.pdf"'.encode()))[1] == {
        "filename": "報告書.pdf"
    }


def test_parameter_names_and_value_are_lower_cased():
    assert parse_params('Text/Plain; CharSet="ISO-2022-JP"') == (
        "text/plain",
        {"charset": "ISO-2022-JP"},
    )


def test_lenient_base64_repairs_padding_and_drops_a_lone_last_character():
    assert b64decode_lenient(b"44GC") == b"\xe3\x81\x82"
    assert b64decode_lenient(b"44GC\n4!4G") == b"\xe3\x81\x82\xe3\x81"
    assert b64decode_lenient(b"44GC4") == b"\xe3\x81\x82"


LABELS = st.sampled_from(
    [None, "", "utf-8", "us-ascii", "iso-2022-jp", "shift_jis", "euc-jp", "latin1", "utf-16",
     "utf-7", "rot13", "x-unknown", "\udcff", "iso-2022-jp-2"]
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), LABELS)
def test_any_bytes_with_any_label_decode_to_text(data, label):
    assert isinstance(decode_bytes(data, label), str)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("=?BbQq_*';\"\\%ab GyRC\r\n\udce3\udc81あ"))))
def test_any_header_value_or_parameters_decode_without_error(value):
    assert isinstance(decode_header_value(value), str)
    assert isinstance(parse_params("attachment; filename*0*=" + value), tuple)


def test_utf7_lone_surrogates_are_not_text():
    # Found by the atheris fuzzer: Python's UTF-7 codec decodes "+2pXq7Q-" to
    # lone surrogates, which no database can store as UTF-8.
    data = b"+ADw-script-+4ADalert(1)+ADw-/script+AD4- +2pXq7Q-"
    text = decode_bytes(data, "utf-7")
    text.encode("utf-8")  # raises on a lone surrogate
    assert text == data.decode("ascii")  # not UTF-7: kept as the bytes say
    assert decode_bytes("日本".encode("utf-7"), "utf-7") == "日本"
